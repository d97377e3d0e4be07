//! A WebSocket client at the level of frames, for tests that play a hostile client: it
//! writes frames as it likes (a header announcing a payload it never sends) and can wait for
//! the server to close without reading a single frame as a client library would (which would
//! answer pings and so keep a connection alive that should die).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw connection to `/ws`, upgraded.
pub struct RawWs {
    stream: TcpStream,
}

/// How a wait for the server to close ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed the connection; the close frame's code if it sent one.
    Closed(Option<u16>),
    /// Still open at the deadline.
    StillOpen,
}

impl RawWs {
    /// Connects to `127.0.0.1:port` and upgrades `/ws`.
    pub async fn connect(port: u16) -> RawWs {
        Self::connect_to(port, "/ws", &[]).await
    }

    /// Connects to `127.0.0.1:port` and upgrades `path`, sending `headers` too.
    pub async fn connect_to(port: u16, path: &str, headers: &[(&str, &str)]) -> RawWs {
        Self::try_connect_to(port, path, headers)
            .await
            .unwrap_or_else(|head| panic!("{path} not upgraded: {head}"))
    }

    /// [`RawWs::connect_to`], or the server's answer (status line and headers) when it does
    /// not upgrade.
    pub async fn try_connect_to(
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawWs, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let extra: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("upgrade");
        // The 101 answer, up to its blank line (read byte by byte: nothing after it is ours).
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = tokio::time::timeout(Duration::from_secs(10), stream.read_u8())
                .await
                .expect("upgrade answer within 10 s")
                .expect("upgrade answer");
            head.push(byte);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(head);
        }
        Ok(RawWs { stream })
    }

    /// A masked frame header (mask key zero, so the payload goes as it is) for `len` bytes.
    fn header(opcode: u8, len: u64) -> Vec<u8> {
        let mut header = vec![0x80 | opcode];
        match len {
            0..=125 => header.push(0x80 | len as u8),
            126..=0xffff => {
                header.push(0x80 | 126);
                header.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                header.push(0x80 | 127);
                header.extend_from_slice(&len.to_be_bytes());
            }
        }
        header.extend_from_slice(&[0, 0, 0, 0]);
        header
    }

    /// Sends one text frame; `false` once the server has closed the connection.
    pub async fn send_text(&mut self, text: &str) -> bool {
        let mut frame = Self::header(0x1, text.len() as u64);
        frame.extend_from_slice(text.as_bytes());
        self.stream.write_all(&frame).await.is_ok()
    }

    /// Sends a pong nobody asked for, with `payload`; `false` once the server has closed.
    pub async fn send_pong(&mut self, payload: &[u8]) -> bool {
        let mut frame = Self::header(0xA, payload.len() as u64);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.is_ok()
    }

    /// Sends only the header of a text frame announcing `len` bytes.
    pub async fn send_header_only(&mut self, len: u64) {
        let header = Self::header(0x1, len);
        self.stream.write_all(&header).await.expect("header");
    }

    /// Reads (without answering anything) until the server closes the connection or
    /// `within` passes; the close frame's code if one came.
    pub async fn wait_closed(&mut self, within: Duration) -> Ending {
        let deadline = tokio::time::Instant::now() + within;
        let mut received = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Ending::StillOpen,
                Ok(Ok(0)) | Ok(Err(_)) => return Ending::Closed(close_code(&received)),
                Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The code of the close frame among the server's frames `bytes`, if any.
fn close_code(mut bytes: &[u8]) -> Option<u16> {
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, start) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(len) as usize, 10)
            }
            126 | 127 => return None,
            len => (len as usize, 2),
        };
        let payload = bytes.get(start..start + len)?;
        if opcode == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
        bytes = &bytes[start + len..];
    }
    None
}
