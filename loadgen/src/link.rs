//! How a participant's transport reaches the SFU: its own UDP socket; one TCP connection to
//! the SFU's passive ICE-TCP candidate (what a client behind a firewall that drops UDP does),
//! every STUN, DTLS and SRTP packet framed with a 2-byte length (RFC 4571); or a TURN
//! allocation (`turn.rs`).

use std::io;
use std::net::{IpAddr, SocketAddr};

use str0m::net::{Protocol, TcpType};
use str0m::Candidate;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::mpsc;

use crate::turn::TurnLink;

/// Frames read ahead of the transport's task; past it the reader waits (TCP then slows the
/// sender down).
const FRAME_QUEUE: usize = 1024;

/// A transport's way to the SFU.
pub enum Link {
    /// A UDP socket of its own.
    Udp(UdpSocket),
    /// One TCP connection to the SFU.
    Tcp(TcpLink),
    /// An allocation on a TURN server, relaying to the SFU (boxed: its credentials are large).
    Turn(Box<TurnLink>),
}

/// A TCP connection to an ICE-TCP candidate.
pub struct TcpLink {
    writer: OwnedWriteHalf,
    frames: mpsc::Receiver<io::Result<Vec<u8>>>,
    local: SocketAddr,
    remote: SocketAddr,
}

impl Link {
    /// Connects from `ip` to the passive TCP candidate `remote`; the link and our (active)
    /// candidate.
    pub async fn connect_tcp(ip: IpAddr, remote: SocketAddr) -> io::Result<(Link, Candidate)> {
        let socket = match ip {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(ip, 0))?;
        let stream = socket.connect(remote).await?;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let candidate = Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let (mut reader, writer) = stream.into_split();
        let (tx, frames) = mpsc::channel(FRAME_QUEUE);
        tokio::spawn(async move {
            loop {
                let frame = async {
                    let len = reader.read_u16().await?;
                    let mut frame = vec![0; usize::from(len)];
                    reader.read_exact(&mut frame).await?;
                    Ok(frame)
                }
                .await;
                let end = frame.is_err();
                if tx.send(frame).await.is_err() || end {
                    return;
                }
            }
        });
        let link = TcpLink {
            writer,
            frames,
            local,
            remote,
        };
        Ok((Link::Tcp(link), candidate))
    }

    /// The protocol str0m is told packets came over.
    pub fn protocol(&self) -> Protocol {
        match self {
            Link::Udp(_) | Link::Turn(_) => Protocol::Udp,
            Link::Tcp(_) => Protocol::Tcp,
        }
    }

    /// Our address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Link::Udp(socket) => socket.local_addr(),
            Link::Tcp(tcp) => Ok(tcp.local),
            // What str0m's relayed candidate stands for.
            Link::Turn(turn) => Ok(turn.relayed()),
        }
    }

    /// The next packet into `buf`: its length and where it came from (cancel-safe).
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Link::Udp(socket) => socket.recv_from(buf).await,
            Link::Turn(turn) => turn.recv(buf).await,
            Link::Tcp(tcp) => {
                let frame = tcp.frames.recv().await;
                tcp.take(frame, buf)
            }
        }
    }

    /// A packet already there, without waiting (`WouldBlock` when none is).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Link::Udp(socket) => socket.try_recv_from(buf),
            Link::Turn(turn) => turn.try_recv(buf),
            Link::Tcp(tcp) => match tcp.frames.try_recv() {
                Ok(frame) => tcp.take(Some(frame), buf),
                Err(mpsc::error::TryRecvError::Empty) => Err(io::ErrorKind::WouldBlock.into()),
                Err(mpsc::error::TryRecvError::Disconnected) => tcp.take(None, buf),
            },
        }
    }

    /// Sends `contents` to `to` (over TCP: to the one peer, framed).
    pub async fn send(&mut self, contents: &[u8], to: SocketAddr) -> io::Result<()> {
        match self {
            Link::Udp(socket) => socket.send_to(contents, to).await.map(|_| ()),
            // The one peer: the SFU.
            Link::Turn(turn) => turn.send(contents).await,
            Link::Tcp(tcp) => {
                let len = u16::try_from(contents.len())
                    .map_err(|_| io::Error::other("a packet above 65535 bytes"))?;
                let mut framed = Vec::with_capacity(contents.len() + 2);
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(contents);
                tcp.writer.write_all(&framed).await
            }
        }
    }
}

impl TcpLink {
    fn take(
        &self,
        frame: Option<io::Result<Vec<u8>>>,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        let frame = frame.unwrap_or_else(|| Err(io::ErrorKind::UnexpectedEof.into()))?;
        let n = frame.len();
        if n > buf.len() {
            return Err(io::Error::other(format!("a {n}-byte frame from the SFU")));
        }
        buf[..n].copy_from_slice(&frame);
        Ok((n, self.remote))
    }
}
