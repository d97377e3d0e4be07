//! Markdown tables of the results, one per scenario, with our SFU and Janus side by side and
//! the ratio of their CPU per forwarded packet.

use std::fmt::Write as _;

use crate::measure::Row;
use crate::scenario::Scenario;
use crate::sut::Sfu;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn latency(v: Option<(f64, f64)>) -> String {
    v.map_or("–".into(), |(p50, p99)| format!("{p50:.0} / {p99:.0}"))
}

/// The table of `scenario`.
pub fn table(scenario: Scenario, rows: &[Row]) -> String {
    if scenario == Scenario::Recording {
        return recording_table(rows);
    }
    if scenario == Scenario::Idle {
        return idle_table(rows);
    }
    let mut out = table_start(
        scenario,
        "SFU | step | peers | streams | packets/s out | CPU % of one core | CPU µs / packet | supervisor CPU % | supervisor share, joins included % | loss % | join → first frame p50 / p99 ms | join p50 / p99 ms | peak RSS MB | loadgen CPU % | ok",
    );
    for row in rows.iter().filter(|r| r.scenario == scenario) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}/{} | {:.0} | {:.1} | {} | {} | {} | {:.2} | {} | {} | {:.0} | {:.0}{} | {} |",
            row.sfu.label(),
            row.step,
            row.peers,
            row.streams.0,
            row.streams.1,
            row.packets_per_s,
            row.cpu_pct,
            opt(row.cpu_us_per_packet, 2),
            opt(row.supervisor_cpu_pct, 1),
            opt(row.supervisor_share_pct, 1),
            row.loss_pct,
            latency(row.first_frame_ms),
            latency(row.join_ms),
            row.peak_rss_mb,
            row.loadgen_cpu_pct,
            if row.loadgen_saturated { " (saturated)" } else { "" },
            if row.passed { "yes" } else { "**no**" },
        );
    }
    let ratios: Vec<String> = rows
        .iter()
        .filter(|r| r.scenario == scenario && r.sfu == Sfu::Ours)
        .filter_map(|ours| {
            let janus = rows
                .iter()
                .find(|r| r.scenario == scenario && r.sfu == Sfu::Janus && r.step == ours.step)?;
            let ratio = janus.cpu_us_per_packet? / ours.cpu_us_per_packet?;
            Some(format!("{} ×{ratio:.2}", ours.step))
        })
        .collect();
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "\nJanus' CPU per forwarded packet over ours (above 1: ours is cheaper): {}",
            ratios.join(", ")
        );
    }
    out
}

/// A scenario's title and the head of its table: `columns` separated by ` | `; the first two
/// (SFU, step) and the last (ok) read left-aligned, the numbers between right-aligned.
fn table_start(scenario: Scenario, columns: &str) -> String {
    let count = columns.split(" | ").count();
    let align: Vec<&str> = (0..count)
        .map(|i| {
            if i < 2 || i + 1 == count {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    format!(
        "### {}\n\n| {columns} |\n|{}|\n",
        scenario.title(),
        align.join("|")
    )
}

/// The idle scenario: what each joined peer costs, CPU and the memory it adds to the SFU's
/// processes (resident memory with everyone joined, less before anyone joined).
fn idle_table(rows: &[Row]) -> String {
    let mut out = table_start(
        Scenario::Idle,
        "SFU | step | peers | CPU % of one core | CPU per peer, % of a core | RSS before MB | RSS joined MB | RSS per peer KB | peak RSS MB | join p50 / p99 ms | ok",
    );
    for row in rows.iter().filter(|r| r.scenario == Scenario::Idle) {
        let per_peer = |total: f64| (row.peers > 0).then(|| total / row.peers as f64);
        let added_kb = row
            .rss_joined_mb
            .and_then(|joined| per_peer((joined - row.rss_before_mb) * 1e3));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {} | {:.1} | {} | {} | {:.0} | {} | {} |",
            row.sfu.label(),
            row.step,
            row.peers,
            row.cpu_pct,
            opt(per_peer(row.cpu_pct), 4),
            row.rss_before_mb,
            opt(row.rss_joined_mb, 1),
            opt(added_kb, 1),
            row.peak_rss_mb,
            latency(row.join_ms),
            if row.passed { "yes" } else { "**no**" },
        );
    }
    out
}

/// The recording scenario: each recorded step beside the same load unrecorded, the CPU a
/// recorded track adds, and how many tracks a core would record at that cost.
fn recording_table(rows: &[Row]) -> String {
    let mut out = table_start(
        Scenario::Recording,
        "SFU | step | tracks written | MB written | CPU % of one core | added by recording, CPU % per track | recorder process CPU % | post-processing CPU % per track | tracks per core at that cost | lost for good (packets) | failed tracks | subscribers' loss % | ok",
    );
    let recording = rows.iter().filter(|r| r.scenario == Scenario::Recording);
    for row in recording.clone() {
        let written = row.written.clone().unwrap_or_default();
        let plain = row.written.as_ref().and_then(|_| {
            let label = row.step.trim_end_matches(" recorded");
            recording
                .clone()
                .find(|r| r.sfu == row.sfu && r.step == label && r.written.is_none())
        });
        let per_track = plain
            .filter(|_| written.tracks > 0)
            .map(|p| (row.cpu_pct - p.cpu_pct) / written.tracks as f64);
        // Ours: the recorder alone (it is a process that could have a core of its own);
        // Janus: what recording added to Janus, and janus-pp-rec's work to make files that
        // play.
        let cost = match row.recorder_cpu_pct {
            Some(recorder) if written.tracks > 0 => Some(recorder / written.tracks as f64),
            _ => per_track.map(|c| c + written.postprocess_pct_per_track.unwrap_or(0.0)),
        };
        let per_core = cost.filter(|c| *c > 0.0).map(|c| 100.0 / c);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            row.sfu.label(),
            row.step,
            row.written
                .as_ref()
                .map_or("–".into(), |w| w.tracks.to_string()),
            row.written
                .as_ref()
                .map_or("–".into(), |w| format!("{:.1}", w.bytes as f64 / 1e6)),
            row.cpu_pct,
            opt(per_track, 2),
            opt(row.recorder_cpu_pct, 1),
            opt(written.postprocess_pct_per_track, 2),
            opt(per_core, 0),
            written.lost_packets.map_or("–".into(), |l| l.to_string()),
            written.failed_tracks.map_or("–".into(), |f| f.to_string()),
            row.loss_pct,
            if row.passed { "yes" } else { "**no**" },
        );
    }
    out
}

/// The largest fan-out step each SFU carried within 1 % loss without saturating its core.
pub fn fanout_capacity(rows: &[Row], sfu: Sfu) -> Option<&Row> {
    rows.iter()
        .filter(|r| {
            r.scenario == Scenario::Fanout
                && r.sfu == sfu
                && r.passed
                && r.loss_pct <= 1.0
                && r.cpu_pct < 95.0
                && !r.loadgen_saturated
        })
        .max_by_key(|r| r.x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tables_head_aligns_sfu_step_and_ok_left_and_the_numbers_right() {
        assert_eq!(
            table_start(Scenario::Idle, "SFU | step | peers | RSS per peer KB | ok"),
            format!(
                "### {}\n\n| SFU | step | peers | RSS per peer KB | ok |\n|---|---|---:|---:|---|\n",
                Scenario::Idle.title()
            )
        );
    }
}
