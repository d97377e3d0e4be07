//! The link's handshake and sealing, over in-memory pipes.

use super::*;
use crate::messages::{LinkMessage, SessionId};
use tokio::io::{duplex, split, DuplexStream, ReadHalf, WriteHalf};

type Halves = (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>);

fn host(id: &str) -> HostId {
    HostId::parse(id).expect("valid host id")
}

fn secret(byte: u8) -> ClusterSecret {
    ClusterSecret::new(&[byte; 32]).expect("long enough")
}

async fn open(
    dial_secret: ClusterSecret,
    accept_secret: ClusterSecret,
) -> (
    Result<Link<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>, LinkError>,
    Result<Link<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>, LinkError>,
) {
    let (a, b) = duplex(64 * 1024);
    let (ar, aw): Halves = split(a);
    let (br, bw): Halves = split(b);
    let h1 = host("h1");
    let h2 = host("h2");
    tokio::join!(
        dial(ar, aw, &h1, &dial_secret),
        accept(br, bw, &h2, &accept_secret)
    )
}

#[tokio::test]
async fn hosts_with_the_same_secret_link_and_exchange_sealed_messages() {
    let (dialed, accepted) = open(secret(7), secret(7)).await;
    let mut dialed = dialed.expect("dialer links");
    let mut accepted = accepted.expect("acceptor links");
    assert_eq!(dialed.peer, host("h2"));
    assert_eq!(accepted.peer, host("h1"));
    let frame = LinkMessage::Frame {
        session: SessionId(1),
        text: r#"{"id":1,"method":"join"}"#.into(),
    };
    dialed.writer.send(&frame).await.expect("sent");
    assert_eq!(accepted.reader.recv().await.expect("received"), frame);
    accepted
        .writer
        .send(&LinkMessage::Pong(3))
        .await
        .expect("sent");
    assert_eq!(
        dialed.reader.recv().await.expect("received"),
        LinkMessage::Pong(3)
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_on_both_sides() {
    let (dialed, accepted) = open(secret(7), secret(8)).await;
    assert!(
        matches!(dialed, Err(LinkError::Refused(_))),
        "the dialer sees the acceptor's proof fail"
    );
    // The dialer stops before proving anything: the acceptor sees the link end.
    assert!(accepted.is_err());
}

#[tokio::test]
async fn a_dialer_that_forges_its_proof_is_refused() {
    let (a, b) = duplex(64 * 1024);
    let (mut ar, mut aw) = split(a);
    let (br, bw) = split(b);
    let forger = async {
        let mine = hello(&host("evil")).expect("hello");
        write_plain(&mut aw, &mine).await.expect("hello sent");
        let _accept: Accept = read_plain(&mut ar).await.expect("acceptor answers");
        // Echo garbage as a proof.
        write_plain(&mut aw, &Proof { proof: vec![0; 32] })
            .await
            .expect("sent");
    };
    let (h2, key) = (host("h2"), secret(7));
    let (_, accepted) = tokio::join!(forger, accept(br, bw, &h2, &key));
    match accepted {
        Err(LinkError::Refused(why)) => assert!(why.contains("evil"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|l| l.peer)),
    }
}

#[tokio::test]
async fn a_silent_dialer_times_out() {
    tokio::time::pause();
    let (_a, b) = duplex(1024);
    let (br, bw) = split(b);
    let (h2, key) = (host("h2"), secret(7));
    let accepted = accept(br, bw, &h2, &key).await;
    assert!(matches!(accepted, Err(LinkError::HandshakeTimeout)));
}

fn test_key() -> ring::aead::LessSafeKey {
    let key = ring::aead::UnboundKey::new(AEAD, &[9; 32]).expect("32-byte key");
    ring::aead::LessSafeKey::new(key)
}

async fn sealed(messages: &[LinkMessage]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = SealedWriter::new(&mut bytes, test_key());
    for message in messages {
        writer.send(message).await.expect("sealed");
    }
    bytes
}

#[tokio::test]
async fn an_altered_frame_does_not_open() {
    let mut bytes = sealed(&[LinkMessage::Ping(1)]).await;
    let mut reader = SealedReader::new(&bytes[..], test_key());
    assert_eq!(reader.recv().await.expect("opens"), LinkMessage::Ping(1));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut reader = SealedReader::new(&bytes[..], test_key());
    assert!(matches!(reader.recv().await, Err(LinkError::Tampered)));
}

#[tokio::test]
async fn a_replayed_frame_does_not_open() {
    let one = sealed(&[LinkMessage::Ping(1)]).await;
    let mut twice = one.clone();
    twice.extend_from_slice(&one);
    let mut reader = SealedReader::new(&twice[..], test_key());
    assert_eq!(reader.recv().await.expect("opens"), LinkMessage::Ping(1));
    assert!(matches!(reader.recv().await, Err(LinkError::Tampered)));
}

#[tokio::test]
async fn an_oversized_length_is_refused_before_allocating() {
    let bytes = u32::MAX.to_le_bytes();
    let mut reader = SealedReader::new(&bytes[..], test_key());
    assert!(matches!(reader.recv().await, Err(LinkError::TooLarge(_))));
}

#[test]
fn short_secrets_are_refused() {
    assert!(ClusterSecret::new(&[1; 31]).is_err());
    assert!(ClusterSecret::new(&[1; 32]).is_ok());
}
