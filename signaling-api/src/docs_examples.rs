//! docs/protocol.md held to the types: every request example of its "Methods" section must
//! parse as that request, every answer example as that method's answer, and every method of
//! [`Method`] must have an example, so the document cannot drift from the code.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::*;

const PROTOCOL_MD: &str = include_str!("../../docs/protocol.md");

/// The one-line JSON examples of the "Methods" section, in order.
fn method_examples() -> Vec<&'static str> {
    let start = PROTOCOL_MD.find("## Methods").expect("a Methods section");
    let end = PROTOCOL_MD[start..]
        .find("## Notifications")
        .map_or(PROTOCOL_MD.len(), |i| start + i);
    let mut in_json = false;
    let mut examples = Vec::new();
    for line in PROTOCOL_MD[start..end].lines() {
        match line.trim() {
            "```json" => in_json = true,
            "```" => in_json = false,
            example if in_json && !example.is_empty() => examples.push(example),
            _ => {}
        }
    }
    examples
}

fn strict<T: DeserializeOwned>(data: &Value, example: &str) -> T {
    serde_json::from_value(data.clone()).unwrap_or_else(|e| panic!("{e}: {example}"))
}

/// `data` of a success answer, read as the answer `method` gives.
fn answer_of(method: Method, data: &Value, example: &str) -> Answer {
    match method {
        Method::Join => Answer::Joined(strict(data, example)),
        Method::Resume => Answer::Resumed(strict(data, example)),
        Method::GetRouterRtpCapabilities => Answer::RouterCapabilities(strict(data, example)),
        Method::CreateWebRtcTransport => Answer::TransportCreated(strict(data, example)),
        Method::RestartIce => Answer::IceRestarted(strict(data, example)),
        Method::Produce => Answer::Produced(strict(data, example)),
        Method::Consume => Answer::Consumed(strict(data, example)),
        Method::ProduceData => Answer::DataProduced(strict(data, example)),
        Method::ConsumeData => Answer::DataConsumed(strict(data, example)),
        _ => Answer::Done(strict(data, example)),
    }
}

#[test]
fn every_method_example_parses_as_its_request_and_its_answer() {
    let examples = method_examples();
    assert!(examples.len() >= 20, "{} examples", examples.len());
    let mut asked: Option<(u64, Method)> = None;
    let mut documented = Vec::new();
    for example in examples {
        let frame: Value =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{e}: {example}"));
        if frame.get("method").is_some() {
            let (id, method, data) =
                read_frame(example).unwrap_or_else(|(_, e)| panic!("{e}: {example}"));
            Request::from_data(method, data).unwrap_or_else(|e| panic!("{e}: {example}"));
            documented.push(method);
            asked = Some((id, method));
        } else {
            let (id, method) = asked.take().expect("an answer follows its request");
            assert_eq!(frame["id"], id, "{example}");
            assert_eq!(frame["ok"], true, "{example}");
            let answer = answer_of(method, &frame["data"], example);
            // And what the server would send for it is the example itself.
            let sent: Value = serde_json::from_str(&ok_answer(id, &answer)).unwrap();
            assert_eq!(sent, frame, "{example}");
        }
    }
    for method in Method::ALL {
        match how_documented(method) {
            Documented::Example => {
                assert!(
                    documented.contains(&method),
                    "no example of {}",
                    method.name()
                )
            }
            Documented::Table => assert!(
                PROTOCOL_MD.contains(&format!("`{}`", method.name())),
                "{} is not in the table",
                method.name()
            ),
        }
    }
}

enum Documented {
    /// A request/answer pair of its own.
    Example,
    /// A row of the "Pause, resume, close" table, which shares one example.
    Table,
}

/// How each method is documented (the match does not compile when a method is added).
fn how_documented(method: Method) -> Documented {
    match method {
        Method::Join
        | Method::Resume
        | Method::Leave
        | Method::GetRouterRtpCapabilities
        | Method::CreateWebRtcTransport
        | Method::ConnectWebRtcTransport
        | Method::RestartIce
        | Method::Produce
        | Method::Consume
        | Method::ResumeConsumer
        | Method::SetConsumerPreferredLayers
        | Method::ProduceData
        | Method::ConsumeData
        | Method::SetLastN
        | Method::StartRecording
        | Method::StopRecording => Documented::Example,
        Method::CloseTransport
        | Method::PauseProducer
        | Method::ResumeProducer
        | Method::CloseProducer
        | Method::PauseConsumer
        | Method::CloseConsumer => Documented::Table,
    }
}

#[test]
fn every_method_is_in_all() {
    // Each method's wire name maps back to it, once.
    let names: std::collections::BTreeSet<String> = Method::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(names.len(), Method::ALL.len());
    for method in Method::ALL {
        assert_eq!(Method::from_name(&method.name()), Ok(method));
    }
    // Every method the document names (in backticks in "Methods") is in ALL: a method added
    // and documented but left out of ALL fails here.
    let start = PROTOCOL_MD.find("## Methods").expect("a Methods section");
    let end = PROTOCOL_MD[start..]
        .find("## Notifications")
        .map_or(PROTOCOL_MD.len(), |i| start + i);
    let documented: std::collections::BTreeSet<String> = PROTOCOL_MD[start..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| Method::from_name(word).is_ok())
        .map(str::to_string)
        .collect();
    assert_eq!(documented, names);
}

#[test]
fn the_error_table_names_every_code_and_only_codes_there_are() {
    let start = PROTOCOL_MD
        .find("### Error codes")
        .expect("an error code table");
    let end = PROTOCOL_MD[start..]
        .find("\n## ")
        .map_or(PROTOCOL_MD.len(), |i| start + i);
    let documented: std::collections::BTreeSet<&str> = PROTOCOL_MD[start..end]
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let codes: std::collections::BTreeSet<&str> =
        ClientErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        codes.len(),
        ClientErrorCode::ALL.len(),
        "a code listed twice"
    );
    assert_eq!(
        documented, codes,
        "docs/protocol.md's error table against ClientErrorCode"
    );
}
