//! The client signaling protocol of `/ws` (docs/protocol.md), typed: frames, error codes,
//! the methods and their arguments, their answers, the server's notifications, and the
//! validation of what a client sends. Shared by the supervisor (which serves it), the loadgen
//! and the tests (which speak it). Plain types and functions, no I/O.

mod answers;
pub mod calls;
#[cfg(feature = "client")]
pub mod client;
#[cfg(test)]
mod docs_examples;
pub mod frames;
pub mod media;
pub mod notifications;
#[cfg(test)]
mod props;
mod requests;

pub use calls::Call;
pub use ids::{ConsumerId, DataConsumerId, DataProducerId, ProducerId, TransportId};
pub use notifications::{JoinedPeer, Notification, TransportState};

use serde::Serialize;
use serde_json::{json, Value};

pub use answers::*;
pub use requests::*;

/// Largest text frame a client may send; larger closes the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Error codes of error answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientErrorCode {
    /// Not JSON, not an object, missing or mistyped field.
    BadRequest,
    /// No such method.
    UnknownMethod,
    /// Well-typed but not acceptable.
    InvalidArgument,
    /// The method needs a joined room.
    NotJoined,
    /// `join` while in a room.
    AlreadyJoined,
    /// Join token missing or refused.
    Unauthorized,
    /// The join token does not grant this (publishing or subscribing).
    Forbidden,
    /// No such transport, producer or consumer of this peer.
    NotFound,
    /// The room is full.
    RoomFull,
    /// The peer has too many producers.
    TooManyProducers,
    /// The peer has too many transports.
    TooManyTransports,
    /// The peer has too many consumers (data consumers included).
    TooManyConsumers,
    /// The peer consumes this producer (or data producer) already.
    AlreadyConsuming,
    /// The connection sends requests faster than its rate.
    RateLimited,
    /// Every worker is full and the node pool is at its cap.
    Capacity,
    /// The node hosting the room failed or timed out.
    NodeUnavailable,
    /// In a cluster: where the room lives cannot be decided now (the directory, etcd, cannot
    /// be reached from this host, or the room's host cannot be reached): try again, or
    /// through another host.
    ClusterUnavailable,
    /// mediasoup refused the request.
    MediaError,
    /// The SFU is stopping.
    ShuttingDown,
    /// A bug.
    Internal,
}

impl ClientErrorCode {
    /// Every code (a test holds it to docs/protocol.md's table, both ways).
    pub const ALL: [ClientErrorCode; 20] = [
        ClientErrorCode::BadRequest,
        ClientErrorCode::UnknownMethod,
        ClientErrorCode::InvalidArgument,
        ClientErrorCode::NotJoined,
        ClientErrorCode::AlreadyJoined,
        ClientErrorCode::Unauthorized,
        ClientErrorCode::Forbidden,
        ClientErrorCode::NotFound,
        ClientErrorCode::RoomFull,
        ClientErrorCode::TooManyProducers,
        ClientErrorCode::TooManyTransports,
        ClientErrorCode::TooManyConsumers,
        ClientErrorCode::AlreadyConsuming,
        ClientErrorCode::RateLimited,
        ClientErrorCode::Capacity,
        ClientErrorCode::NodeUnavailable,
        ClientErrorCode::ClusterUnavailable,
        ClientErrorCode::MediaError,
        ClientErrorCode::ShuttingDown,
        ClientErrorCode::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientErrorCode::BadRequest => "bad_request",
            ClientErrorCode::UnknownMethod => "unknown_method",
            ClientErrorCode::InvalidArgument => "invalid_argument",
            ClientErrorCode::NotJoined => "not_joined",
            ClientErrorCode::AlreadyJoined => "already_joined",
            ClientErrorCode::Unauthorized => "unauthorized",
            ClientErrorCode::Forbidden => "forbidden",
            ClientErrorCode::NotFound => "not_found",
            ClientErrorCode::RoomFull => "room_full",
            ClientErrorCode::TooManyProducers => "too_many_producers",
            ClientErrorCode::TooManyTransports => "too_many_transports",
            ClientErrorCode::TooManyConsumers => "too_many_consumers",
            ClientErrorCode::AlreadyConsuming => "already_consuming",
            ClientErrorCode::RateLimited => "rate_limited",
            ClientErrorCode::Capacity => "capacity",
            ClientErrorCode::NodeUnavailable => "node_unavailable",
            ClientErrorCode::ClusterUnavailable => "cluster_unavailable",
            ClientErrorCode::MediaError => "media_error",
            ClientErrorCode::ShuttingDown => "shutting_down",
            ClientErrorCode::Internal => "internal",
        }
    }
}

