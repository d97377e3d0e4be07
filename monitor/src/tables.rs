//! Human output: aligned tables of the monitor API's answers (events are in `event_line`).

use monitor_api::{
    HostView, NodeInfo, PeerDiagnostics, RoomDetail, RoomInfo, StreamDiagnostics, Summary,
};

/// Left-aligned columns separated by two spaces; the header row in capitals.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `1h 02m`, `3m 05s`, `42s`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `512 kbit/s`, `1.5 Mbit/s`, `-` when unknown.
pub fn bitrate(bps: Option<u64>) -> String {
    match bps {
        None => "-".into(),
        Some(b) if b >= 1_000_000 => format!("{:.1} Mbit/s", b as f64 / 1e6),
        Some(b) => format!("{} kbit/s", b / 1000),
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

fn yes_no(value: Option<bool>) -> String {
    match value {
        None => "-".into(),
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
    }
}

/// The first 8 characters of an id: enough to tell them apart on one screen.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// `monitor summary`.
pub fn summary(s: &Summary) -> String {
    let rows = [
        ("nodes", s.nodes.to_string()),
        ("workers", s.workers.to_string()),
        ("rooms", s.rooms.to_string()),
        ("participants", s.participants.to_string()),
        ("producers", s.producers.to_string()),
        ("consumers", s.consumers.to_string()),
        (
            "worker cpu",
            format!(
                "mean {:.1} %, max {:.1} %",
                s.load.cpu_percent_mean, s.load.cpu_percent_max
            ),
        ),
        ("joins", s.joins_total.to_string()),
        ("node restarts", s.node_restarts_total.to_string()),
        ("uptime", duration(s.uptime_secs)),
        ("version", s.version.clone()),
    ];
    let mut rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    if !s.hosts_missing.is_empty() {
        rows.push(vec![
            "hosts missing".into(),
            format!("{} (not counted: no answer)", s.hosts_missing.join(", ")),
        ]);
    }
    let per_worker: Vec<Vec<String>> = s
        .consumers_per_worker
        .iter()
        .map(|w| {
            vec![
                w.node.clone(),
                w.worker.to_string(),
                w.consumers.to_string(),
            ]
        })
        .collect();
    format!(
        "{}\n\n{}",
        table(&["SFU", ""], &rows),
        table(&["NODE", "WORKER", "CONSUMERS"], &per_worker)
    )
}

/// `monitor nodes`.
pub fn nodes(nodes: &[NodeInfo]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .flat_map(|n| {
            n.workers.iter().map(move |w| {
                vec![
                    n.node.clone(),
                    n.pid.to_string(),
                    duration(n.uptime_secs),
                    w.worker.to_string(),
                    format!("{:.1} %", w.cpu_percent),
                    w.rooms.len().to_string(),
                    w.participants.to_string(),
                    w.transports.to_string(),
                    w.producers.to_string(),
                    w.consumers.to_string(),
                ]
            })
        })
        .collect();
    table(
        &[
            "NODE",
            "PID",
            "UPTIME",
            "WORKER",
            "CPU",
            "ROOMS",
            "PARTICIPANTS",
            "TRANSPORTS",
            "PRODUCERS",
            "CONSUMERS",
        ],
        &rows,
    )
}

/// `monitor rooms`.
pub fn rooms(rooms: &[RoomInfo]) -> String {
    let rows: Vec<Vec<String>> = rooms
        .iter()
        .map(|r| {
            vec![
                r.room.clone(),
                r.node.clone(),
                r.worker.to_string(),
                r.participants.to_string(),
                r.producers.to_string(),
                r.consumers.to_string(),
                duration(r.age_secs),
            ]
        })
        .collect();
    table(
        &[
            "ROOM",
            "NODE",
            "WORKER",
            "PARTICIPANTS",
            "PRODUCERS",
            "CONSUMERS",
            "AGE",
        ],
        &rows,
    )
}

/// A participant as the tables name it: its display name, and the identity its join token
/// vouches for (`Alice <alice@example.org>`) when tokens are on.
fn who(display_name: &str, identity: Option<&str>) -> String {
    match identity {
        Some(identity) => format!("{display_name} <{identity}>"),
        None => display_name.to_string(),
    }
}

/// `monitor room ID`.
pub fn room(detail: &RoomDetail) -> String {
    let owner = |producer: &str| {
        detail
            .participants
            .iter()
            .find(|p| p.producers.iter().any(|x| x.id == producer))
            .map_or_else(|| short(producer), |p| p.display_name.clone())
    };
    let people: Vec<Vec<String>> = detail
        .participants
        .iter()
        .map(|p| {
            let mut who = who(&p.display_name, p.identity.as_deref());
            if let Some(client) = &p.client {
                who = format!("{who} [{}]", client.to_uppercase());
            }
            let name = match p.resumable_secs {
                Some(secs) => format!("{who} (disconnected, resumable for {secs} s)"),
                None => who,
            };
            vec![
                name,
                short(&p.peer_id),
                format!("{}/{}", p.node, p.worker),
                duration(p.joined_secs),
                p.transports.to_string(),
                p.producers.len().to_string(),
                p.consumers.len().to_string(),
            ]
        })
        .collect();
    let mut media = Vec::new();
    for p in &detail.participants {
        for x in &p.producers {
            media.push(vec![
                p.display_name.clone(),
                "sends".into(),
                x.kind.clone(),
                short(&x.id),
                x.codec.clone(),
                opt(x.score),
                yes_no(x.paused),
                bitrate(x.bitrate_bps),
            ]);
        }
        for x in &p.consumers {
            media.push(vec![
                p.display_name.clone(),
                "receives".into(),
                x.kind.clone(),
                short(&x.id),
                format!("from {}", owner(&x.producer_id)),
                opt(x.score),
                yes_no(x.paused),
                bitrate(x.bitrate_bps),
            ]);
        }
        let none = || "-".to_string();
        for x in &p.data_producers {
            media.push(vec![
                p.display_name.clone(),
                "sends".into(),
                "data".into(),
                short(&x.id),
                format!("label {:?}", x.label),
                none(),
                none(),
                match (x.relayed, x.dropped) {
                    (Some(relayed), Some(0)) => format!("{relayed} msgs"),
                    (Some(relayed), Some(dropped)) => {
                        format!("{relayed} msgs, {dropped} dropped")
                    }
                    _ => none(),
                },
            ]);
        }
        if p.data_consumers > 0 {
            media.push(vec![
                p.display_name.clone(),
                "receives".into(),
                "data".into(),
                match p.data_consumers {
                    1 => "1 channel".to_string(),
                    n => format!("{n} channels"),
                },
                String::new(),
                none(),
                none(),
                none(),
            ]);
        }
    }
    let routers: Vec<Vec<String>> = detail
        .routers
        .iter()
        .map(|r| {
            let host = r.host.as_ref().map(|h| format!("{h}/")).unwrap_or_default();
            vec![
                format!("{host}{}/{}", r.node, r.worker),
                r.peers.to_string(),
                r.consumers.to_string(),
                r.pipes.to_string(),
            ]
        })
        .collect();
    let missing = if detail.stats_missing.is_empty() {
        String::new()
    } else {
        format!(
            "\n\nmedia statistics missing from {} (no answer in time): their scores and bitrates show as -",
            detail.stats_missing.join(", ")
        )
    };
    format!(
        "room {} on {} (pid {}) worker {}, open {}; {} router(s), {} pipe(s)\n\n{}\n\n{}\n\n{}{missing}",
        detail.room,
        detail.node,
        detail.node_pid,
        detail.worker,
        duration(detail.age_secs),
        detail.routers.len(),
        detail.pipes,
        table(
            &["ROUTER (NODE/WORKER)", "PEERS", "CONSUMERS", "PIPES"],
            &routers
        ),
        table(
            &[
                "PARTICIPANT",
                "PEER",
                "ROUTER",
                "JOINED",
                "TRANSPORTS",
                "PRODUCERS",
                "CONSUMERS"
            ],
            &people
        ),
        table(
            &[
                "PARTICIPANT",
                "DIRECTION",
                "KIND",
                "ID",
                "CODEC/SOURCE",
                "SCORE",
                "PAUSED",
                "BITRATE"
            ],
            &media
        ),
    )
}

fn layers(layers: Option<(u8, u8)>) -> String {
    layers.map_or_else(|| "-".into(), |(s, t)| format!("S{s}T{t}"))
}

fn stream_cells(s: Option<&StreamDiagnostics>) -> Vec<String> {
    match s {
        Some(s) => vec![
            s.score.to_string(),
            bitrate(Some(u64::from(s.bitrate_bps))),
            s.packets_lost.to_string(),
            format!("{}/{}/{}", s.nack_count, s.pli_count, s.fir_count),
            s.round_trip_time_ms
                .map_or_else(|| "-".into(), |rtt| format!("{rtt:.0} ms")),
        ],
        None => vec!["-".into(); 5],
    }
}

/// One participant in depth.
pub fn peer(d: &PeerDiagnostics) -> String {
    let transports: Vec<Vec<String>> = d
        .transports
        .iter()
        .map(|t| {
            vec![
                t.direction.clone(),
                short(&t.id),
                t.ice_state.clone(),
                t.dtls_state.clone(),
                t.path.clone().unwrap_or_else(|| "-".into()),
                t.selected_tuple.clone().unwrap_or_else(|| "-".into()),
                format!("{} / {}", bytes(t.bytes_received), bytes(t.bytes_sent)),
                bitrate(t.available_outgoing_bitrate.map(u64::from)),
            ]
        })
        .collect();
    let mut sends = Vec::new();
    for p in &d.producers {
        let streams: Vec<Option<&StreamDiagnostics>> = if p.streams.is_empty() {
            vec![None]
        } else {
            p.streams.iter().map(Some).collect()
        };
        for s in streams {
            let mut row = vec![
                p.kind.clone(),
                short(&p.id),
                p.codec.clone(),
                yes_no(Some(p.paused)),
                s.and_then(|s| s.rid.clone()).unwrap_or_else(|| "-".into()),
            ];
            row.extend(stream_cells(s));
            sends.push(row);
        }
    }
    let receives: Vec<Vec<String>> = d
        .consumers
        .iter()
        .map(|c| {
            let mut row = vec![
                c.from.clone().unwrap_or_else(|| "(gone)".into()),
                c.kind.clone(),
                short(&c.id),
                format!("{} (producer {})", c.score, c.producer_score),
                c.paused.clone().unwrap_or_else(|| "no".into()),
                format!(
                    "{} of {}",
                    layers(c.current_layers),
                    layers(c.preferred_layers)
                ),
            ];
            row.extend(stream_cells(c.stream.as_ref()).into_iter().skip(1));
            row
        })
        .collect();
    format!(
        "{} ({}) in room {}, on {}/{}\n\n{}\n\n{}\n\n{}",
        who(&d.display_name, d.identity.as_deref()),
        d.peer_id,
        d.room,
        d.node,
        d.worker,
        table(
            &[
                "TRANSPORT",
                "ID",
                "ICE",
                "DTLS",
                "PATH",
                "SELECTED PAIR",
                "BYTES IN / OUT",
                "AVAILABLE OUT"
            ],
            &transports
        ),
        table(
            &[
                "SENDS",
                "ID",
                "CODEC",
                "PAUSED",
                "LAYER",
                "SCORE",
                "BITRATE",
                "LOST",
                "NACK/PLI/FIR",
                "RTT"
            ],
            &sends
        ),
        table(
            &[
                "RECEIVES FROM",
                "KIND",
                "ID",
                "SCORE",
                "PAUSED",
                "LAYERS (NOW OF ASKED)",
                "BITRATE",
                "LOST",
                "NACK/PLI/FIR",
                "RTT"
            ],
            &receives
        ),
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The hosts of a cluster.
pub fn hosts(hosts: &[HostView]) -> String {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let id = if h.this_host {
                format!("{} (this)", h.host)
            } else {
                h.host.clone()
            };
            vec![
                id,
                h.public_url.clone(),
                h.cluster_addr.clone(),
                h.lease.clone(),
                if h.linked { "up" } else { "down" }.to_string(),
                h.nodes.to_string(),
                h.workers.to_string(),
                h.consumers.to_string(),
                h.headroom.to_string(),
                h.rooms_owned.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "HOST",
            "PUBLIC URL",
            "CLUSTER ADDR",
            "LEASE",
            "LINK",
            "NODES",
            "WORKERS",
            "CONSUMERS",
            "HEADROOM",
            "ROOMS OWNED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_api::Participant;

    #[test]
    fn tables_are_aligned() {
        let out = table(
            &["ROOM", "PEERS"],
            &[
                vec!["a".into(), "2".into()],
                vec!["longer-name".into(), "10".into()],
            ],
        );
        assert_eq!(out, "ROOM         PEERS\na            2\nlonger-name  10");
    }

    #[test]
    fn a_disconnected_participant_shows_how_long_it_may_resume_and_a_whip_one_how_it_came() {
        let detail = RoomDetail {
            room: "demo".into(),
            participants: vec![
                Participant {
                    display_name: "Alice".into(),
                    peer_id: "a".repeat(36),
                    client: Some("whip".into()),
                    ..Participant::default()
                },
                Participant {
                    display_name: "Bob".into(),
                    peer_id: "b".repeat(36),
                    resumable_secs: Some(25),
                    ..Participant::default()
                },
            ],
            ..RoomDetail::default()
        };
        let out = room(&detail);
        assert!(
            out.contains("Bob (disconnected, resumable for 25 s)"),
            "{out}"
        );
        assert!(!out.contains("Alice (disconnected"), "{out}");
        assert!(out.contains("Alice [WHIP]"), "{out}");
        assert!(!out.contains("Bob ["), "a /ws peer is not marked: {out}");
    }

    #[test]
    fn units_read_well() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(125), "2m 05s");
        assert_eq!(duration(7300), "2h 01m");
        assert_eq!(bitrate(Some(512_400)), "512 kbit/s");
        assert_eq!(bitrate(Some(1_540_000)), "1.5 Mbit/s");
        assert_eq!(bitrate(None), "-");
    }
}
