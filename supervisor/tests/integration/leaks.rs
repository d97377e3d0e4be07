//! Nothing leaks: 2,000 cycles of join → two transports → produce → consume → leave against a
//! room whose host stays, and the resident memory and open file descriptors of the supervisor
//! and its node come back to their level after a warm-up. `scripts/soak.sh` runs the same
//! cycles for an hour (`SOAK_SECS`) and prints memory over time.

use std::time::{Duration, Instant};

use signaling_api::calls::{GetRouterRtpCapabilities, Leave, ResumeConsumer};
use signaling_api::media;
use signaling_api::{ConsumeArgs, Direction, Kind, ProduceArgs, ProducerId};

use crate::support::peer::opus_parameters;
use crate::support::rtc::PayloadTypes;
use crate::support::signaling::{
    self, consumer_args, drain_notifications, join, transport, Expect,
};
use crate::support::Sfu;

/// Resident memory (KiB) and open file descriptors of `pid`.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (rss, fds)
}

/// The `produce` arguments of an Opus track on `transport`.
fn produce_opus(transport: &signaling_api::TransportId, pt: u8, ssrc: u32) -> ProduceArgs {
    ProduceArgs {
        transport_id: transport.to_string(),
        kind: Kind::Audio,
        rtp_parameters: media::object(&opus_parameters("0", pt, ssrc, "leak")),
        app_data: None,
    }
}

/// One visitor's whole stay: it joins, publishes, consumes the host and leaves.
async fn cycle(url: &str, host_producer: &ProducerId, round: u32) {
    let mut visitor = signaling::connect(url, None).await;
    let joined = visitor.ok(&join("leaks", &format!("V{round}"))).await;
    let pts = PayloadTypes::from_router(&joined.router_rtp_capabilities);
    let send = visitor.ok(&transport(Direction::Send)).await;
    let recv = visitor.ok(&transport(Direction::Recv)).await;
    visitor
        .ok(&produce_opus(
            &send.transport_id,
            pts.opus,
            0x5000_0000 + round,
        ))
        .await;
    let consumed = visitor
        .ok(&ConsumeArgs {
            transport_id: recv.transport_id.to_string(),
            producer_id: host_producer.to_string(),
            rtp_capabilities: media::object(&pts.device_capabilities()),
        })
        .await;
    visitor
        .ok(&ResumeConsumer(consumer_args(&consumed.consumer_id)))
        .await;
    visitor.ok(&Leave {}).await;
    // A visitor that hangs up, as a page does when it closes.
    visitor.close().await.expect("close");
}

struct Sample {
    cycles: u32,
    supervisor: (u64, usize),
    node: (u64, usize),
}

fn sample(sfu: &Sfu, node: u32, cycles: u32) -> Sample {
    Sample {
        cycles,
        supervisor: footprint(sfu.pid()),
        node: footprint(node),
    }
}

fn print(sample: &Sample) {
    println!(
        "| {} | {} | {} | {} | {} |",
        sample.cycles, sample.supervisor.0, sample.supervisor.1, sample.node.0, sample.node.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_visits_leave_memory_and_descriptors_where_they_were() {
    let cycles: u32 = std::env::var("LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    // The soak: as many cycles as fit in this many seconds.
    let soak = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs);
    let sfu = Sfu::start(&[
        "--joins-per-minute-per-ip",
        "0",
        "--requests-per-second",
        "100000",
    ]);
    let url = sfu.ws_url();
    let node = sfu.wait_nodes(1, Duration::from_secs(10)).await[0];
    let mut host = signaling::connect(&url, None).await;
    let joined = host.ok(&join("leaks", "Host")).await;
    let pts = PayloadTypes::from_router(&joined.router_rtp_capabilities);
    let send = host.ok(&transport(Direction::Send)).await;
    let produced = host
        .ok(&produce_opus(&send.transport_id, pts.opus, 0x4000_0000))
        .await;
    let producer = produced.producer_id;

    println!("| cycles | supervisor RSS KiB | supervisor fds | node RSS KiB | node fds |");
    println!("|---|---|---|---|---|");
    let warm_up = 200;
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut baseline = None;
    let mut done = 0;
    loop {
        let finished = match soak {
            Some(soak) => started.elapsed() >= soak,
            None => done >= cycles,
        };
        if finished {
            break;
        }
        cycle(&url, &producer, done).await;
        // The host reads what it is told of each visit, as a client does: the client's queue
        // of notifications is bounded.
        drain_notifications(&mut host);
        done += 1;
        if done == warm_up {
            let at = sample(&sfu, node, done);
            print(&at);
            baseline = Some(at);
        } else if soak.is_some() && last_print.elapsed() >= Duration::from_secs(60) {
            print(&sample(&sfu, node, done));
            last_print = Instant::now();
        }
    }
    let baseline = baseline.expect("more cycles than the warm-up");
    // Closing is asynchronous (the last visitors' sockets, their transports on the node):
    // give it a few seconds to settle.
    let settle = Instant::now() + Duration::from_secs(5);
    let end = loop {
        let end = sample(&sfu, node, done);
        let settled = end.supervisor.1 <= baseline.supervisor.1 && end.node.1 <= baseline.node.1;
        if settled || Instant::now() > settle {
            break end;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    print(&end);
    println!(
        "{done} cycles in {:.1} s ({:.1} ms each)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(done)
    );
    // Every visitor's sockets were closed: no more descriptors than after the warm-up (then
    // the last visitor's socket may still have been closing).
    assert!(
        end.supervisor.1 <= baseline.supervisor.1,
        "supervisor fds: {} after the warm-up, {} at the end",
        baseline.supervisor.1,
        end.supervisor.1
    );
    assert!(
        end.node.1 <= baseline.node.1,
        "node fds: {} after the warm-up, {} at the end",
        baseline.node.1,
        end.node.1
    );
    // Allocators keep some memory; a leak of a transport, producer or consumer per visit
    // (tens of KiB each) would add tens of MiB over 1,800 visits.
    let grew = |after: u64, before: u64| after.saturating_sub(before);
    assert!(
        grew(end.supervisor.0, baseline.supervisor.0) < 8 * 1024,
        "supervisor RSS grew from {} to {} KiB",
        baseline.supervisor.0,
        end.supervisor.0
    );
    assert!(
        grew(end.node.0, baseline.node.0) < 16 * 1024,
        "node RSS grew from {} to {} KiB",
        baseline.node.0,
        end.node.0
    );
    // And the room holds its host only.
    host.ok(&GetRouterRtpCapabilities {}).await;
}