/// An error answer's body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ClientError {
    /// Class of the error.
    pub code: ClientErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

/// The longest error message an answer carries: messages may quote what the client sent
/// (a parser's words), and an answer must not be a way to make the server hold large frames.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// Client input quoted in an error message: at most [`MAX_ECHO_CHARS`] characters of it.
pub const MAX_ECHO_CHARS: usize = 64;

impl ClientError {
    /// An error of class `code`; the message is cut at [`MAX_ERROR_MESSAGE_BYTES`].
    pub fn new(code: ClientErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut end = MAX_ERROR_MESSAGE_BYTES - '…'.len_utf8();
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self { code, message }
    }
}

/// `input` as an error message quotes it: debug-escaped (no control characters reach a log
/// or a page) and cut to [`MAX_ECHO_CHARS`] characters.
pub fn echo(input: &str) -> String {
    let mut chars = input.chars();
    let head: String = chars.by_ref().take(MAX_ECHO_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// Reads a frame's envelope (the `envelope` crate, shared with `/monitor`) and names its
/// method. On error, the id to answer with (if one was readable) and the error.
pub fn read_frame(text: &str) -> Result<(u64, Method, Value), (Option<u64>, ClientError)> {
    let envelope = envelope::Envelope::parse(text).map_err(|e| {
        (
            e.id,
            ClientError::new(ClientErrorCode::BadRequest, e.message),
        )
    })?;
    let method = Method::from_name(&envelope.method).map_err(|e| (Some(envelope.id), e))?;
    Ok((envelope.id, method, envelope.data))
}

/// The success answer to request `id`.
pub fn ok_answer(id: u64, data: &Answer) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        id: u64,
        ok: bool,
        data: &'a Answer,
    }
    // Strings, ids and JSON values: serializing cannot fail.
    serde_json::to_string(&Frame { id, ok: true, data }).unwrap_or_else(|e| {
        tracing::error!("cannot serialize an answer: {e}");
        error_answer(
            Some(id),
            &ClientError::new(ClientErrorCode::Internal, e.to_string()),
        )
    })
}

/// The error answer to request `id` (`null` when it could not be read).
pub fn error_answer(id: Option<u64>, error: &ClientError) -> String {
    json!({
        "id": id,
        "ok": false,
        "error": { "code": error.code.as_str(), "message": error.message },
    })
    .to_string()
}

/// A connected client, for the life of its WebSocket (`peerId` on the wire).
pub type PeerId = uuid::Uuid;

/// Checks a room name: 1–64 characters of `A–Z a–z 0–9 _ - .`.
pub fn validate_room(room: &str) -> Result<(), ClientError> {
    let ok = (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ClientError::new(
            ClientErrorCode::InvalidArgument,
            "room must be 1-64 characters of A-Z a-z 0-9 _ - .",
        ))
    }
}

/// Trims a display name and checks it: 1–64 characters, no control characters.
pub fn validate_display_name(name: &str) -> Result<String, ClientError> {
    let name = name.trim();
    let count = name.chars().count();
    if (1..=64).contains(&count) && !name.chars().any(char::is_control) {
        Ok(name.to_string())
    } else {
        Err(ClientError::new(
            ClientErrorCode::InvalidArgument,
            "displayName must be 1-64 characters without control characters",
        ))
    }
}

