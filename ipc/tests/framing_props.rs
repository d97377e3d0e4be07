//! Property tests of framing: the production reader (`read_frame`, what both processes' sockets
//! use) fed in random chunks, valid length prefixes with random bodies, lengths over the cap,
//! random bytes. Never a panic, never an allocation past the cap, frames reassembled however
//! the bytes are split.

use ipc::calls::RouterCreated;
use std::pin::Pin;
use std::task::{Context, Poll};

use ipc::frame::{encode, read_frame, DEFAULT_MAX_FRAME_LEN};
use ipc::messages::{FromNode, Json, LoadReport, NodeError, NodeErrorCode, Response, WorkerLoad};
use ipc::FrameError;
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};

fn message(i: u32, text: String) -> FromNode {
    match i % 3 {
        0 => FromNode::Load(LoadReport {
            workers: vec![WorkerLoad {
                worker: i,
                consumers: i * 2,
                ..WorkerLoad::default()
            }],
        }),
        1 => FromNode::Answer {
            id: u64::from(i),
            result: Ok(Response::RouterCreated(RouterCreated {
                rtp_capabilities: Json(text),
            })),
        },
        _ => FromNode::Answer {
            id: u64::from(i),
            result: Err(NodeError::new(NodeErrorCode::NotFound, text)),
        },
    }
}

/// A byte stream handing out at most `sizes[i]` bytes per read, in turn, as a socket does.
struct Chunked {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    reads: usize,
}

impl Chunked {
    fn new(data: Vec<u8>, sizes: Vec<usize>) -> Self {
        Self {
            data,
            at: 0,
            sizes,
            reads: 0,
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.reads % self.sizes.len()].max(1);
        self.reads += 1;
        let end = (self.at + size)
            .min(self.data.len())
            .min(self.at + buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..end]);
        self.at = end;
        Poll::Ready(Ok(()))
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

proptest! {
    #[test]
    fn the_socket_reader_reassembles_frames_however_they_arrive(
        texts in proptest::collection::vec(".{0,200}", 1..8),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let messages: Vec<FromNode> =
            texts.into_iter().enumerate().map(|(i, t)| message(i as u32, t)).collect();
        let mut wire = Vec::new();
        for m in &messages {
            wire.extend(encode(m, DEFAULT_MAX_FRAME_LEN).unwrap());
        }
        let mut reader = Chunked::new(wire, sizes);
        let got = block_on(async {
            let mut got = Vec::new();
            while let Some(m) = read_frame::<FromNode, _>(&mut reader, DEFAULT_MAX_FRAME_LEN).await.unwrap() {
                got.push(m);
            }
            got
        });
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn a_valid_length_with_any_body_is_a_message_or_a_decode_error(
        body in proptest::collection::vec(any::<u8>(), 0..1024),
        sizes in proptest::collection::vec(1usize..64, 1..4),
    ) {
        let mut wire = (body.len() as u32).to_le_bytes().to_vec();
        wire.extend(&body);
        let mut reader = Chunked::new(wire, sizes);
        let (first, next) = block_on(async {
            let first = read_frame::<FromNode, _>(&mut reader, 1024).await;
            let next = read_frame::<FromNode, _>(&mut reader, 1024).await;
            (first, next)
        });
        prop_assert!(matches!(first, Ok(Some(_)) | Err(FrameError::Decode(_))), "{first:?}");
        // The whole body was consumed either way: the stream ends cleanly after it.
        prop_assert!(matches!(next, Ok(None)), "{next:?}");
    }

    #[test]
    fn a_length_over_the_cap_is_refused_before_its_body_is_read(len in 1025u32.., tail in 0usize..64) {
        let mut wire = len.to_le_bytes().to_vec();
        wire.extend(std::iter::repeat_n(0u8, tail));
        let mut reader = Chunked::new(wire, vec![64]);
        let refused = block_on(read_frame::<FromNode, _>(&mut reader, 1024));
        prop_assert!(matches!(refused, Err(FrameError::TooLarge { .. })), "{refused:?}");
        // Only the prefix was read: nothing of the announced length was allocated or read.
        prop_assert!(reader.at <= 4 + 64 && reader.reads <= 2);
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_truncated(
        text in ".{0,200}",
        cut in 1usize..200,
    ) {
        let wire = encode(&message(1, text), DEFAULT_MAX_FRAME_LEN).unwrap();
        let cut = cut.min(wire.len() - 1);
        let mut reader = Chunked::new(wire[..cut].to_vec(), vec![7]);
        let got = block_on(read_frame::<FromNode, _>(&mut reader, DEFAULT_MAX_FRAME_LEN));
        prop_assert!(matches!(got, Err(FrameError::Truncated { .. })), "{got:?}");
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        // Whatever comes out, messages then an error or the end, it comes out without a
        // panic, and an error ends the stream.
        let mut reader = &bytes[..];
        let mut frames = 0;
        while let Ok(Some(_)) = block_on(read_frame::<FromNode, _>(&mut reader, 1024)) {
            frames += 1;
            prop_assert!(frames <= bytes.len() / 4, "a frame takes 4 bytes at least");
        }
    }
}
