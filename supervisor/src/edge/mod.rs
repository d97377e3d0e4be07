//! The network edge: the one port (HTTP/1.1 with a header timeout, TLS), its routes, the
//! `/ws` sessions and their outboxes, the `/monitor` sockets, and who may connect and how
//! fast (admission, join tokens), and WHIP/WHEP sessions (plain HTTP, SDP).

pub mod admission;
pub mod http;
pub mod join_tokens;
pub mod monitor_cluster;
pub mod monitor_socket;
pub mod outbox;
pub mod page;
pub mod serve;
pub mod signaling;
pub mod tls;
pub mod turn;
pub mod whip;
pub mod writer;
