//! Length-prefixed postcard frames.
//!
//! A frame is a 4-byte little-endian length followed by that many bytes of postcard. The
//! length is checked against a cap before anything is allocated, so a hostile or corrupt
//! peer cannot make the reader allocate without bound.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::FrameError;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Default cap of one frame's body. Messages carry at most a few RTP parameter sets as
/// JSON; 1 MiB is far above any honest message and small enough to refuse quickly.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// Encodes `message` as one frame, refusing to produce a frame the peer would reject.
pub fn encode<T: Serialize>(message: &T, max_len: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; PREFIX_LEN];
    frame = postcard::to_extend(message, frame)?;
    let len = frame.len() - PREFIX_LEN;
    if len > max_len || u32::try_from(len).is_err() {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    frame[..PREFIX_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Sans-IO decoder: feed it bytes as they arrive, take whole messages out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_len: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_len,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet consumed by a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` when more bytes are needed. An error means the
    /// stream is unusable from here on.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(len) = self.announced_len()? else {
            return Ok(None);
        };
        if self.buf.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        let message = postcard::from_bytes(&self.buf[PREFIX_LEN..PREFIX_LEN + len])?;
        self.buf.drain(..PREFIX_LEN + len);
        Ok(Some(message))
    }

    /// Checks what is buffered once the stream has ended: leftover bytes are a truncated
    /// frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = match self.announced_len()? {
            Some(len) => PREFIX_LEN + len,
            None => PREFIX_LEN,
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            want,
        })
    }

    fn announced_len(&self) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = self.buf.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        Ok(Some(len))
    }
}

/// Reads one message from `reader`; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<T, R>(reader: &mut R, max_len: usize) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; PREFIX_LEN];
    let mut have = 0;
    while have < PREFIX_LEN {
        let n = reader.read(&mut prefix[have..]).await?;
        if n == 0 {
            return if have == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated {
                    have,
                    want: PREFIX_LEN,
                })
            };
        }
        have += n;
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    let mut body = vec![0u8; len];
    let mut have = 0;
    while have < len {
        let n = reader.read(&mut body[have..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                have: PREFIX_LEN + have,
                want: PREFIX_LEN + len,
            });
        }
        have += n;
    }
    Ok(Some(postcard::from_bytes(&body)?))
}

/// Writes one message to `writer` as a frame and flushes it.
pub async fn write_frame<T, W>(
    writer: &mut W,
    message: &T,
    max_len: usize,
) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let frame = encode(message, max_len)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Msg {
        Ping(u32),
        Text(String),
    }

    #[test]
    fn round_trips_several_frames_in_one_buffer() {
        let mut bytes = encode(&Msg::Ping(7), 64).unwrap();
        bytes.extend(encode(&Msg::Text("hi".into()), 64).unwrap());
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&bytes);
        assert_eq!(decoder.next_message::<Msg>().unwrap(), Some(Msg::Ping(7)));
        assert_eq!(
            decoder.next_message::<Msg>().unwrap(),
            Some(Msg::Text("hi".into()))
        );
        assert_eq!(decoder.next_message::<Msg>().unwrap(), None);
        decoder.finish().unwrap();
    }

    #[test]
    fn refuses_oversized_announcement_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&(1_000_000u32).to_le_bytes());
        assert!(matches!(
            decoder.next_message::<Msg>(),
            Err(FrameError::TooLarge {
                len: 1_000_000,
                max: 16
            })
        ));
    }

    #[test]
    fn encode_refuses_what_the_peer_would_refuse() {
        let big = Msg::Text("x".repeat(100));
        assert!(matches!(encode(&big, 16), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn truncated_frame_is_reported_at_end_of_stream() {
        let bytes = encode(&Msg::Text("hello".into()), 64).unwrap();
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&bytes[..bytes.len() - 1]);
        assert_eq!(decoder.next_message::<Msg>().unwrap(), None);
        assert!(matches!(
            decoder.finish(),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn garbage_body_is_a_decode_error() {
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decoder.next_message::<Msg>(),
            Err(FrameError::Decode(_))
        ));
    }

    #[tokio::test]
    async fn async_reader_reports_truncation_and_clean_end() {
        let bytes = encode(&Msg::Ping(1), 64).unwrap();
        let mut clean = &bytes[..];
        assert_eq!(
            read_frame::<Msg, _>(&mut clean, 64).await.unwrap(),
            Some(Msg::Ping(1))
        );
        assert_eq!(read_frame::<Msg, _>(&mut clean, 64).await.unwrap(), None);
        let mut cut = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read_frame::<Msg, _>(&mut cut, 64).await,
            Err(FrameError::Truncated { .. })
        ));
        let mut huge = &[0xff, 0xff, 0xff, 0x7f][..];
        assert!(matches!(
            read_frame::<Msg, _>(&mut huge, 64).await,
            Err(FrameError::TooLarge { .. })
        ));
    }
}
