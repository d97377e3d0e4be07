//! Signed join tokens against the real supervisor: tokens printed by `supervisor token`, and
//! forged, expired, early and wrong-room ones refused with their reason, the rights a token
//! grants enforced, its name shown to the others, while a call in another room goes on.

use std::process::Command;

use serde_json::{Map, Value};
use signaling_api::calls::GetRouterRtpCapabilities;
use signaling_api::client::{CallError, Client};
use signaling_api::media;
use signaling_api::{ConsumeArgs, Consumed, Direction, Kind, ProduceArgs, ProducerId, ResumeArgs};
use supervisor::join_tokens::{sign_with_secret, unix_now, Claims};

use crate::support::bystanders::Bystanders;
use crate::support::peer::{opus_parameters, Joining};
use crate::support::process::output_within;
use crate::support::rtc::PayloadTypes;
use crate::support::signaling::{self, join, join_with_token, transport, Expect};
use crate::support::Sfu;

/// A command that prints a token or refuses to start is done in well under this.
const CLI_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// What `supervisor token ARGS` prints with JOIN_SECRET set to `secret`.
fn cli_token(secret: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_supervisor"));
    command
        .arg("token")
        .args(args)
        .env_remove("JOIN_SECRET")
        .env_remove("JOIN_TOKEN");
    if let Some(secret) = secret {
        command.env("JOIN_SECRET", secret);
    }
    let out = output_within(&mut command, CLI_DEADLINE, "supervisor token");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn token(args: &[&str]) -> String {
    cli_token(Some(SECRET), args).expect("supervisor token")
}

/// A token for `room` with `edit` applied to its claims, signed with `secret`.
fn crafted(secret: &str, room: &str, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = Claims {
        room: room.into(),
        sub: "crafted".into(),
        name: None,
        can_publish: None,
        can_subscribe: None,
        can_record: None,
        exp: unix_now() + 600,
        nbf: None,
    };
    edit(&mut claims);
    sign_with_secret(secret.as_bytes(), &claims).expect("sign")
}

async fn refused(url: &str, room: &str, token: Option<&str>) -> CallError {
    let mut sig = signaling::connect(url, None).await;
    let mut args = join(room, "Mallory");
    args.token = token.map(str::to_string);
    let refused = sig.refused(&args).await;
    // The connection stays usable: a right token gets in.
    let right = self::token(&["--room", room, "--identity", "m"]);
    sig.ok(&join_with_token(room, "Mallory", &right)).await;
    refused
}

#[test]
fn the_token_command_needs_the_secret() {
    let error = cli_token(None, &["--room", "r", "--identity", "i"]).expect_err("no secret");
    assert!(error.contains("JOIN_SECRET"), "{error}");
    let error = cli_token(Some("short"), &["--room", "r", "--identity", "i"]).expect_err("short");
    assert!(error.contains("at least 32 bytes"), "{error}");
}

#[test]
fn the_removed_shared_token_stops_the_supervisor_with_a_pointer_to_join_secret() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_supervisor"));
    command.env("JOIN_TOKEN", "s3cret").args(["--port", "1"]);
    let out = output_within(&mut command, CLI_DEADLINE, "supervisor");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JOIN_TOKEN") && stderr.contains("JOIN_SECRET"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_their_reason_while_a_call_elsewhere_goes_on() {
    let sfu = Sfu::start(&["--join-secret", SECRET]);
    let url = sfu.ws_url();
    let anywhere = token(&["--room", "*", "--identity", "bystander"]);
    let bystanders = Bystanders::start(&url, None, Some(&anywhere)).await;

    let cases: [(&str, Option<String>, &str); 5] = [
        ("missing", None, "needs a join token"),
        (
            "forged",
            Some(crafted(
                "another-secret-of-at-least-32-bytes!!",
                "standup",
                |_| {},
            )),
            "bad token signature",
        ),
        (
            "expired",
            Some(crafted(SECRET, "standup", |c| c.exp = unix_now() - 120)),
            "token expired",
        ),
        (
            "early",
            Some(crafted(SECRET, "standup", |c| {
                c.nbf = Some(unix_now() + 600)
            })),
            "not yet valid",
        ),
        (
            "other room",
            Some(token(&["--room", "board", "--identity", "m"])),
            "token is for room \"board\"",
        ),
    ];
    for (case, token, reason) in cases {
        let refused = refused(&url, "standup", token.as_deref()).await;
        assert_eq!(refused.code(), "unauthorized", "{case}: {refused}");
        assert!(refused.to_string().contains(reason), "{case}: {refused}");
    }
    assert!(sfu.log_text().contains("join refused: token"));
    bystanders.assert_unharmed().await;
}

