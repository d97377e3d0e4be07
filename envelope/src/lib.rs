//! The request envelope both JSON WebSocket protocols of the SFU share: the client protocol
//! on `/ws` (docs/protocol.md) and the monitor API on `/monitor` (docs/monitor-api.md). A
//! request is `{"id": n, "method": "…", "data": {…}}`; this crate reads the id and the method
//! and hands the arguments on untouched, so each protocol types its own methods. One parser
//! means one rule for ids on both sockets.

use serde_json::{Map, Value};

/// Largest request id: JavaScript's safe integers, so that any client can echo it.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// A request as read off the wire, before its method's arguments are looked at.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The client's id, echoed in the answer.
    pub id: u64,
    /// The method name.
    pub method: String,
    /// The arguments: an empty object when `data` is absent or `null`.
    pub data: Value,
}

/// Why a frame is not a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvelopeError {
    /// The id to answer with, when it could be read.
    pub id: Option<u64>,
    /// What is wrong, for a person.
    pub message: String,
}

impl Envelope {
    /// Reads the envelope of a text frame.
    pub fn parse(text: &str) -> Result<Envelope, EnvelopeError> {
        let bad = |id, message: String| EnvelopeError { id, message };
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(None, format!("not JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(bad(None, "a request is a JSON object".into()));
        };
        let id = object
            .get("id")
            .and_then(Value::as_u64)
            .filter(|&id| id <= MAX_ID)
            .ok_or_else(|| bad(None, "\"id\" must be an integer from 0 to 2^53-1".into()))?;
        let Some(Value::String(method)) = object.remove("method") else {
            return Err(bad(Some(id), "\"method\" must be a string".into()));
        };
        let data = match object.remove("data") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(data) => data,
        };
        Ok(Envelope { id, method, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_good_request_keeps_its_arguments() {
        let env = Envelope::parse(r#"{"id":3,"method":"join","data":{"room":"a"}}"#).unwrap();
        assert_eq!(env.id, 3);
        assert_eq!(env.method, "join");
        assert_eq!(env.data, json!({"room":"a"}));
    }

    #[test]
    fn absent_or_null_data_reads_as_an_empty_object() {
        for text in [
            r#"{"id":1,"method":"leave"}"#,
            r#"{"id":1,"method":"leave","data":null}"#,
        ] {
            assert_eq!(Envelope::parse(text).unwrap().data, json!({}));
        }
    }

    #[test]
    fn errors_keep_the_id_when_it_was_readable() {
        for (text, id) in [
            ("not json", None),
            ("[1,2]", None),
            (r#"{"id":"7","method":"join"}"#, None),
            (r#"{"id":-1,"method":"join"}"#, None),
            (r#"{"id":1.5,"method":"join"}"#, None),
            (r#"{"id":9007199254740992,"method":"x"}"#, None),
            (r#"{"id":5,"method":42}"#, Some(5)),
            (r#"{"id":9007199254740991}"#, Some(MAX_ID)),
        ] {
            assert_eq!(Envelope::parse(text).unwrap_err().id, id, "{text}");
        }
    }
}
