//! WHIP and WHEP (RFC 9725) for the SFU, without I/O: a client's SDP offer read
//! ([`Offer::read`]), turned into what the SFU asks of a room through its own protocol (the
//! producers a WHIP publisher's media become: [`Offer::publish`]; the device capabilities a
//! WHEP player consumes with: [`Offer::watch`]), and the SDP answer written back from the
//! server transport and those producers or consumers ([`answer`]). The supervisor's edge
//! serves the HTTP side; this crate only knows SDP and the signaling protocol's media types.
//!
//! The SFU is the answerer and is ICE-lite (mediasoup): the answer carries its ICE
//! credentials, its candidates and its DTLS fingerprint; the client's candidates are not
//! needed (its checks reach the SFU's candidates).

mod answer;
mod offer;
mod publish;
mod trickle;
mod watch;

pub use answer::{answer, AnswerMedia, Candidate, ServerTransport};
pub use offer::{Codec, Direction, Extension, Media, Offer};
pub use publish::{Produce, Publish};
pub use trickle::{restart_fragment, Fragment};
pub use watch::Watch;

/// The media type of WHIP and WHEP bodies.
pub const SDP: &str = "application/sdp";
/// The media type of a PATCH's trickled candidates and ICE restarts (RFC 8840).
pub const SDP_FRAG: &str = "application/trickle-ice-sdpfrag";

/// Why an offer (or a PATCH body) cannot be served: each is an HTTP status and a sentence for
/// the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is not SDP.
    #[error("the body is not an SDP offer: {0}")]
    NotSdp(String),
    /// A part every offer needs is missing (ICE credentials, a DTLS fingerprint, …).
    #[error("the offer is incomplete: {0}")]
    Incomplete(String),
    /// No audio or video section to serve.
    #[error("the offer has no audio or video to {0}")]
    NoMedia(&'static str),
    /// Media, but none in a codec the SFU forwards.
    #[error("no offered codec is one the SFU forwards: {0}")]
    NoCodec(String),
}

impl Refusal {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotSdp(_) | Refusal::Incomplete(_) => 400,
            Refusal::NoMedia(_) => 422,
            Refusal::NoCodec(_) => 406,
        }
    }
}
