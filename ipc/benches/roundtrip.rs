//! Micro-benchmarks of the supervisor ⇄ node wire: postcard framing of a typical request
//! (a `consume` with a browser's RTP capabilities), and a request/answer round trip over a
//! real Unix socket between two tasks, as the supervisor and a node do it.

use std::hint::black_box;

use criterion::{criterion_main, Criterion};
use ipc::calls::{Consume, ResumeConsumer};
use ipc::frame::{decode_body, encode, DEFAULT_MAX_FRAME_LEN, PREFIX_LEN};
use ipc::messages::{
    ConsumerId, FromNode, Json, ProducerId, Response, RouterId, ToNode, TransportId,
};

/// Roughly what Chrome sends as `rtpCapabilities` (about 1.5 KB of JSON).
fn capabilities() -> Json {
    let codecs: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"kind":"video","mimeType":"video/VP8","preferredPayloadType":{},"clockRate":90000,"parameters":{{}},"rtcpFeedback":[{{"type":"nack","parameter":""}},{{"type":"nack","parameter":"pli"}}]}}"#,
                96 + i
            )
        })
        .collect();
    Json(format!(
        r#"{{"codecs":[{}],"headerExtensions":[]}}"#,
        codecs.join(",")
    ))
}

fn consume(id: u64) -> ToNode {
    ToNode::Request {
        id,
        request: Consume {
            router: RouterId(uuid::Uuid::from_u128(1)),
            transport: TransportId(uuid::Uuid::new_v4()),
            producer: ProducerId(uuid::Uuid::new_v4()),
            rtp_capabilities: capabilities(),
        }
        .into(),
    }
}

fn resume(id: u64, consumer: ConsumerId) -> ToNode {
    ToNode::Request {
        id,
        request: ResumeConsumer {
            router: RouterId(uuid::Uuid::from_u128(1)),
            consumer,
        }
        .into(),
    }
}

fn framing(c: &mut Criterion) {
    let message = consume(7);
    c.bench_function("encode consume request", |b| {
        b.iter(|| encode(black_box(&message), DEFAULT_MAX_FRAME_LEN))
    });
    let bytes = encode(&message, DEFAULT_MAX_FRAME_LEN).expect("encode");
    c.bench_function("decode consume request", |b| {
        b.iter(|| decode_body::<ToNode>(black_box(&bytes[PREFIX_LEN..])))
    });
}

fn socket_round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("ipc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bench.sock");
    let (mut reader, mut writer) = runtime.block_on(async {
        let listener = ipc::socket::listen(&path).expect("listen");
        let node_path = path.clone();
        // The "node": answers every request at once.
        tokio::spawn(async move {
            let (mut reader, mut writer) = ipc::socket::connect(&node_path).await.expect("connect");
            while let Ok(Some(ToNode::Request { id, .. })) = reader.recv::<ToNode>().await {
                let answer = FromNode::Answer {
                    id,
                    result: Ok(Response::Done),
                };
                if writer.send(&answer).await.is_err() {
                    break;
                }
            }
        });
        ipc::socket::accept(&listener).await.expect("accept")
    });
    let consumer = ConsumerId(uuid::Uuid::new_v4());
    let mut id = 0;
    c.bench_function("request/answer round trip over a Unix socket", |b| {
        b.iter(|| {
            id += 1;
            runtime.block_on(async {
                writer.send(&resume(id, consumer)).await.expect("send");
                reader.recv::<FromNode>().await.expect("answer")
            })
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

// criterion's macro defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::framing, super::socket_round_trip);
}
criterion_main!(group::benches);
