//! Opening a link: both supervisors prove they hold the cluster secret, without sending it,
//! and derive the link's keys from it.
//!
//! 1. The dialing host sends `Hello { version, host, nonce }` in clear.
//! 2. The accepting host answers with its own `Hello` and a proof: HMAC-SHA256 under the
//!    secret of both hellos, marked as the acceptor's.
//! 3. The dialing host checks it (a wrong secret on either side ends here: the dialer logs
//!    that the peer's proof is wrong) and sends its own proof, marked as the dialer's.
//! 4. The acceptor checks it (and refuses, logged, a dialer without the secret).
//!
//! Each direction then has its own key, HKDF-SHA256 of the secret salted with both nonces:
//! fresh for every link, so frames of one link are worthless on another.

use std::time::Duration;

use ids::HostId;
use ring::{hkdf, hmac, rand::SecureRandom};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::messages::LINK_VERSION;
use crate::sealed::{key, LinkError, SealedReader, SealedWriter, AEAD};

/// Shortest cluster secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// How long either side waits for the other's handshake messages.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest handshake message.
const MAX_HELLO_BYTES: usize = 512;

/// The secret every host of a cluster shares (`CLUSTER_SECRET`).
#[derive(Clone)]
pub struct ClusterSecret(hmac::Key, Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// A secret too short to protect the cluster.
#[derive(Debug, thiserror::Error)]
#[error("the cluster secret has {0} bytes: it needs at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)")]
pub struct ShortSecret(pub usize);

impl ClusterSecret {
    /// `bytes` as the secret, if long enough.
    pub fn new(bytes: &[u8]) -> Result<Self, ShortSecret> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret(bytes.len()));
        }
        Ok(Self(
            hmac::Key::new(hmac::HMAC_SHA256, bytes),
            bytes.to_vec(),
        ))
    }
}

/// What each side says first.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hello {
    version: u32,
    host: HostId,
    nonce: [u8; 32],
}

/// The acceptor's answer: its hello and its proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Accept {
    hello: Hello,
    proof: Vec<u8>,
}

/// The dialer's proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Proof {
    proof: Vec<u8>,
}

/// Who proves: the two proofs of one link differ, so one cannot be echoed as the other.
#[derive(Clone, Copy)]
enum Role {
    Dialer,
    Acceptor,
}

fn transcript(role: Role, dialer: &Hello, acceptor: &Hello) -> Vec<u8> {
    let mut t = Vec::with_capacity(200);
    t.extend_from_slice(match role {
        Role::Dialer => b"sfu-cluster-link dialer\0",
        Role::Acceptor => b"sfu-cluster-link acceptor",
    });
    for hello in [dialer, acceptor] {
        t.extend_from_slice(&hello.version.to_be_bytes());
        t.extend_from_slice(&hello.nonce);
        t.push(hello.host.as_str().len() as u8);
        t.extend_from_slice(hello.host.as_str().as_bytes());
    }
    t
}

fn prove(secret: &ClusterSecret, role: Role, dialer: &Hello, acceptor: &Hello) -> Vec<u8> {
    hmac::sign(&secret.0, &transcript(role, dialer, acceptor))
        .as_ref()
        .to_vec()
}

fn check(
    secret: &ClusterSecret,
    role: Role,
    dialer: &Hello,
    acceptor: &Hello,
    proof: &[u8],
) -> bool {
    hmac::verify(&secret.0, &transcript(role, dialer, acceptor), proof).is_ok()
}

/// The two keys of a link: (dialer → acceptor, acceptor → dialer).
fn keys(
    secret: &ClusterSecret,
    dialer: &Hello,
    acceptor: &Hello,
) -> Result<(ring::aead::LessSafeKey, ring::aead::LessSafeKey), LinkError> {
    let mut salt = Vec::with_capacity(64);
    salt.extend_from_slice(&dialer.nonce);
    salt.extend_from_slice(&acceptor.nonce);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&secret.1);
    let derive = |info: &'static [u8]| {
        let infos = [info];
        prk.expand(&infos, AEAD)
            .map(key)
            .map_err(|_| LinkError::Refused("link key derivation failed".into()))
    };
    Ok((
        derive(b"sfu-cluster-link dialer->acceptor")?,
        derive(b"sfu-cluster-link acceptor->dialer")?,
    ))
}

