//! The supervisor ⇄ node wire.
//!
//! - [`frame`]: length-prefixed postcard frames with a hard size cap, a sans-IO decoder and
//!   async read/write helpers;
//! - [`messages`]: what travels: the hello with its protocol version, requests and their
//!   answers, node events and load reports;
//! - [`recorder`]: the supervisor ⇄ recorder messages, on the same frames and socket;
//! - [`socket`]: the Unix-domain (interprocess local socket) transport;
//! - [`rpc`]: the supervisor's side of request/answer: ids, one answer each, timeouts, and
//!   failing everything in flight when the node goes away.
//!
//! `socket`, `rpc` and the async frame helpers are the `transport` feature (on by default);
//! without it the crate has no tokio and no I/O.
//!
//! mediasoup's own types (RTP parameters, ICE/DTLS parameters) cross this wire as JSON
//! strings: the supervisor passes them between client and node without interpreting them,
//! and postcard cannot carry self-describing JSON values.

pub mod calls;
pub mod error;
pub mod frame;
pub mod messages;
pub mod recorder;
#[cfg(feature = "transport")]
pub mod rpc;
#[cfg(feature = "transport")]
pub mod socket;
pub mod stats;

pub use error::{FrameError, RpcError};
pub use messages::PROTOCOL_VERSION;
