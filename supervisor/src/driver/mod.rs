//! What carries the room core's decisions out: the rooms' driver (it feeds `room_core` what
//! happened and performs what it asks, calling nodes without holding its lock), and the node
//! pool (spawning node processes, their IPC links, watching them live and die), and the
//! recordings (the recorder process and the rooms' tracks it writes).

pub mod node_link;
pub mod node_pool;
pub mod node_watch;
pub mod recorder_link;
pub mod recording_files;
pub mod recording_plan;
pub mod recordings;
pub mod remote;
pub mod rooms;
