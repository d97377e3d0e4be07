//! Property tests of the monitor API's request parser: any text, and any JSON of a
//! request's shape with any method and any arguments, is a request or an error with a
//! documented code (`bad_request`, `unknown_method`) carrying the id when it was readable;
//! every query the CLI can send parses back to itself.

use monitor_api::{ApiErrorCode as ErrorCode, Query, Request};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
        Just(json!("demo")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![Just("room".to_string()), ".{0,10}"],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        Just(Query::Summary),
        Just(Query::Nodes),
        Just(Query::Rooms),
        "[a-z0-9-]{1,20}".prop_map(|room| Query::Room { room }),
        ("[a-z0-9-]{1,20}", "[A-Za-z0-9 ._-]{1,40}")
            .prop_map(|(room, peer)| Query::Peer { room, peer }),
        (proptest::option::of("[a-z0-9-]{1,20}"), any::<bool>())
            .prop_map(|(room, quality)| Query::Subscribe { room, quality }),
        Just(Query::Unsubscribe),
        Just(Query::Hosts),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_text_is_a_request_or_a_documented_error(text in ".{0,200}") {
        if let Err((_, e)) = Request::parse(&text) {
            prop_assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownMethod), "{e}");
        }
    }

    #[test]
    fn any_method_with_any_arguments_is_a_request_or_a_documented_error(
        id in prop_oneof![any::<i64>().prop_map(Value::from), any_json()],
        method in prop_oneof![
            proptest::sample::select(&["summary", "nodes", "rooms", "room", "subscribe", "unsubscribe"][..]).prop_map(String::from),
            ".{0,16}",
        ],
        data in prop_oneof![any_json(), Just(Value::Null)],
    ) {
        let text = json!({"id": id, "method": method, "data": data}).to_string();
        match Request::parse(&text) {
            Ok(request) => prop_assert_eq!(Some(request.id), id.as_u64()),
            Err((answered, e)) => {
                prop_assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownMethod), "{e}");
                if let Some(answered) = answered {
                    prop_assert_eq!(Some(answered), id.as_u64());
                }
            }
        }
    }

    #[test]
    fn every_query_parses_back_to_itself(id in 0u64..(1 << 53), query in query()) {
        let sent = serde_json::to_string(&Request { id, query: query.clone() }).unwrap();
        let parsed = Request::parse(&sent).unwrap();
        prop_assert_eq!(parsed, Request { id, query });
    }
}
