//! The client signaling protocol of `/ws` (docs/protocol.md): frames, error codes, the
//! methods' arguments and their validation. Plain functions, no I/O.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest text frame a client may send; larger closes the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest request id (JavaScript's safe integers).
const MAX_ID: u64 = (1 << 53) - 1;

/// Error codes of error answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
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
    /// Token refused.
    Unauthorized,
    /// No such transport, producer or consumer of this peer.
    NotFound,
    /// The room is full.
    RoomFull,
    /// The peer has too many producers.
    TooManyProducers,
    /// Every worker is full and the node pool is at its cap.
    Capacity,
    /// The node hosting the room failed or timed out.
    NodeUnavailable,
    /// mediasoup refused the request.
    MediaError,
    /// The SFU is stopping.
    ShuttingDown,
    /// A bug.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::TooManyProducers => "too_many_producers",
            ErrorCode::Capacity => "capacity",
            ErrorCode::NodeUnavailable => "node_unavailable",
            ErrorCode::MediaError => "media_error",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
        }
    }
}

/// An error answer's body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ClientError {
    /// Class of the error.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ClientError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A request as read off the wire, before its method's arguments are looked at.
#[derive(Debug, PartialEq)]
pub struct Envelope {
    /// The client's id for the answer.
    pub id: u64,
    /// The method name.
    pub method: String,
    /// The arguments (`null` when absent).
    pub data: Value,
}

/// Reads the envelope of a text frame. On error, the id to answer with (if one was
/// readable) and the error.
pub fn parse_envelope(text: &str) -> Result<Envelope, (Option<u64>, ClientError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            None,
            ClientError::new(ErrorCode::BadRequest, format!("not JSON: {e}")),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err((
            None,
            ClientError::new(ErrorCode::BadRequest, "a request is a JSON object"),
        ));
    };
    let id = match object.get("id") {
        Some(Value::Number(n)) => n.as_u64().filter(|&id| id <= MAX_ID),
        _ => None,
    };
    let Some(id) = id else {
        return Err((
            None,
            ClientError::new(
                ErrorCode::BadRequest,
                "\"id\" must be an integer from 0 to 2^53-1",
            ),
        ));
    };
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        _ => {
            return Err((
                Some(id),
                ClientError::new(ErrorCode::BadRequest, "\"method\" must be a string"),
            ))
        }
    };
    let data = object.remove("data").unwrap_or(Value::Null);
    Ok(Envelope { id, method, data })
}

/// Parses a method's arguments; absent `data` reads as an empty object.
pub fn parse_data<T: DeserializeOwned>(method: &str, data: Value) -> Result<T, ClientError> {
    let data = if data.is_null() { json!({}) } else { data };
    serde_json::from_value(data)
        .map_err(|e| ClientError::new(ErrorCode::BadRequest, format!("{method}: {e}")))
}

/// The success answer to request `id`.
pub fn ok_answer(id: u64, data: Value) -> String {
    json!({ "id": id, "ok": true, "data": data }).to_string()
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
            ErrorCode::InvalidArgument,
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
            ErrorCode::InvalidArgument,
            "displayName must be 1-64 characters without control characters",
        ))
    }
}

/// Arguments of `join`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinArgs {
    /// Room name.
    pub room: String,
    /// Name shown to the others.
    pub display_name: String,
    /// Access token (reserved).
    #[serde(default)]
    pub token: Option<String>,
}

/// Direction of a WebRTC transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Carries this peer's producers.
    Send,
    /// Carries this peer's consumers.
    Recv,
}

/// Arguments of `createWebRtcTransport`.
#[derive(Debug, Deserialize)]
pub struct CreateTransportArgs {
    /// `send` or `recv`.
    pub direction: Direction,
}

/// Arguments of `connectWebRtcTransport`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectTransportArgs {
    /// The transport.
    pub transport_id: String,
    /// mediasoup-client's DTLS parameters.
    pub dtls_parameters: serde_json::Map<String, Value>,
}

/// Arguments naming one transport.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportArgs {
    /// The transport.
    pub transport_id: String,
}

