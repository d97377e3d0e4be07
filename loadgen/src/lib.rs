//! `loadgen`: many real WebRTC participants (str0m) in one process, for load tests and
//! benchmarks of the SFU, and of Janus' VideoRoom for comparison. It speaks `/ws` (through
//! `signaling-api`'s typed client, the protocol's one definition), WHIP and WHEP (plain
//! HTTP and SDP), and Janus' WebSocket API, never mediasoup.
//!
//! Every participant publishes synthetic but realistic media ([`media`]) and checks every
//! packet it receives ([`stream_stats`]); [`report`] says whether every stream that should
//! flow did.

pub mod cli;
pub mod cpu;
pub mod http;
pub mod janus_api;
pub mod janus_peer;
pub mod link;
pub mod media;
pub mod media_path;
pub mod participant;
pub mod report;
pub mod run;
pub mod sfu_peer;
mod sfu_rtc;
pub mod sfu_session;
pub mod stream_stats;
pub mod transport;
pub mod turn;
pub mod whip_peer;
pub mod ws;
