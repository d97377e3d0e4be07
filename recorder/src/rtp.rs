//! The few RTP and RTCP facts the recorder needs, read and written by hand because they are a
//! dozen bytes each: an RTP packet's sequence number, timestamp and SSRC; a sender report's
//! NTP ↔ RTP mapping (to put tracks back in sync); and the two feedback messages it sends
//! (generic NACK, RFC 4585 §6.2.1, and PLI, §6.3.1). Depacketizing and muxing are GStreamer's.

/// Why a datagram is not a packet the recorder takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its headers say.
    #[error("truncated packet ({0} bytes)")]
    Truncated(usize),
    /// Not RTP version 2.
    #[error("not RTP version 2")]
    Version,
}

/// What the recorder reads of an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The payload type.
    pub payload_type: u8,
    /// The marker bit (a video frame's last packet).
    pub marker: bool,
    /// The sequence number.
    pub seq: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The source.
    pub ssrc: u32,
}

/// Whether `datagram` is RTCP rather than RTP (RFC 5761 §4: payload types 64–95 with the
/// marker bit, that is packet types 192–223, are RTCP).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// Reads the fixed header of an RTP packet.
pub fn parse_rtp(packet: &[u8]) -> Result<RtpHeader, PacketError> {
    if packet.len() < 12 {
        return Err(PacketError::Truncated(packet.len()));
    }
    if packet[0] >> 6 != 2 {
        return Err(PacketError::Version);
    }
    let csrcs = usize::from(packet[0] & 0x0f) * 4;
    if packet.len() < 12 + csrcs {
        return Err(PacketError::Truncated(packet.len()));
    }
    Ok(RtpHeader {
        payload_type: packet[1] & 0x7f,
        marker: packet[1] & 0x80 != 0,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    })
}

/// A sender report's mapping of a media timestamp to the sender's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The source it reports on.
    pub ssrc: u32,
    /// NTP time (seconds since 1900 in the high 32 bits, fraction in the low 32).
    pub ntp: u64,
    /// The media timestamp of that instant.
    pub rtp_timestamp: u32,
}

impl SenderReport {
    /// The NTP time as seconds since 1900.
    pub fn ntp_seconds(&self) -> f64 {
        (self.ntp >> 32) as f64 + (self.ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
    }
}

/// The sender reports of a compound RTCP packet (other packets are skipped).
pub fn sender_reports(compound: &[u8]) -> Vec<SenderReport> {
    let mut reports = Vec::new();
    let mut rest = compound;
    while rest.len() >= 4 {
        let words = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let len = (words + 1) * 4;
        if rest[0] >> 6 != 2 || rest.len() < len {
            break;
        }
        if rest[1] == 200 && len >= 28 {
            reports.push(SenderReport {
                ssrc: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
                ntp: u64::from_be_bytes([
                    rest[8], rest[9], rest[10], rest[11], rest[12], rest[13], rest[14], rest[15],
                ]),
                rtp_timestamp: u32::from_be_bytes([rest[16], rest[17], rest[18], rest[19]]),
            });
        }
        rest = &rest[len..];
    }
    reports
}

/// A generic NACK from `sender` asking `media` to send `lost` again (one FCI per 17
/// consecutive numbers: a PID and a bitmask of the 16 after it).
pub fn nack(sender: u32, media: u32, lost: &[u16]) -> Vec<u8> {
    let mut fcis: Vec<(u16, u16)> = Vec::new();
    for &seq in lost {
        match fcis.last_mut() {
            Some((pid, mask)) if seq.wrapping_sub(*pid).wrapping_sub(1) < 16 => {
                *mask |= 1 << seq.wrapping_sub(*pid).wrapping_sub(1);
            }
            _ => fcis.push((seq, 0)),
        }
    }
    let words = 2 + fcis.len();
    let mut packet = Vec::with_capacity((words + 1) * 4);
    packet.extend_from_slice(&[0x80 | 1, 205]);
    packet.extend_from_slice(&(words as u16).to_be_bytes());
    packet.extend_from_slice(&sender.to_be_bytes());
    packet.extend_from_slice(&media.to_be_bytes());
    for (pid, mask) in fcis {
        packet.extend_from_slice(&pid.to_be_bytes());
        packet.extend_from_slice(&mask.to_be_bytes());
    }
    packet
}

/// A picture loss indication from `sender`: `media` should send a key frame.
pub fn pli(sender: u32, media: u32) -> Vec<u8> {
    let mut packet = vec![0x80 | 1, 206, 0, 2];
    packet.extend_from_slice(&sender.to_be_bytes());
    packet.extend_from_slice(&media.to_be_bytes());
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn an_rtp_header_is_read_and_rtcp_told_apart() {
        let packet = rtp(65535, 90_000, true);
        let header = parse_rtp(&packet).expect("RTP");
        assert_eq!(header.seq, 65535);
        assert_eq!(header.timestamp, 90_000);
        assert_eq!(header.ssrc, 0x1234_5678);
        assert_eq!(header.payload_type, 96);
        assert!(header.marker);
        assert!(!is_rtcp(&packet));
        assert!(is_rtcp(&pli(1, 2)));
        assert_eq!(parse_rtp(&packet[..11]), Err(PacketError::Truncated(11)));
    }

    #[test]
    fn nack_packs_neighbouring_losses_into_one_bitmask() {
        let packet = nack(1, 0xabcd, &[100, 101, 116, 117, 65535]);
        // Header, sender, media, then (100, bits 0 and 15), (117, 0)... 65535 is far: its own.
        assert_eq!(packet[1], 205);
        assert_eq!(
            u16::from_be_bytes([packet[2], packet[3]]) as usize,
            packet.len() / 4 - 1
        );
        let fcis: Vec<(u16, u16)> = packet[12..]
            .chunks(4)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u16::from_be_bytes([c[2], c[3]]),
                )
            })
            .collect();
        assert_eq!(fcis, [(100, 0b1000_0000_0000_0001), (117, 0), (65535, 0)]);
    }

    #[test]
    fn a_sender_report_is_found_in_a_compound_packet() {
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&7u32.to_be_bytes());
        sr.extend_from_slice(&((3_900_000_000u64 << 32) | (1 << 31)).to_be_bytes());
        sr.extend_from_slice(&48_000u32.to_be_bytes());
        sr.extend_from_slice(&[0; 8]);
        let mut compound = sr.clone();
        compound.extend_from_slice(&[0x81, 202, 0, 0]);
        let reports = sender_reports(&compound);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].ssrc, 7);
        assert_eq!(reports[0].rtp_timestamp, 48_000);
        assert!((reports[0].ntp_seconds() - 3_900_000_000.5).abs() < 1e-6);
        assert!(sender_reports(&sr[..20]).is_empty(), "truncated");
    }
}
