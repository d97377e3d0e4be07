//! The supervisor's integration tests, one binary with a module per area (as the mediasoup
//! crate does): every test starts the real `supervisor`, which spawns real `node` processes,
//! and talks to it as clients do (str0m peers, the `monitor` and `loadgen` binaries, Chromium).

mod announcements;
mod bad_input;
mod browser;
mod call;
mod cluster;
mod cluster_drain;
mod cluster_failover;
mod cluster_recording;
mod cluster_spanning;
mod data_channels;
mod diagnostics;
mod drain;
mod faults;
mod feedback;
mod firewalls;
mod fuzz;
mod hostile;
mod keepalive;
mod last_n;
mod layers;
mod leaks;
mod limits;
mod load;
mod methods;
mod monitor;
mod observability;
mod package;
mod ports;
mod proxies;
mod public_keys;
mod recording;
mod recording_participants;
mod resume;
mod spanning;
mod speakers;
mod startup;
mod support;
mod timeouts;
mod tokens;
mod watch;
mod whip;
mod whip_edges;
