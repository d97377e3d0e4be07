//! The Unix-domain socket between the supervisor and one node (an `interprocess` local
//! socket named by a file path), carrying [`crate::frame`]s.

use std::io;
use std::path::Path;

use interprocess::local_socket::tokio::prelude::*;
pub use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use serde::{de::DeserializeOwned, Serialize};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};

use crate::error::FrameError;
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN};

/// The reading half of a connection: whole messages, checked against the frame cap.
#[derive(Debug)]
pub struct FramedReader<R> {
    inner: BufReader<R>,
    max_len: usize,
}

impl<R: AsyncRead + Unpin> FramedReader<R> {
    /// Reads frames of at most `max_len` bytes from `inner`.
    pub fn new(inner: R, max_len: usize) -> Self {
        Self {
            inner: BufReader::new(inner),
            max_len,
        }
    }

    /// The next message; `Ok(None)` when the peer closed the connection cleanly.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        frame::read_frame(&mut self.inner, self.max_len).await
    }
}

/// The writing half of a connection.
#[derive(Debug)]
pub struct FramedWriter<W> {
    inner: W,
    max_len: usize,
}

impl<W: AsyncWrite + Unpin> FramedWriter<W> {
    /// Writes frames of at most `max_len` bytes to `inner`.
    pub fn new(inner: W, max_len: usize) -> Self {
        Self { inner, max_len }
    }

    /// Sends one message.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        frame::write_frame(&mut self.inner, message, self.max_len).await
    }
}

/// One side of a connection's stream: reading and writing go through `&Stream`, so the
/// reader and the writer task each hold one of these. The socket closes when both are gone.
#[derive(Debug, Clone)]
pub struct StreamHalf(Arc<Stream>);

impl AsyncRead for StreamHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for StreamHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}

/// Both halves of one connection.
pub type Connection = (FramedReader<StreamHalf>, FramedWriter<StreamHalf>);

fn framed(stream: Stream) -> Connection {
    let stream = Arc::new(stream);
    (
        FramedReader::new(StreamHalf(stream.clone()), DEFAULT_MAX_FRAME_LEN),
        FramedWriter::new(StreamHalf(stream), DEFAULT_MAX_FRAME_LEN),
    )
}

/// Listens on the socket file `path`, replacing a stale file left by a dead process.
pub fn listen(path: &Path) -> io::Result<Listener> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    ListenerOptions::new()
        .name(name)
        .try_overwrite(true)
        .create_tokio()
}

/// Accepts the next connection on `listener`.
pub async fn accept(listener: &Listener) -> io::Result<Connection> {
    listener.accept().await.map(framed)
}

/// Connects to the socket file `path`.
pub async fn connect(path: &Path) -> io::Result<Connection> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    Stream::connect(name).await.map(framed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{FromNode, NodeHello, ToNode, PROTOCOL_VERSION};

    #[tokio::test]
    async fn hello_round_trip_over_a_real_socket_and_eof_on_close() {
        let dir = std::env::temp_dir().join(format!("ipc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.sock");
        let listener = listen(&path).unwrap();
        let node = tokio::spawn({
            let path = path.clone();
            async move {
                let (mut reader, mut writer) = connect(&path).await.unwrap();
                let hello = FromNode::Hello(NodeHello {
                    protocol_version: PROTOCOL_VERSION,
                    pid: 1,
                    workers: 2,
                    version: "test".into(),
                });
                writer.send(&hello).await.unwrap();
                let got: Option<ToNode> = reader.recv().await.unwrap();
                assert_eq!(got, Some(ToNode::Shutdown));
            }
        });
        let (mut reader, mut writer) = accept(&listener).await.unwrap();
        let hello: Option<FromNode> = reader.recv().await.unwrap();
        assert!(matches!(
            hello,
            Some(FromNode::Hello(NodeHello { workers: 2, .. }))
        ));
        writer.send(&ToNode::Shutdown).await.unwrap();
        node.await.unwrap();
        // The node dropped both halves: the supervisor sees a clean end of stream.
        assert_eq!(reader.recv::<FromNode>().await.unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
