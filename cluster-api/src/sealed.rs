//! Frames of an open link, sealed: a 4-byte little-endian length, then the postcard message
//! encrypted and authenticated with ChaCha20-Poly1305 under this direction's key. The nonce is
//! the frame's number in its direction (never sent, never reused: a key lives as long as one
//! link), so a replayed, dropped, reordered or altered frame fails to open and ends the link.

use ring::aead::{Aad, LessSafeKey, Nonce, CHACHA20_POLY1305};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::messages::LinkMessage;

/// Largest message (before sealing): a relayed signaling frame is at most 64 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const TAG_LEN: usize = 16;

/// Why a link's frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("link i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than the cap: refused before anything is allocated.
    #[error("frame of {0} bytes, more than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// The frame does not open under the link's key: altered, replayed, or another secret.
    #[error("a frame failed authentication (altered, replayed, or sealed with another secret)")]
    Tampered,
    /// Opened, but not a message of this version.
    #[error("undecodable message: {0}")]
    Decode(#[from] postcard::Error),
    /// The peer closed the link cleanly.
    #[error("the link closed")]
    Closed,
    /// The handshake did not complete in time.
    #[error("the handshake took too long")]
    HandshakeTimeout,
    /// The peer does not hold the cluster secret (or speaks another version).
    #[error("refused: {0}")]
    Refused(String),
}

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The sending half of a link.
pub struct SealedWriter<W> {
    inner: W,
    key: LessSafeKey,
    counter: u64,
}

impl<W: AsyncWrite + Unpin> SealedWriter<W> {
    pub(crate) fn new(inner: W, key: LessSafeKey) -> Self {
        Self {
            inner,
            key,
            counter: 0,
        }
    }

    /// Seals `message` into one frame (not yet written; see [`SealedWriter::flush`]).
    pub async fn feed(&mut self, message: &LinkMessage) -> Result<(), LinkError> {
        let mut body = postcard::to_stdvec(message)?;
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(LinkError::TooLarge(body.len()));
        }
        let len =
            u32::try_from(body.len() + TAG_LEN).map_err(|_| LinkError::TooLarge(body.len()))?;
        let prefix = len.to_le_bytes();
        self.key
            .seal_in_place_append_tag(nonce(self.counter), Aad::from(prefix), &mut body)
            .map_err(|_| LinkError::Tampered)?;
        self.counter += 1;
        self.inner.write_all(&prefix).await?;
        self.inner.write_all(&body).await?;
        Ok(())
    }

    /// Writes what was fed.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        Ok(self.inner.flush().await?)
    }

    /// Seals and writes one message.
    pub async fn send(&mut self, message: &LinkMessage) -> Result<(), LinkError> {
        self.feed(message).await?;
        self.flush().await
    }
}

/// The receiving half of a link.
pub struct SealedReader<R> {
    inner: R,
    key: LessSafeKey,
    counter: u64,
}

impl<R: AsyncRead + Unpin> SealedReader<R> {
    pub(crate) fn new(inner: R, key: LessSafeKey) -> Self {
        Self {
            inner,
            key,
            counter: 0,
        }
    }

    /// The next message; [`LinkError::Closed`] at a clean end between frames.
    pub async fn recv(&mut self) -> Result<LinkMessage, LinkError> {
        let mut prefix = [0u8; 4];
        match self.inner.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(LinkError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes(prefix) as usize;
        if !(TAG_LEN..=MAX_MESSAGE_BYTES + TAG_LEN).contains(&len) {
            return Err(LinkError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        self.inner.read_exact(&mut body).await?;
        let plain = self
            .key
            .open_in_place(nonce(self.counter), Aad::from(prefix), &mut body)
            .map_err(|_| LinkError::Tampered)?;
        self.counter += 1;
        Ok(postcard::from_bytes(plain)?)
    }
}

pub(crate) fn key(okm: ring::hkdf::Okm<'_, &'static ring::aead::Algorithm>) -> LessSafeKey {
    LessSafeKey::new(ring::aead::UnboundKey::from(okm))
}

/// The algorithm the link keys are for.
pub(crate) const AEAD: &ring::aead::Algorithm = &CHACHA20_POLY1305;