/// Parses an id the server handed out (`transportId`, `producerId`, …); anything that is not
/// one of ours cannot exist.
pub fn parse_id<T: std::str::FromStr>(what: &str, id: &str) -> Result<T, ClientError> {
    id.parse()
        .map_err(|_| ClientError::new(ClientErrorCode::NotFound, format!("no {what} {}", echo(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quote_at_most_64_characters_of_what_the_client_sent() {
        let name = "m".repeat(60_000);
        let frame = format!(r#"{{"id":3,"method":"{name}"}}"#);
        let (id, error) = read_frame(&frame).unwrap_err();
        assert_eq!((id, error.code), (Some(3), ClientErrorCode::UnknownMethod));
        assert!(error.message.len() < 200, "{} bytes", error.message.len());
        assert!(error.message.contains(&"m".repeat(64)));
        assert!(!error.message.contains(&"m".repeat(65)));
        let error = parse_id::<uuid::Uuid>("producer", &"\n".repeat(1000)).unwrap_err();
        assert!(error.message.len() < 200, "{}", error.message);
        // Whatever a parser quotes, an error message stays short.
        let long = ClientError::new(ClientErrorCode::BadRequest, "é".repeat(10_000));
        assert!(long.message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(long.message.ends_with('…'));
    }

    #[test]
    fn a_frame_names_a_known_method_or_is_refused_with_its_id() {
        let (id, method, data) =
            read_frame(r#"{"id":3,"method":"join","data":{"room":"a"}}"#).unwrap();
        assert_eq!((id, method, data), (3, Method::Join, json!({"room":"a"})));
        let (id, e) = read_frame(r#"{"id":4,"method":"fly"}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(4), ClientErrorCode::UnknownMethod));
        let (id, e) = read_frame("not json").unwrap_err();
        assert_eq!((id, e.code), (None, ClientErrorCode::BadRequest));
        let (id, e) = read_frame(r#"{"id":5,"method":42}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(5), ClientErrorCode::BadRequest));
    }

    #[test]
    fn data_of_the_wrong_type_is_a_bad_request() {
        let e =
            Request::from_data(Method::Join, json!({"room": 1, "displayName": "x"})).unwrap_err();
        assert_eq!(e.code, ClientErrorCode::BadRequest);
        assert!(e.message.starts_with("join: "), "{}", e.message);
        let e = Request::from_data(
            Method::CreateWebRtcTransport,
            json!({"direction": "sideways"}),
        )
        .unwrap_err();
        assert_eq!(e.code, ClientErrorCode::BadRequest);
        let e = Request::from_data(Method::CloseConsumer, json!({})).unwrap_err();
        assert_eq!(e.code, ClientErrorCode::BadRequest);
        let request =
            Request::from_data(Method::CreateWebRtcTransport, json!({"direction": "recv"}))
                .unwrap();
        assert!(matches!(
            request,
            Request::CreateWebRtcTransport(CreateTransportArgs {
                direction: Direction::Recv,
                data: false,
            })
        ));
    }

    #[test]
    fn only_join_and_leave_work_outside_a_room() {
        assert!(!Method::Join.needs_room());
        assert!(!Method::Leave.needs_room());
        assert!(Method::Consume.needs_room());
        assert_eq!(
            Method::SetConsumerPreferredLayers.name(),
            "setConsumerPreferredLayers"
        );
    }

    #[test]
    fn room_names() {
        assert!(validate_room("demo-1.a_b").is_ok());
        for bad in ["", "a b", "ü", "x/y", &"a".repeat(65)] {
            assert_eq!(
                validate_room(bad).unwrap_err().code,
                ClientErrorCode::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn display_names_are_trimmed_and_checked() {
        assert_eq!(validate_display_name("  Zoë ").unwrap(), "Zoë");
        assert_eq!(
            validate_display_name(&"é".repeat(64))
                .unwrap()
                .chars()
                .count(),
            64
        );
        for bad in ["", "   ", "a\nb", "\u{7}", &"x".repeat(65)] {
            assert!(validate_display_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_have_the_documented_shape() {
        let e = ClientError::new(ClientErrorCode::NotJoined, "join a room first");
        let v: Value = serde_json::from_str(&error_answer(Some(4), &e)).unwrap();
        assert_eq!(
            v,
            json!({"id":4,"ok":false,"error":{"code":"not_joined","message":"join a room first"}})
        );
        let v: Value = serde_json::from_str(&error_answer(None, &e)).unwrap();
        assert_eq!(v["id"], Value::Null);
        let v: Value = serde_json::from_str(&ok_answer(1, &Answer::Done(Done {}))).unwrap();
        assert_eq!(v, json!({"id":1,"ok":true,"data":{}}));
    }
}