fn hello(me: &HostId) -> Result<Hello, LinkError> {
    let mut nonce = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| LinkError::Refused("no system randomness".into()))?;
    Ok(Hello {
        version: LINK_VERSION,
        host: me.clone(),
        nonce,
    })
}

async fn write_plain<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    message: &T,
) -> Result<(), LinkError> {
    let body = postcard::to_stdvec(message)?;
    w.write_all(&(body.len() as u32).to_le_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

async fn read_plain<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
) -> Result<T, LinkError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(LinkError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_HELLO_BYTES {
        return Err(LinkError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(postcard::from_bytes(&body)?)
}

/// An open link: the peer host and the two sealed halves.
pub struct Link<R, W> {
    /// The host at the other end, proven to hold the secret.
    pub peer: HostId,
    /// Messages from it.
    pub reader: SealedReader<R>,
    /// Messages to it.
    pub writer: SealedWriter<W>,
}

fn version_check(peer: &Hello) -> Result<(), LinkError> {
    if peer.version == LINK_VERSION {
        Ok(())
    } else {
        Err(LinkError::Refused(format!(
            "link version {} (this host speaks {LINK_VERSION})",
            peer.version
        )))
    }
}

/// Opens a link on a connection this host made to another supervisor.
pub async fn dial<R, W>(
    mut reader: R,
    mut writer: W,
    me: &HostId,
    secret: &ClusterSecret,
) -> Result<Link<R, W>, LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mine = hello(me)?;
    let handshake = async {
        write_plain(&mut writer, &mine).await?;
        let accept: Accept = read_plain(&mut reader).await?;
        version_check(&accept.hello)?;
        if !check(secret, Role::Acceptor, &mine, &accept.hello, &accept.proof) {
            return Err(LinkError::Refused(format!(
                "host {} does not prove the cluster secret (is CLUSTER_SECRET the same on every host?)",
                accept.hello.host
            )));
        }
        let proof = prove(secret, Role::Dialer, &mine, &accept.hello);
        write_plain(&mut writer, &Proof { proof }).await?;
        Ok(accept.hello)
    };
    let theirs = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| LinkError::HandshakeTimeout)??;
    let (send, recv) = keys(secret, &mine, &theirs)?;
    Ok(Link {
        peer: theirs.host,
        reader: SealedReader::new(reader, recv),
        writer: SealedWriter::new(writer, send),
    })
}

/// Opens a link on a connection another supervisor made to this host.
pub async fn accept<R, W>(
    mut reader: R,
    mut writer: W,
    me: &HostId,
    secret: &ClusterSecret,
) -> Result<Link<R, W>, LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mine = hello(me)?;
    let handshake = async {
        let theirs: Hello = read_plain(&mut reader).await?;
        version_check(&theirs)?;
        let proof = prove(secret, Role::Acceptor, &theirs, &mine);
        write_plain(
            &mut writer,
            &Accept {
                hello: mine.clone(),
                proof,
            },
        )
        .await?;
        let Proof { proof } = read_plain(&mut reader).await?;
        if !check(secret, Role::Dialer, &theirs, &mine, &proof) {
            return Err(LinkError::Refused(format!(
                "a dialer calling itself {} does not prove the cluster secret",
                theirs.host
            )));
        }
        Ok(theirs)
    };
    let theirs = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| LinkError::HandshakeTimeout)??;
    let (recv, send) = keys(secret, &theirs, &mine)?;
    Ok(Link {
        peer: theirs.host,
        reader: SealedReader::new(reader, recv),
        writer: SealedWriter::new(writer, send),
    })
}

#[cfg(test)]
mod tests;
