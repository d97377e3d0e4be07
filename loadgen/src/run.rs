//! One load run: participants join at the chosen rate, media flows for the chosen time while
//! a progress line is printed every second, then everything is counted and everyone leaves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::{Args, TargetKind};
use crate::cpu::{usable_cores, CpuSample};
use crate::janus_peer::{self, JanusTarget};
use crate::participant::{MediaPlan, Plan, Record};
use crate::report::{summarize, Summary, Window};
use crate::sfu_peer::{self, MediaPath, SfuTarget};
use crate::whip_peer::{self, WhipTarget};

/// Everyone must have joined (or failed) within this after the last join started.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// Participants get this long to leave at the end.
const LEAVE_DEADLINE: Duration = Duration::from_secs(5);

/// The participants of a run, room by room, publishers first.
pub fn plans(args: &Args) -> Vec<Plan> {
    let media = MediaPlan {
        audio_only: args.audio_only,
        simulcast: args.simulcast,
        video_kbps: args.video_kbps,
        idle: args.idle,
        no_transports: args.no_transports,
    };
    let mut plans = Vec::new();
    for r in 0..args.rooms {
        let room = format!("{}-{r}", args.room_prefix);
        for (prefix, count, publish) in
            [("p", args.publishers, true), ("s", args.subscribers, false)]
        {
            for i in 0..count {
                plans.push(Plan {
                    room: room.clone(),
                    name: format!("{room}-{prefix}{i}"),
                    publish,
                    last_n: args.last_n,
                    media,
                    record: args.record && publish && i == 0,
                });
            }
        }
    }
    plans
}

enum Target {
    /// `/ws`, and WHIP/WHEP for the participants `--whip`/`--whep` pick.
    Sfu(Arc<SfuTarget>, Option<Arc<WhipTarget>>),
    Janus(Arc<JanusTarget>),
}

