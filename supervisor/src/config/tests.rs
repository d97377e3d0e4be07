//! The configuration's parsing and validation, as an operator meets them: defaults, the
//! combinations refused at start, secrets from files, and the `token` command.

use super::*;

fn parse(args: &[&str]) -> Config {
    Config::try_parse_from(std::iter::once("supervisor").chain(args.iter().copied())).unwrap()
}

#[test]
fn tls_mode_needs_files_and_public_ip() {
    assert_eq!(
        parse(&["--tls-mode", "1"]).validate(),
        Err(ConfigError::TlsFilesMissing)
    );
    let c = parse(&[
        "--tls-mode",
        "1",
        "--tls-cert-path",
        "c",
        "--tls-key-path",
        "k",
    ]);
    assert_eq!(c.validate(), Err(ConfigError::PublicIpMissing));
    let c = parse(&[
        "--tls-mode",
        "true",
        "--tls-cert-path",
        "c",
        "--tls-key-path",
        "k",
        "--public-ip",
        "1.2.3.4",
    ]);
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.rtc_ip(), IpAddr::from([0, 0, 0, 0]));
}

#[test]
fn plain_mode_defaults_to_loopback_media() {
    let c = parse(&[]);
    assert_eq!(c.validate(), Ok(()));
    assert!(!c.tls_mode);
    assert_eq!(c.port, 8000);
    assert_eq!(c.rtc_ip(), IpAddr::from([127, 0, 0, 1]));
    assert!(!parse(&["--tls-mode", "0"]).tls_mode);
}

#[test]
fn the_port_listens_on_loopback_unless_the_sfu_is_meant_to_be_public() {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let any = IpAddr::from([0, 0, 0, 0]);
    assert_eq!(parse(&[]).bind_address(), loopback);
    assert_eq!(parse(&["--public-ip", "203.0.113.7"]).bind_address(), any);
    let tls = [
        "--tls-mode",
        "1",
        "--tls-cert-path",
        "c",
        "--tls-key-path",
        "k",
    ];
    assert_eq!(parse(&tls).bind_address(), any);
    assert_eq!(parse(&["--bind", "0.0.0.0"]).bind_address(), any);
    let public_but_local = ["--public-ip", "203.0.113.7", "--bind", "127.0.0.1"];
    assert_eq!(parse(&public_but_local).bind_address(), loopback);
}

#[test]
fn a_silence_limit_must_outlast_the_ping_interval() {
    assert!(parse(&[]).validate().is_ok(), "15 s pings, 45 s limit");
    let e = parse(&[
        "--ws-ping-interval-secs",
        "30",
        "--ws-idle-timeout-secs",
        "30",
    ])
    .validate()
    .unwrap_err();
    assert!(matches!(e, ConfigError::Keepalive(30, 30)), "{e}");
    assert!(e.to_string().contains("--ws-idle-timeout-secs 30"));
}

#[test]
fn join_tokens_need_a_usable_key_and_the_old_shared_token_stops_the_start() {
    assert_eq!(
        parse(&["--join-token", "s3cret"]).validate(),
        Err(ConfigError::JoinTokenRemoved)
    );
    assert!(matches!(
        parse(&["--join-secret", "short"]).validate(),
        Err(ConfigError::JoinKey(_))
    ));
    let c = parse(&["--join-secret", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(c.validate(), Ok(()));
    assert!(c.join_verifier().unwrap().is_some());
    let e = parse(&["--join-public-key", "/nonexistent.pem"])
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    assert!(
        Config::try_parse_from(["supervisor", "--join-secret", "x", "--join-public-key", "k"])
            .is_err(),
        "one or the other"
    );
}

#[test]
fn the_token_command_takes_a_room_an_identity_and_a_lifetime() {
    let c = parse(&[
        "token",
        "--room",
        "standup",
        "--identity",
        "alice",
        "--ttl",
        "30m",
    ]);
    let Some(Command::Token(args)) = c.command else {
        panic!("a token command");
    };
    assert_eq!(
        (args.room.as_str(), args.identity.as_str()),
        ("standup", "alice")
    );
    assert_eq!(*args.ttl, std::time::Duration::from_secs(1800));
    assert!(!args.no_publish && !args.no_subscribe);
}

#[test]
fn monitor_tokens_must_be_long_and_fit_in_a_header() {
    let long = "a-Z_9.~".repeat(5);
    assert_eq!(parse(&["--monitor-token", &long]).validate(), Ok(()));
    assert_eq!(
        parse(&["--monitor-token", "short"]).validate(),
        Err(ConfigError::MonitorTokenShort(5))
    );
}

#[test]
fn secrets_come_from_files_instead_of_the_command_line() {
    let dir = std::env::temp_dir().join(format!("config-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (join, monitor) = (dir.join("join"), dir.join("monitor"));
    std::fs::write(&join, "j".repeat(40) + "\n").unwrap();
    std::fs::write(&monitor, "m".repeat(40)).unwrap();
    let mut c = parse(&[
        "--join-secret-file",
        join.to_str().unwrap(),
        "--monitor-token-file",
        monitor.to_str().unwrap(),
    ]);
    c.load_secrets().unwrap();
    assert_eq!(c.join_secret.as_deref(), Some("j".repeat(40).as_str()));
    assert_eq!(c.monitor_token.as_deref(), Some("m".repeat(40).as_str()));
    assert_eq!(c.validate(), Ok(()));
    assert!(
        Config::try_parse_from([
            "supervisor",
            "--monitor-token",
            "x",
            "--monitor-token-file",
            "f"
        ])
        .is_err(),
        "one or the other"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
