//! The SFU's decisions, without I/O: every machine here is fed what happened (and the time)
//! and says what to do, and is tested on virtual time without processes or sockets. The
//! supervisor carries their outputs out.
//!
//! One contract for every machine, str0m's: `handle(Input, now)` takes one thing that
//! happened at `now`; `poll_output()` then gives what to do, oldest first, until `None`. A
//! machine with timers ends each drain with `Output::Timeout(instant)`: the caller gives it
//! `Input::Timeout` at that instant unless another input comes first. Time and randomness
//! come in as inputs (`now`, a token source, fresh ids), never from the machine itself.
//!
//! - [`rooms`]: the room core: rooms, their routers and peers, and every decision on them;
//! - [`cluster`]: in a cluster of hosts, which host serves a room (owner, claim, relay,
//!   fencing);
//! - [`placement`]: which worker (or a new node) takes a new router of a room;
//! - [`lifecycle`]: the node pool: spawn, watch, replace;
//! - [`quality`]: the quality watch of a monitor that asked for quality events;
//! - [`rate`]: token buckets, per connection and per address.
//!
//! Nothing here depends on tokio, axum, ring or any I/O (`cargo tree -p room-core` shows it).

pub mod cluster;
pub mod lifecycle;
pub mod placement;
pub mod quality;
pub mod rate;
pub mod rooms;

pub use lifecycle::NodeId;

/// Clock difference tolerated between a join token's signer and this server: a token is good
/// until `exp` plus this, at the join and at a resume.
pub const TOKEN_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(30);
