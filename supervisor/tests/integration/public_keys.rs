//! `JOIN_PUBLIC_KEY` end to end: a supervisor given an Ed25519 or an RSA public key (PEM, made
//! with openssl for the test) lets in a peer whose token the matching private key signed
//! (EdDSA, RS256), and refuses one signed by another key, one of the other algorithm, and an
//! HS256 token "signed" with the public key's text.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use supervisor::join_tokens::{unix_now, Claims};

use crate::support::process::output_within;
use crate::support::signaling::{self, join_with_token, Expect};
use crate::support::Sfu;

/// A key pair made by `openssl genpkey -algorithm <algorithm>` in `dir`: the private key's
/// and the public key's PEM files.
fn key_pair(dir: &Path, name: &str, algorithm: &[&str]) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let out = output_within(
            Command::new("openssl").args(args),
            Duration::from_secs(60),
            "openssl",
        );
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let private_arg = private.to_str().expect("UTF-8 path");
    let mut genpkey = vec!["genpkey"];
    genpkey.extend_from_slice(algorithm);
    genpkey.extend_from_slice(&["-out", private_arg]);
    run(&genpkey);
    let public_arg = public.to_str().expect("UTF-8 path");
    run(&["pkey", "-in", private_arg, "-pubout", "-out", public_arg]);
    (private, public)
}

/// A token for `room` as `identity`, signed with `key` under `algorithm`.
fn signed(algorithm: Algorithm, key: &EncodingKey, room: &str, identity: &str) -> String {
    let claims = Claims {
        room: room.into(),
        sub: identity.into(),
        name: None,
        can_publish: None,
        can_subscribe: None,
        can_record: None,
        exp: unix_now() + 600,
        nbf: None,
    };
    encode(&Header::new(algorithm), &claims, key).expect("sign")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_key_lets_in_the_tokens_its_private_key_signed_eddsa_and_rs256() {
    let dir = std::env::temp_dir().join(format!("sfu-test-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ed_args: &[&str] = &["-algorithm", "ed25519"];
    let rsa_args: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    let ed = key_pair(&dir, "ed", ed_args);
    let ed_other = key_pair(&dir, "ed-other", ed_args);
    let rsa = key_pair(&dir, "rsa", rsa_args);
    let rsa_other = key_pair(&dir, "rsa-other", rsa_args);
    let ed_key = |pair: &(PathBuf, PathBuf)| {
        EncodingKey::from_ed_pem(&read(&pair.0)).expect("Ed25519 private key")
    };
    let rsa_key = |pair: &(PathBuf, PathBuf)| {
        EncodingKey::from_rsa_pem(&read(&pair.0)).expect("RSA private key")
    };

    for (what, algorithm, pair, key, other, other_algorithm) in [
        (
            "EdDSA",
            Algorithm::EdDSA,
            &ed,
            ed_key(&ed),
            ed_key(&ed_other),
            (Algorithm::RS256, rsa_key(&rsa)),
        ),
        (
            "RS256",
            Algorithm::RS256,
            &rsa,
            rsa_key(&rsa),
            rsa_key(&rsa_other),
            (Algorithm::EdDSA, ed_key(&ed)),
        ),
    ] {
        let public = pair.1.to_str().expect("UTF-8 path");
        let sfu = Sfu::start(&["--join-public-key", public]);
        let url = sfu.ws_url();
        let room = "keyed";
        // The right private key: in, under the token's identity.
        let mut sig = signaling::connect(&url, None).await;
        let token = signed(algorithm, &key, room, "alice");
        let joined = sig.ok(&join_with_token(room, "Alice", &token)).await;
        assert_eq!(joined.peers.len(), 0, "{what}: {joined:?}");
        // Refused: another key of the same kind, the other algorithm, HS256 with the public
        // key's text as its secret, and no token at all.
        let forged_hs256 = signed(
            Algorithm::HS256,
            &EncodingKey::from_secret(&read(&pair.1)),
            room,
            "mallory",
        );
        let cases = [
            (
                "another key",
                Some(signed(algorithm, &other, room, "mallory")),
            ),
            (
                "the other algorithm",
                Some(signed(
                    other_algorithm.0,
                    &other_algorithm.1,
                    room,
                    "mallory",
                )),
            ),
            ("HS256 with the public key as secret", Some(forged_hs256)),
            ("no token", None),
        ];
        for (case, token) in cases {
            let mut sig = signaling::connect(&url, None).await;
            let mut args = signaling::join(room, "Mallory");
            args.token = token;
            let refused = sig.refused(&args).await;
            assert_eq!(refused.code(), "unauthorized", "{what}, {case}: {refused}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
