//! The monitor API of the SFU: what the supervisor's `/monitor` WebSocket speaks, shared by
//! the supervisor (which answers) and the `monitor` CLI (which asks). See
//! `docs/monitor-api.md` for the wire format with examples.
//!
//! A client sends [`Request`]s; the supervisor answers each with an [`Answer`] carrying the
//! same id, and, after a `subscribe`, pushes [`EventMessage`]s and [`LaggedMessage`]s.
//! Field names are camelCase on the wire.

mod cluster;
mod diagnostics;
mod events;
mod messages;
mod recordings;
mod request;
mod views;

pub use cluster::*;
pub use diagnostics::*;
pub use events::*;
pub use messages::*;
pub use recordings::*;
pub use request::*;
pub use views::*;

/// HTTP header carrying the admin token on the WebSocket upgrade: `Authorization: Bearer …`.
pub const AUTHORIZATION_SCHEME: &str = "Bearer";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_of_a_newer_supervisor_reads_as_unknown_instead_of_failing() {
        let event: Event = serde_json::from_value(
            json!({"type": "somethingNew", "at": 5, "room": "demo", "detail": 1}),
        )
        .expect("an unknown event still reads");
        assert_eq!(event.kind, EventKind::Unknown);
        assert_eq!(event.at, 5);
        assert_eq!(event.kind.room(), None);
    }

    #[test]
    fn requests_have_the_documented_shape() {
        let cases = [
            (json!({"id": 1, "method": "summary"}), Query::Summary),
            (json!({"id": 1, "method": "nodes"}), Query::Nodes),
            (json!({"id": 1, "method": "rooms"}), Query::Rooms),
            (
                json!({"id": 1, "method": "room", "data": {"room": "demo"}}),
                Query::Room {
                    room: "demo".into(),
                },
            ),
            (
                json!({"id": 1, "method": "peer", "data": {"room": "demo", "peer": "Bob"}}),
                Query::Peer {
                    room: "demo".into(),
                    peer: "Bob".into(),
                },
            ),
            (
                json!({"id": 1, "method": "subscribe"}),
                Query::Subscribe {
                    room: None,
                    quality: false,
                },
            ),
            (
                json!({"id": 1, "method": "subscribe", "data": {"room": "demo", "quality": true}}),
                Query::Subscribe {
                    room: Some("demo".into()),
                    quality: true,
                },
            ),
            (
                json!({"id": 1, "method": "unsubscribe"}),
                Query::Unsubscribe,
            ),
            (json!({"id": 1, "method": "hosts"}), Query::Hosts),
        ];
        for (wire, query) in cases {
            let request = Request::parse(&wire.to_string()).unwrap();
            assert_eq!(request, Request { id: 1, query });
            // What the CLI sends parses back to the same request.
            let sent = serde_json::to_string(&request).unwrap();
            assert_eq!(Request::parse(&sent).unwrap(), request);
        }
    }

    #[test]
    fn bad_requests_get_the_right_error() {
        let code = |text: &str| {
            let (id, error) = Request::parse(text).unwrap_err();
            (id, error.code)
        };
        assert_eq!(
            code(r#"{"id":1,"method":"drop tables"}"#),
            (Some(1), ApiErrorCode::UnknownMethod)
        );
        assert_eq!(
            code(r#"{"id":2,"method":"room"}"#),
            (Some(2), ApiErrorCode::BadRequest)
        );
        assert_eq!(
            code(r#"{"id":3,"method":"room","data":{"room":7}}"#),
            (Some(3), ApiErrorCode::BadRequest)
        );
        assert_eq!(
            code(r#"{"id":4,"method":7}"#),
            (Some(4), ApiErrorCode::BadRequest)
        );
        for text in [
            r#"{"method":"summary"}"#,
            r#"{"id":"1","method":"summary"}"#,
            r#"{"id":-1,"method":"summary"}"#,
            "[1]",
            "summary",
        ] {
            assert_eq!(code(text), (None, ApiErrorCode::BadRequest), "{text}");
        }
    }

    #[test]
    fn server_messages_are_told_apart() {
        let answer = Answer::ok(3, json!({"rooms": 1}));
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            ServerMessage::Answer(answer)
        );
        let error = Answer::error(None, ApiError::new(ApiErrorCode::Disabled, "off"));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"id": null, "ok": false, "error": {"code": "disabled", "message": "off"}})
        );
        let event = EventMessage {
            event: Event {
                at: 5,
                kind: EventKind::PeerLeft {
                    room: "r".into(),
                    peer_id: "p".into(),
                },
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"event": {"at": 5, "type": "peerLeft", "room": "r", "peerId": "p"}})
        );
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            ServerMessage::Event(event)
        );
        let lagged: ServerMessage = serde_json::from_str(r#"{"lagged":{"missed":4}}"#).unwrap();
        assert_eq!(
            lagged,
            ServerMessage::Lagged(LaggedMessage {
                lagged: Lagged { missed: 4 }
            })
        );
    }

    #[test]
    fn events_know_their_room() {
        let joined = EventKind::PeerJoined {
            room: "a".into(),
            peer_id: "p".into(),
            display_name: "n".into(),
        };
        assert_eq!(joined.room(), Some("a"));
        let exited = EventKind::NodeExited {
            node: "node-1".into(),
            reason: "killed".into(),
        };
        assert_eq!(exited.room(), None);
    }
}
