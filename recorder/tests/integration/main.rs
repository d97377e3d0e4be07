//! The recorder's integration tests, one binary with a module per area: a track written from
//! ffmpeg's RTP, and the `recorder` process driven over its socket as the supervisor drives it.

mod process;
mod support;
mod timestamps;
mod tracks;