/// The consume request of `sig` for `producer` on a new receive transport.
async fn consume(
    sig: &mut Client,
    producer: &ProducerId,
    caps: &Map<String, Value>,
) -> Result<Consumed, CallError> {
    let recv = sig.ok(&transport(Direction::Recv)).await;
    sig.call(&ConsumeArgs {
        transport_id: recv.transport_id.to_string(),
        producer_id: producer.to_string(),
        rtp_capabilities: caps.clone(),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_fixes_the_name_and_what_its_holder_may_publish_and_receive() {
    let sfu = Sfu::start(&["--join-secret", SECRET]);
    let url = sfu.ws_url();
    let anywhere = token(&["--room", "*", "--identity", "bystander"]);
    let bystanders = Bystanders::start(&url, None, Some(&anywhere)).await;
    let speaker_token = token(&["--room", "talk", "--identity", "sp", "--name", "Speaker"]);
    let mut speaker = Joining::new(&url)
        .token(Some(&speaker_token))
        .peer("talk", "Anyone", 3000)
        .await;

    // A viewer: joins and receives, may not publish.
    let viewer_token = token(&[
        "--room",
        "talk",
        "--identity",
        "v",
        "--name",
        "Viewer",
        "--no-publish",
    ]);
    let mut viewer = signaling::connect(&url, None).await;
    let joined = viewer
        .ok(&join_with_token(
            "talk",
            "Claims To Be The Host",
            &viewer_token,
        ))
        .await;
    let (_, told) = crate::support::signaling::next_joined(&mut speaker.signaling).await;
    assert_eq!(told, "Viewer", "the token's name, not the client's");
    let caps = PayloadTypes::from_router(&joined.router_rtp_capabilities).device_capabilities();
    let caps = media::object(&caps);
    let speakers_audio = joined.peers[0].producers[0].producer_id;
    consume(&mut viewer, &speakers_audio, &caps)
        .await
        .expect("a viewer may consume");
    let send = viewer.ok(&transport(Direction::Send)).await;
    let refused = viewer
        .refused(&ProduceArgs {
            transport_id: send.transport_id.to_string(),
            kind: Kind::Audio,
            rtp_parameters: media::object(&opus_parameters("0", 100, 4242, "Viewer")),
            app_data: None,
        })
        .await;
    assert_eq!(refused.code(), "forbidden", "{refused}");
    assert!(refused.to_string().contains("canPublish"), "{refused}");

    // A speaker-only token: publishes, may not consume.
    let mute_token = token(&["--room", "talk", "--identity", "d", "--no-subscribe"]);
    let mut deaf = signaling::connect(&url, None).await;
    deaf.ok(&join_with_token("talk", "Deaf", &mute_token)).await;
    let refused = consume(&mut deaf, &speakers_audio, &caps)
        .await
        .expect_err("may not consume");
    assert_eq!(refused.code(), "forbidden", "{refused}");
    assert!(refused.to_string().contains("canSubscribe"), "{refused}");

    // The speaker's own media was never in question.
    speaker.signaling.ok(&GetRouterRtpCapabilities {}).await;
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_name_in_its_token_a_peer_is_shown_by_its_identity_to_peers_and_monitors() {
    let monitor_token = "tokens-monitor-token-0123456789abcdef";
    let sfu = Sfu::start(&["--join-secret", SECRET, "--monitor-token", monitor_token]);
    let url = sfu.ws_url();
    let host_token = token(&["--room", "town", "--identity", "host-1", "--name", "Host"]);
    let mut host = signaling::connect(&url, None).await;
    host.ok(&join_with_token("town", "Anything", &host_token))
        .await;
    // A token without a name: the client asks to be called "Host" as well.
    let mallory_token = token(&["--room", "town", "--identity", "mallory@example.org"]);
    let mut mallory = signaling::connect(&url, None).await;
    mallory
        .ok(&join_with_token("town", "Host", &mallory_token))
        .await;
    let (_, told) = crate::support::signaling::next_joined(&mut host).await;
    assert_eq!(
        told, "mallory@example.org",
        "the token's identity, not the name the client chose"
    );
    let monitor_url = sfu.monitor_url();
    let args = ["--url", &monitor_url, "--token", monitor_token];
    let room = crate::support::monitor_json(&[&args[..], &["room", "town"]].concat());
    let mut who: Vec<(String, String)> = room["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            let name = p["displayName"].as_str().unwrap_or_default().to_string();
            (name, p["identity"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("Host".to_string(), "host-1".to_string()),
            ("mallory@example.org".into(), "mallory@example.org".into())
        ]
    );
    let table = crate::support::monitor_text(&[&args[..], &["room", "town"]].concat());
    assert!(table.contains("Host <host-1>"), "{table}");
    let peer = crate::support::monitor_text(&[&args[..], &["peer", "town", "Host"]].concat());
    assert!(peer.contains("Host <host-1>"), "{peer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_not_resumed_once_its_join_token_has_expired() {
    let sfu = Sfu::start(&["--join-secret", SECRET, "--resume-grace-secs", "60"]);
    let url = sfu.ws_url();
    // Valid for two more seconds (with the 30 s of clock skew tolerated), then expired.
    let skew = supervisor::join_tokens::CLOCK_SKEW.as_secs();
    let short = crafted(SECRET, "later", |c| c.exp = unix_now() + 2 - skew);
    let long = crafted(SECRET, "later", |c| c.exp = unix_now() + 3600);
    let mut tokens = Vec::new();
    for (name, token) in [("Short", &short), ("Long", &long)] {
        let mut sig = signaling::connect(&url, None).await;
        let joined = sig.ok(&join_with_token("later", name, token)).await;
        tokens.push(joined.resume_token);
        sig.abort();
    }
    // Past the short token's expiry (and its skew): seconds on the clock, not a wait for an
    // event.
    let expired_at = unix_now() + 3;
    while unix_now() <= expired_at {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut again = signaling::connect(&url, None).await;
    let resume = |token: &str| ResumeArgs {
        resume_token: token.into(),
    };
    let refused = again.refused(&resume(&tokens[0])).await;
    assert_eq!(refused.code(), "unauthorized", "{refused}");
    assert!(refused.to_string().contains("expired"), "{refused}");
    let resumed = again.ok(&resume(&tokens[1])).await;
    assert!(resumed.joined, "a session whose token holds is resumed");
    assert!(sfu
        .log_text()
        .contains("resume refused: its join token expired"));
}
