//! A video frame as RTP payloads, the way a camera's encoder sends it: VP8 with RFC 7741's
//! one-byte descriptor, VP9 with its payload descriptor (a picture id, the scalability
//! structure on key frames), H.264 as RFC 6184's single NAL units and FU-A fragments. And
//! the frames of the files ffmpeg writes: IVF (VP8, VP9) and H.264's Annex B.

use super::codecs::VideoCodec;

/// The largest RTP payload a video packet carries.
pub const MAX_PAYLOAD: usize = 1100;

/// The payloads of `frame` (number `index`), in order; the last one carries the marker.
pub fn payloads(codec: VideoCodec, index: usize, frame: &[u8]) -> Vec<Vec<u8>> {
    match codec {
        VideoCodec::Vp8 => with_descriptor(frame, |first, _| vec![if first { 0x10 } else { 0 }]),
        VideoCodec::Vp9 => {
            let key = vp9_is_key(frame);
            // A 15-bit picture id, the same in every packet of the picture.
            let id = (index % 0x8000) as u16;
            with_descriptor(frame, |first, last| {
                let mut d = 0x80; // I: a picture id
                if !key {
                    d |= 0x40; // P: predicted from an earlier picture
                }
                if first {
                    d |= 0x08; // B: begins the picture
                }
                if last {
                    d |= 0x04; // E: ends it
                }
                if first && key {
                    d |= 0x02; // V: the scalability structure follows
                }
                let mut descriptor = vec![d, 0x80 | (id >> 8) as u8, id as u8];
                if first && key {
                    // One spatial layer with its resolution (the pattern's 320 × 240).
                    descriptor.extend_from_slice(&[0x10, 0x01, 0x40, 0x00, 0xf0]);
                }
                descriptor
            })
        }
        VideoCodec::H264 => h264_payloads(frame),
    }
}

/// `frame` cut into payloads of at most [`MAX_PAYLOAD`] bytes, each behind the descriptor
/// `descriptor(first, last)` gives.
fn with_descriptor(frame: &[u8], descriptor: impl Fn(bool, bool) -> Vec<u8>) -> Vec<Vec<u8>> {
    let parts = frame.chunks(MAX_PAYLOAD).count();
    frame
        .chunks(MAX_PAYLOAD)
        .enumerate()
        .map(|(i, chunk)| {
            let mut payload = descriptor(i == 0, i + 1 == parts);
            payload.extend_from_slice(chunk);
            payload
        })
        .collect()
}

/// Whether a VP9 frame is a key frame: its uncompressed header's `show_existing_frame` and
/// `frame_type` bits are both 0 (profiles 0 to 2).
pub fn vp9_is_key(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x0c == 0)
}

/// An access unit (its NAL units, each with a 4-byte start code) as RFC 6184 payloads.
fn h264_payloads(access_unit: &[u8]) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    for nal in nal_units(access_unit) {
        if nal.len() <= MAX_PAYLOAD {
            payloads.push(nal.to_vec());
            continue;
        }
        // FU-A: the NAL header's NRI and type 28, then S/E and the NAL's own type.
        let (header, body) = (nal[0], &nal[1..]);
        let parts = body.chunks(MAX_PAYLOAD - 2).count();
        for (i, chunk) in body.chunks(MAX_PAYLOAD - 2).enumerate() {
            let mut fu = 0x1f & header;
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == parts {
                fu |= 0x40;
            }
            let mut payload = vec![(header & 0xe0) | 28, fu];
            payload.extend_from_slice(chunk);
            payloads.push(payload);
        }
    }
    payloads
}

/// The NAL units of an Annex B stream (start codes of 3 or 4 bytes removed).
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
        // A 4-byte start code's leading zero belongs to it, not to this unit.
        while end > start && stream[end - 1] == 0 && n + 1 < starts.len() {
            end -= 1;
        }
        units.push(&stream[start..end]);
    }
    units
}

/// An Annex B stream cut into access units (pictures): a picture's parameter sets and SEI
/// come before its slices, and a slice whose `first_mb_in_slice` is 0 (its first bit after
/// the header is 1) begins a new picture.
pub fn h264_access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut units = Vec::new();
    let mut current = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(stream) {
        let kind = nal.first().map_or(0, |h| h & 0x1f);
        let slice = matches!(kind, 1 | 5);
        let begins = match kind {
            1 | 5 => nal.get(1).is_some_and(|b| b & 0x80 != 0),
            6..=9 => true,
            _ => false,
        };
        if begins && has_slice {
            units.push(std::mem::take(&mut current));
            has_slice = false;
        }
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(nal);
        has_slice |= slice;
    }
    if has_slice {
        units.push(current);
    }
    units
}

/// The frames of an IVF file (a 32-byte header, then each frame's 12-byte header and data).
pub fn ivf_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(bytes.get(..4), Some(&b"DKIF"[..]), "an IVF file");
    let mut frames = Vec::new();
    let mut at = 32;
    while at + 12 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 12;
        frames.push(bytes[at..at + size].to_vec());
        at += size;
    }
    frames
}

#[test]
fn an_h264_stream_splits_into_pictures_and_a_large_slice_into_fu_a_fragments() {
    let mut stream = Vec::new();
    let mut idr = vec![0x65; 2500];
    idr[1] = 0x88; // first_mb_in_slice 0
                   // A picture in two slices (the second starts at macroblock 1), then the next picture.
    for nal in [
        &[0x67, 1, 2][..],
        &[0x68, 3],
        &idr,
        &[0x65, 0x40, 1],
        &[0x41, 0x9a],
    ] {
        stream.extend_from_slice(&[0, 0, 0, 1]);
        stream.extend_from_slice(nal);
    }
    let units = h264_access_units(&stream);
    assert_eq!(
        units.len(),
        2,
        "an IDR picture with its parameter sets, then a slice"
    );
    let payloads = h264_payloads(&units[0]);
    // SPS, PPS, the IDR slice in three FU-A fragments, then its second slice.
    assert_eq!(payloads.len(), 6);
    assert_eq!(payloads[2][..2], [0x7c, 0x85]);
    assert_eq!(payloads[4][..2], [0x7c, 0x45]);
    assert_eq!(payloads[5], [0x65, 0x40, 1]);
    let body: usize = payloads[2..5].iter().map(|p| p.len() - 2).sum();
    assert_eq!(body, 2499);
}