/// Runs the load described by `args`.
pub async fn run(args: &Args, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Summary> {
    let plans = plans(args);
    let target = match args.target {
        TargetKind::Sfu => Target::Sfu(
            Arc::new(SfuTarget {
                url: args.url(),
                tls: tls.clone(),
                token: args.token.clone(),
                local_ip: args.local_ip,
                path: if args.ice_tcp {
                    MediaPath::Tcp
                } else if args.turn {
                    MediaPath::Turn(None)
                } else {
                    MediaPath::Udp
                },
            }),
            (args.whip || args.whep).then(|| {
                Arc::new(WhipTarget {
                    base: args
                        .http_url
                        .clone()
                        .map(|u| u.trim_end_matches('/').to_string())
                        .unwrap_or_else(|| whip_peer::http_base(&args.url())),
                    tls,
                    token: args.token.clone(),
                    local_ip: args.local_ip,
                })
            }),
        ),
        TargetKind::Janus => {
            let rooms: Vec<String> = (0..args.rooms)
                .map(|r| format!("{}-{r}", args.room_prefix))
                .collect();
            let recording = args.record.then(|| args.janus_rec_dir.clone());
            let target =
                JanusTarget::prepare(&args.url(), tls, args.local_ip, &rooms, recording).await?;
            Target::Janus(Arc::new(target))
        }
    };
    let (stop_tx, stop) = watch::channel(false);
    let cpu_start = CpuSample::now();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut records = Vec::new();
    let (progress_stop, progress) = if args.quiet {
        (None, None)
    } else {
        let (tx, rx) = watch::channel(false);
        (Some(tx), Some(rx))
    };
    let records_for_progress: Arc<std::sync::Mutex<Vec<Arc<Record>>>> = Arc::default();
    let progress_task = progress.map(|rx| {
        tokio::spawn(print_progress(
            records_for_progress.clone(),
            rx,
            start,
            cpu_start,
        ))
    });
    let gap = Duration::from_secs_f64(1.0 / args.ramp);
    for (i, plan) in plans.into_iter().enumerate() {
        tokio::time::sleep_until((start + gap.mul_f64(i as f64)).into()).await;
        let record = Arc::new(Record::new(plan));
        records.push(record.clone());
        if let Ok(mut shared) = records_for_progress.lock() {
            shared.push(record.clone());
        }
        let stop = stop.clone();
        match &target {
            Target::Sfu(_, Some(w))
                if (record.plan.publish && args.whip) || (!record.plan.publish && args.whep) =>
            {
                tasks.spawn(whip_peer::run(w.clone(), record, stop))
            }
            Target::Sfu(t, _) => tasks.spawn(sfu_peer::run(t.clone(), record, stop)),
            Target::Janus(t) => tasks.spawn(janus_peer::run(t.clone(), record, stop)),
        };
    }
    // The media period starts once everyone has joined (or failed) and every expected stream
    // has delivered its first packet: handshakes and consumer set-up stay out of it.
    let expected = expected_streams(&records);
    let settle_deadline = Instant::now() + JOIN_DEADLINE;
    let settled = loop {
        let everyone_in = records.iter().all(|r| {
            r.join_latency.lock().is_ok_and(|l| l.is_some())
                || r.error.lock().is_ok_and(|e| e.is_some())
        });
        if everyone_in && started_streams(&records) >= expected {
            break true;
        }
        if Instant::now() > settle_deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if !args.quiet {
        eprintln!(
            "[{:>4.0}s] {}: media period of {} s starts",
            start.elapsed().as_secs_f64(),
            if settled {
                format!("all {expected} streams flowing")
            } else {
                format!(
                    "not every stream started within {} s ({} of {expected})",
                    JOIN_DEADLINE.as_secs(),
                    started_streams(&records)
                )
            },
            args.duration
        );
    }
    let media_start = Instant::now();
    let packets_at_media_start = crate::report::received_packets(&records);
    let duration = Duration::from_secs_f64(args.duration);
    tokio::time::sleep(duration).await;
    let end = Instant::now();
    let cpu = CpuSample::now().percent_since(&cpu_start);
    let summary = summarize(
        &records,
        &Window {
            target: args.target,
            start,
            media_start,
            packets_at_media_start,
            end,
            flowing_since: end - Duration::from_secs_f64(args.flowing_window),
            cpu_pct: cpu,
            cores: usable_cores(),
        },
    );
    if let Some(tx) = progress_stop {
        let _ = tx.send(true);
    }
    if let Some(task) = progress_task {
        let _ = task.await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(LEAVE_DEADLINE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    if let Target::Janus(t) = &target {
        t.finish().await;
    }
    Ok(summary)
}

/// Streams the plan expects: every participant receives every other publisher of its room.
fn expected_streams(records: &[Arc<Record>]) -> usize {
    records
        .iter()
        .map(|subscriber| {
            records
                .iter()
                .filter(|p| {
                    p.plan.room == subscriber.plan.room && p.plan.name != subscriber.plan.name
                })
                .map(|p| p.plan.kinds().len())
                .sum::<usize>()
        })
        .sum()
}

/// Streams that delivered at least one packet.
fn started_streams(records: &[Arc<Record>]) -> usize {
    records
        .iter()
        .filter_map(|r| r.transports.lock().ok().map(|t| t.clone()))
        .flatten()
        .map(|t| {
            t.streams
                .lock()
                .map_or(0, |s| s.values().filter(|s| s.packets > 0).count())
        })
        .sum()
}

/// One line a second on stderr: joins, flowing streams, packet rate, loss, CPU.
async fn print_progress(
    records: Arc<std::sync::Mutex<Vec<Arc<Record>>>>,
    mut stop: watch::Receiver<bool>,
    start: Instant,
    cpu_start: CpuSample,
) {
    let mut last_cpu = cpu_start;
    let mut last_packets = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let records = match records.lock() {
            Ok(records) => records.clone(),
            Err(_) => return,
        };
        let (mut joined, mut failed, mut streams, mut flowing, mut packets, mut lost) =
            (0, 0, 0, 0, 0u64, 0u64);
        for record in &records {
            joined += usize::from(record.join_latency.lock().is_ok_and(|l| l.is_some()));
            failed += usize::from(record.error.lock().is_ok_and(|e| e.is_some()));
            let Ok(transports) = record.transports.lock() else {
                continue;
            };
            for transport in transports.iter() {
                let Ok(stats) = transport.streams.lock() else {
                    continue;
                };
                for s in stats.values() {
                    streams += 1;
                    flowing += usize::from(s.flowing_since(now - Duration::from_secs(1)));
                    packets += s.packets;
                    lost += s.lost();
                }
            }
        }
        let cpu = CpuSample::now();
        let loss = if packets + lost > 0 {
            lost as f64 * 100.0 / (packets + lost) as f64
        } else {
            0.0
        };
        eprintln!(
            "[{:>4.0}s] joined {joined}/{} · failed {failed} · streams {flowing}/{streams} flowing · {} pkt/s in · loss {loss:.2} % · loadgen cpu {:.0} %",
            now.duration_since(start).as_secs_f64(),
            records.len(),
            packets.saturating_sub(last_packets),
            cpu.percent_since(&last_cpu),
        );
        last_cpu = cpu;
        last_packets = packets;
    }
}
