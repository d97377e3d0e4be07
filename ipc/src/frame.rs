//! Length-prefixed postcard frames.
//!
//! A frame is a 4-byte little-endian length followed by that many bytes of postcard. The
//! length is checked against a cap before anything is allocated, so a hostile or corrupt
//! peer cannot make the reader allocate without bound.

use serde::{de::DeserializeOwned, Serialize};
#[cfg(feature = "transport")]
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

/// Decodes one frame's body (the bytes after its length prefix).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(body)?)
}

/// Reads one message from `reader`; `Ok(None)` on a clean end of stream between frames.
#[cfg(feature = "transport")]
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
    decode_body(&body).map(Some)
}

/// Writes one message to `writer` as a frame and flushes it.
#[cfg(feature = "transport")]
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

#[cfg(all(test, feature = "transport"))]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Msg {
        Ping(u32),
        Text(String),
    }

    #[tokio::test]
    async fn round_trips_several_frames_in_one_buffer() {
        let mut bytes = encode(&Msg::Ping(7), 64).unwrap();
        bytes.extend(encode(&Msg::Text("hi".into()), 64).unwrap());
        let mut reader = &bytes[..];
        assert_eq!(
            read_frame::<Msg, _>(&mut reader, 64).await.unwrap(),
            Some(Msg::Ping(7))
        );
        assert_eq!(
            read_frame::<Msg, _>(&mut reader, 64).await.unwrap(),
            Some(Msg::Text("hi".into()))
        );
        assert_eq!(read_frame::<Msg, _>(&mut reader, 64).await.unwrap(), None);
    }

    #[test]
    fn encode_refuses_what_the_peer_would_refuse() {
        let big = Msg::Text("x".repeat(100));
        assert!(matches!(encode(&big, 16), Err(FrameError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn garbage_body_is_a_decode_error() {
        let mut reader = &[3, 0, 0, 0, 0xff, 0xff, 0xff][..];
        assert!(matches!(
            read_frame::<Msg, _>(&mut reader, 64).await,
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
