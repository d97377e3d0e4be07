//! `bench`: see the library's documentation and `bench --help`.

use std::path::PathBuf;

use anyhow::Context;
use bench::measure::{run_step, Row};
use bench::scenario::Scenario;
use bench::sut::{executable, machine, Setup, Sfu};
use bench::{chart, report};
use clap::Parser;

/// Runs the scenarios against our SFU and Janus and writes tables, JSON and a chart.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Args {
    /// Scenarios to run [default: all].
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where to write results.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// Core of the SFU under test.
    #[arg(long, default_value_t = 0)]
    sfu_core: usize,
    /// Core of the loadgen.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Our SFU only (no Janus).
    #[arg(long)]
    no_janus: bool,
    /// First steps only, short runs: checks the bench itself.
    #[arg(long)]
    quick: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for bin in ["supervisor", "node", "recorder", "monitor", "loadgen"] {
        let path = args.bin_dir.join(bin);
        anyhow::ensure!(
            executable(&path),
            "{} is missing: build the release binaries (bench/run.sh does)",
            path.display()
        );
    }
    let setup = Setup {
        bin_dir: args.bin_dir.clone(),
        root: std::env::current_dir()?,
        sfu_core: args.sfu_core,
        load_core: args.load_core,
    };
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let sfus: Vec<Sfu> = if args.no_janus {
        vec![Sfu::Ours]
    } else {
        vec![Sfu::Ours, Sfu::Janus]
    };
    let machine = machine();
    eprintln!(
        "bench: {machine}; SFU on core {}, loadgen on core {}",
        args.sfu_core, args.load_core
    );
    let mut rows: Vec<Row> = Vec::new();
    for &scenario in &scenarios {
        for &sfu in &sfus {
            for step in scenario.steps(args.quick) {
                if step.ours_only && sfu != Sfu::Ours {
                    continue;
                }
                eprintln!("bench: {:?} {} {} …", scenario, sfu.label(), step.label);
                let row = run_step(&setup, scenario, sfu, &step)
                    .with_context(|| format!("{scenario:?} {} {}", sfu.label(), step.label))?;
                eprintln!(
                    "bench:   {:.0} packets/s, CPU {:.1} %, {} µs/packet, loss {:.2} %, streams {}/{}",
                    row.packets_per_s,
                    row.cpu_pct,
                    row.cpu_us_per_packet.map_or("–".into(), |v| format!("{v:.2}")),
                    row.loss_pct,
                    row.streams.0,
                    row.streams.1
                );
                let limit_reached = !row.passed
                    || row.loss_pct > 1.0
                    || row.cpu_pct >= 95.0
                    || row.loadgen_saturated;
                rows.push(row);
                if scenario.steps_until_limit() && limit_reached {
                    break;
                }
            }
        }
    }
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "undated".into());
    let name = if args.quick {
        format!("{date}-quick")
    } else {
        date.clone()
    };
    std::fs::create_dir_all(&args.out_dir)?;
    let mut markdown = format!(
        "## Results of {date}\n\nMachine: {machine}. Release builds; the SFU under test on core {}, the loadgen on core {} (`taskset`); a fresh SFU for every step; CPU over the media period from `/proc`.\n\n",
        args.sfu_core, args.load_core
    );
    for &scenario in &scenarios {
        markdown.push_str(&report::table(scenario, &rows));
        markdown.push('\n');
    }
    for sfu in &sfus {
        if let Some(row) = report::fanout_capacity(&rows, *sfu) {
            markdown.push_str(&format!(
                "Largest fan-out step within 1 % loss and below 95 % of the core, {}: {} ({} video + audio consumers, {:.0} packets/s, {:.0} % CPU).\n\n",
                sfu.label(),
                row.step,
                row.x,
                row.packets_per_s,
                row.cpu_pct
            ));
        }
    }
    let md_path = args.out_dir.join(format!("{name}.md"));
    let json_path = args.out_dir.join(format!("{name}.json"));
    let svg_path = args.out_dir.join(format!("{name}-fanout.svg"));
    std::fs::write(&md_path, &markdown)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(
            &serde_json::json!({"date": date, "machine": machine, "rows": rows}),
        )?,
    )?;
    chart::fanout_svg(&rows, &svg_path, &machine)?;
    println!("{markdown}");
    eprintln!(
        "bench: wrote {}, {} and {}",
        md_path.display(),
        json_path.display(),
        svg_path.display()
    );
    Ok(())
}