/// Kind of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// Arguments of `produce`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProduceArgs {
    /// The send transport.
    pub transport_id: String,
    /// `audio` or `video`.
    pub kind: Kind,
    /// mediasoup-client's RTP parameters.
    pub rtp_parameters: serde_json::Map<String, Value>,
}

/// Arguments of `consume`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeArgs {
    /// The receive transport.
    pub transport_id: String,
    /// The producer to receive.
    pub producer_id: String,
    /// The device's RTP capabilities.
    pub rtp_capabilities: serde_json::Map<String, Value>,
}

/// Arguments naming one producer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerArgs {
    /// The producer.
    pub producer_id: String,
}

/// Arguments naming one consumer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerArgs {
    /// The consumer.
    pub consumer_id: String,
}

/// Arguments of `setConsumerPreferredLayers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferredLayersArgs {
    /// The consumer.
    pub consumer_id: String,
    /// Spatial layer.
    pub spatial_layer: u8,
    /// Temporal layer (highest when absent).
    #[serde(default)]
    pub temporal_layer: Option<u8>,
}

/// Parses an id the server handed out (`transportId`, `producerId`, …); anything that is not
/// one of ours cannot exist.
pub fn parse_id<T: std::str::FromStr>(what: &str, id: &str) -> Result<T, ClientError> {
    id.parse()
        .map_err(|_| ClientError::new(ErrorCode::NotFound, format!("no {what} {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_of_a_good_request() {
        let env = parse_envelope(r#"{"id":3,"method":"join","data":{"room":"a"}}"#).unwrap();
        assert_eq!(env.id, 3);
        assert_eq!(env.method, "join");
        assert_eq!(env.data, json!({"room":"a"}));
    }

    #[test]
    fn envelope_errors_keep_the_id_when_readable() {
        let (id, e) = parse_envelope("not json").unwrap_err();
        assert_eq!((id, e.code), (None, ErrorCode::BadRequest));
        let (id, e) = parse_envelope("[1,2]").unwrap_err();
        assert_eq!((id, e.code), (None, ErrorCode::BadRequest));
        let (id, _) = parse_envelope(r#"{"id":"7","method":"join"}"#).unwrap_err();
        assert_eq!(id, None);
        let (id, _) = parse_envelope(r#"{"id":-1,"method":"join"}"#).unwrap_err();
        assert_eq!(id, None);
        let (id, _) = parse_envelope(r#"{"id":9007199254740992,"method":"x"}"#).unwrap_err();
        assert_eq!(id, None);
        let (id, e) = parse_envelope(r#"{"id":5,"method":42}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(5), ErrorCode::BadRequest));
    }

    #[test]
    fn data_of_the_wrong_type_is_a_bad_request() {
        let e = parse_data::<JoinArgs>("join", json!({"room": 1, "displayName": "x"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e =
            parse_data::<CreateTransportArgs>("x", json!({"direction": "sideways"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let args = parse_data::<CreateTransportArgs>("x", json!({"direction": "recv"})).unwrap();
        assert_eq!(args.direction, Direction::Recv);
    }

    #[test]
    fn room_names() {
        assert!(validate_room("demo-1.a_b").is_ok());
        for bad in ["", "a b", "ü", "x/y", &"a".repeat(65)] {
            assert_eq!(
                validate_room(bad).unwrap_err().code,
                ErrorCode::InvalidArgument,
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
        let e = ClientError::new(ErrorCode::NotJoined, "join a room first");
        let v: Value = serde_json::from_str(&error_answer(Some(4), &e)).unwrap();
        assert_eq!(
            v,
            json!({"id":4,"ok":false,"error":{"code":"not_joined","message":"join a room first"}})
        );
        let v: Value = serde_json::from_str(&error_answer(None, &e)).unwrap();
        assert_eq!(v["id"], Value::Null);
        let v: Value = serde_json::from_str(&ok_answer(1, json!({}))).unwrap();
        assert_eq!(v, json!({"id":1,"ok":true,"data":{}}));
    }
}
