//! Property tests: the frame decoder never panics, never allocates past its cap, and
//! reassembles frames however the bytes are split.

use ipc::calls::RouterCreated;
use ipc::frame::{encode, FrameDecoder, DEFAULT_MAX_FRAME_LEN};
use ipc::messages::{FromNode, Json, LoadReport, NodeError, NodeErrorCode, Response, WorkerLoad};
use proptest::prelude::*;

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

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&bytes);
        // Whatever comes out, an error or messages, it must come out without a panic, and
        // an error ends the stream.
        while let Ok(Some(_)) = decoder.next_message::<FromNode>() {}
        prop_assert!(decoder.buffered() <= bytes.len());
    }

    #[test]
    fn frames_survive_any_split(
        texts in proptest::collection::vec(".{0,200}", 1..8),
        cut_every in 1usize..64,
    ) {
        let messages: Vec<FromNode> =
            texts.into_iter().enumerate().map(|(i, t)| message(i as u32, t)).collect();
        let mut wire = Vec::new();
        for m in &messages {
            wire.extend(encode(m, DEFAULT_MAX_FRAME_LEN).unwrap());
        }
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut got = Vec::new();
        for chunk in wire.chunks(cut_every) {
            decoder.push(chunk);
            while let Some(m) = decoder.next_message::<FromNode>().unwrap() {
                got.push(m);
            }
        }
        decoder.finish().unwrap();
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn announced_length_over_cap_is_refused(len in 1025u32..) {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&len.to_le_bytes());
        let refused = matches!(decoder.next_message::<FromNode>(), Err(ipc::FrameError::TooLarge { .. }));
        prop_assert!(refused);
    }
}
