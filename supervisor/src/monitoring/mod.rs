//! What the SFU tells about itself: the statistics the monitor API answers from (media
//! statistics collected from the nodes only while asked), `/metrics`, and the bus of monitor
//! events.

pub mod event_bus;
pub mod metrics;
pub mod metrics_page;
pub mod stats;
