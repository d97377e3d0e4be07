//! The recorder: writes each recorded track of the SFU to its own file, in its own process so
//! that nothing it does (a stalled disk, a crash) touches the media path. mediasoup sends it
//! each track over plain RTP; [`track`] receives one track ([`reorder`] puts packets back in
//! order and asks for what was lost, [`rtp`] reads and writes the headers involved) and
//! [`writer`] has GStreamer depacketize and mux it into a file any player opens.

pub mod reorder;
pub mod rtp;
pub mod service;
pub mod track;
pub mod writer;
