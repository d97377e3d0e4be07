//! The supervisor: the SFU's public entry point. It terminates TLS and the client protocol
//! (`/ws`), places rooms on media nodes it spawns and watches, serves the monitor API and
//! `/metrics`, and never touches media. `main` only parses the configuration and calls
//! [`run`]; tests can build the pieces in-process.
//!
//! Its folders are its layers (the decisions themselves are the `room-core` crate's):
//! - [`edge`]: the network: HTTP(S), TLS, the `/ws` sessions and `/monitor`, admission;
//! - [`driver`]: what carries the room core's decisions out: the rooms' driver and the node
//!   pool (spawning, links, watching);
//! - [`monitoring`]: statistics, `/metrics`, the monitor's event bus;
//! - [`routing`]: cluster mode (etcd directory, links between supervisors, relayed
//!   sessions); never built on a single host.

pub mod app;
pub mod config;
pub mod driver;
pub mod edge;
pub mod monitoring;
pub mod routing;

pub use app::run;
pub use config::Config;
pub use edge::join_tokens;
