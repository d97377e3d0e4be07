//! The supervisor: the SFU's public entry point. It terminates TLS and the client protocol
//! (`/ws`), places rooms on media nodes it spawns and watches, serves the monitor API and
//! `/metrics`, and never touches media. `main` only parses the configuration and calls
//! [`run`]; tests can build the pieces in-process.

pub mod admission;
pub mod app;
pub mod config;
pub mod event_bus;
pub mod http;
pub mod join_tokens;
pub mod metrics;
pub mod metrics_page;
pub mod monitor_socket;
pub mod node_link;
pub mod node_pool;
pub mod node_watch;
pub mod outbox;
pub mod page;
pub mod rooms;
pub mod serve;
pub mod signaling;
pub mod stats;
pub mod tls;

pub use app::run;
pub use config::Config;
