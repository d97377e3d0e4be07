//! The chart of the fan-out: CPU per forwarded packet against subscribers, both SFUs (SVG).

use std::path::Path;

use plotters::prelude::*;

use crate::measure::Row;
use crate::scenario::Scenario;
use crate::sut::Sfu;

/// Draws the fan-out rows of `rows` into `path`.
pub fn fanout_svg(rows: &[Row], path: &Path, subtitle: &str) -> anyhow::Result<()> {
    let series = |sfu: Sfu| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.scenario == Scenario::Fanout && r.sfu == sfu)
            .filter_map(|r| Some((f64::from(r.x), r.cpu_us_per_packet?)))
            .collect()
    };
    let (ours, janus) = (series(Sfu::Ours), series(Sfu::Janus));
    let all: Vec<&(f64, f64)> = ours.iter().chain(janus.iter()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let max_x = all.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let max_y = all.iter().map(|p| p.1).fold(0.1, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Video fan-out: CPU per forwarded packet ({subtitle})"),
            ("sans-serif", 18),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc("subscribers of one publisher")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("CPU µs per forwarded packet")
        .draw()?;
    for (points, color, name) in [
        (ours, BLUE, "ours (mediasoup)"),
        (janus, RED, "Janus 1.1.2"),
    ] {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
