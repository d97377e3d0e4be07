//! Property tests of the `/ws` parser: any text, and any JSON of a request's shape with any
//! method and any arguments, is a request or an error answer with a documented code; never a
//! panic.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// The codes the parser may answer (all in docs/protocol.md's table); the rooms answer the
/// others.
const PARSER_CODES: [&str; 2] = ["bad_request", "unknown_method"];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        // Values the methods look for, to reach deeper into their arguments.
        prop_oneof![
            Just(json!("send")),
            Just(json!("recv")),
            Just(json!("audio")),
            Just(json!("video")),
            Just(json!("demo")),
            Just(json!("3f1c2a4e-8b7d-4c1e-9f3a-6d2b1c0e5a47")),
        ],
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("room".to_string()),
                    Just("displayName".to_string()),
                    Just("transportId".to_string()),
                    Just("producerId".to_string()),
                    Just("consumerId".to_string()),
                    Just("direction".to_string()),
                    Just("kind".to_string()),
                    Just("rtpParameters".to_string()),
                    Just("rtpCapabilities".to_string()),
                    Just("dtlsParameters".to_string()),
                    Just("spatialLayer".to_string()),
                    ".{0,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What a session does with `text` up to the rooms: the request, or the error answered.
fn parse(text: &str) -> Result<(u64, Request), (Option<u64>, ClientError)> {
    let (id, method, data) = read_frame(text)?;
    Request::from_data(method, data)
        .map(|r| (id, r))
        .map_err(|e| (Some(id), e))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_text_is_a_request_or_a_documented_error(text in ".{0,200}") {
        if let Err((_, e)) = parse(&text) {
            prop_assert!(PARSER_CODES.contains(&e.code.as_str()), "{e}");
        }
    }

    #[test]
    fn any_method_with_any_arguments_is_a_request_or_a_documented_error(
        id in prop_oneof![any::<i64>().prop_map(Value::from), any_json()],
        method in prop_oneof![proptest::sample::select(&Method::ALL[..]).prop_map(Method::name), ".{0,20}"],
        data in prop_oneof![any_json(), Just(Value::Null)],
    ) {
        let frame = json!({"id": id, "method": method, "data": data}).to_string();
        match parse(&frame) {
            Ok((parsed, _)) => prop_assert_eq!(Some(parsed), id.as_u64()),
            Err((answered, e)) => {
                prop_assert!(PARSER_CODES.contains(&e.code.as_str()), "{e}");
                // The answer carries the id whenever it was readable.
                if let Some(answered) = answered {
                    prop_assert_eq!(Some(answered), id.as_u64());
                }
                // And it serializes as the documented error frame.
                let v: Value = serde_json::from_str(&error_answer(answered, &e)).unwrap();
                prop_assert_eq!(&v["ok"], &json!(false));
            }
        }
    }
}
