//! The cluster's wire, shared by every supervisor of a cluster (and the tools that read it):
//! - [`records`]: what each host publishes in etcd (its record under its lease, a room's
//!   owner) and the key layout;
//! - [`messages`]: the typed messages of the link between two supervisors (relayed client
//!   sessions, liveness);
//! - [`handshake`] and [`sealed`]: how a link is opened (both sides prove they hold the
//!   cluster secret, without sending it) and how every frame after that is sealed
//!   (ChaCha20-Poly1305 under keys derived for this link and direction): a peer without the
//!   secret can neither join the cluster nor read or alter what a link carries.

pub mod handshake;
pub mod messages;
pub mod records;
pub mod sealed;

pub use ids::HostId;
pub use messages::{LinkMessage, SessionId};
pub use records::{HostRecord, Keys};
