//! Errors of the wire and of request/answer.

use std::time::Duration;

/// Why a frame could not be read or written. Every variant closes the connection: after a
/// bad frame the byte stream can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the cap; nothing of it is allocated.
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame ({have} of {want} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame should have had (prefix included).
        want: usize,
    },
    /// The bytes are not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a request got no answer from the node.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RpcError {
    /// The node did not answer in time.
    #[error("node did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection to the node is gone (node exited, crashed or was killed).
    #[error("node connection closed")]
    Disconnected,
    /// So many requests wait for the node already that it is not keeping up.
    #[error("{0} requests already wait for this node")]
    Busy(usize),
}
