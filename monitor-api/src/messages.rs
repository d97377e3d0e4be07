//! What the supervisor sends back: answers (data or an [`ApiError`]), events and lag notices.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Event;

/// Classes of errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// Not JSON, not an object, a missing or mistyped field.
    BadRequest,
    /// No such method.
    UnknownMethod,
    /// No such room (or participant).
    NotFound,
    /// The supervisor has no `MONITOR_TOKEN`: the API is off.
    Disabled,
    /// A node did not answer in time.
    Unavailable,
    /// The monitor token is missing or wrong (HTTP 401, before any WebSocket exists).
    Unauthorized,
    /// Too many failed logins from this address (HTTP 429, with `Retry-After`).
    RateLimited,
    /// The SFU cannot do it as configured (recording without `RECORD_DIR`, an unwritable
    /// folder); the message says what to change.
    Refused,
}

/// The body of an HTTP refusal of `/monitor` (401, 404 when the API is off, 429, 503), before
/// any WebSocket exists: `{"error":{"code":"…","message":"…"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Why.
    pub error: ApiError,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The class of failure.
    pub code: ApiErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error of class `code`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.code).unwrap_or(Value::Null);
        write!(f, "{}: {}", code.as_str().unwrap_or("error"), self.message)
    }
}

/// The answer to one request: `{"id":1,"ok":true,"data":{…}}` or
/// `{"id":1,"ok":false,"error":{"code":"…","message":"…"}}` (`id` is `null` when the request
/// could not be read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The request's id.
    pub id: Option<u64>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The reason when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Answer {
    /// A success carrying `data`.
    pub fn ok(id: u64, data: Value) -> Self {
        Self {
            id: Some(id),
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A failure.
    pub fn error(id: Option<u64>, error: ApiError) -> Self {
        Self {
            id,
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

/// An event pushed to a subscriber: `{"event":{"at":…,"type":"peerJoined",…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The event.
    pub event: Event,
}

/// Pushed instead of events a subscriber was too slow to take: `{"lagged":{"missed":12}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaggedMessage {
    /// What was lost.
    pub lagged: Lagged,
}

/// Events lost by a slow subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// How many events were dropped.
    pub missed: u64,
}

/// Anything the supervisor sends on `/monitor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerMessage {
    /// An answer.
    Answer(Answer),
    /// An event.
    Event(EventMessage),
    /// Events were dropped.
    Lagged(LaggedMessage),
}
