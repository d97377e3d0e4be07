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
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", scenario.title());
    let _ = writeln!(
        out,
        "| SFU | step | peers | streams | packets/s out | CPU % of one core | CPU µs / packet | supervisor CPU % | supervisor share, joins included % | loss % | join → first frame p50 / p99 ms | join p50 / p99 ms | peak RSS MB | loadgen CPU % | ok |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
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
