//! `sim.svg`: two panels against the FEC repair overhead, one line per loss
//! rate — the bytes the origin sends (broadcast + unicast repair, log
//! scale) beside the unicast-only baseline, and the mean repair per UE.
//!
//! plotters' SVG backend alone (no bitmap backend, no font library): text
//! is written as SVG `<text>` and laid out by the viewer.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::output::{Row, Summary, human};

/// Width and height of the picture.
const SIZE: (u32, u32) = (1200, 560);

/// Line colours, one per loss rate (then round again): distinct and
/// readable on white.
const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

fn color(i: usize) -> RGBAColor {
    COLORS[i % COLORS.len()].to_rgba()
}

/// Rows grouped by loss rate, in the order they came.
fn by_loss(rows: &[Row]) -> Vec<(f64, Vec<&Row>)> {
    let mut groups: Vec<(f64, Vec<&Row>)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(l, _)| *l == row.loss_percent) {
            Some((_, g)) => g.push(row),
            None => groups.push((row.loss_percent, vec![row])),
        }
    }
    groups
}

/// Writes the plot of `summary` to `path` (atomically).
pub fn write_svg(path: &Path, summary: &Summary) -> anyhow::Result<()> {
    let svg = render(summary).map_err(|e| anyhow!("plotting: {e}"))?;
    super::output::write_atomic(path, svg.as_bytes())
}

fn render(summary: &Summary) -> Result<String, Box<dyn std::error::Error>> {
    let rows = &summary.rows;
    let Some(first) = rows.first() else {
        return Err("nothing to plot".into());
    };
    let groups = by_loss(rows);
    let x_max = rows
        .iter()
        .map(|r| r.repair_percent)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let baseline = first.unicast_baseline_bytes as f64;
    let totals = rows.iter().map(|r| r.origin_total_bytes as f64);
    let y_min = totals.clone().fold(baseline, f64::min).max(1.0) / 2.0;
    let y_max = totals.fold(baseline, f64::max) * 2.0;
    let burst = if first.burst_length > 0.0 {
        format!(", bursts of {}", first.burst_length)
    } else {
        String::new()
    };
    let peers = if first.peers_fraction > 0.0 {
        format!(", {} of UEs with peers", first.peers_fraction)
    } else {
        String::new()
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "dms sim: {} UEs, {} object, {} blocks{burst}{peers} (model {})",
            first.ues,
            human(first.size_bytes as f64),
            first.blocks,
            summary.model
        );
        let root = root.titled(&title, ("sans-serif", 20))?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);

        let mut chart = ChartBuilder::on(&left)
            .caption("bytes the origin sends", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("FEC repair overhead (% of K)")
            .y_desc("broadcast + unicast repair")
            .y_label_formatter(&|v| human(*v))
            .draw()?;
        for (i, (loss, group)) in groups.iter().enumerate() {
            let color = color(i);
            let points: Vec<(f64, f64)> = group
                .iter()
                .map(|r| (f64::from(r.repair_percent), r.origin_total_bytes as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(format!("loss {loss} %"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, baseline), (x_max, baseline)],
                BLACK.stroke_width(2),
            ))?
            .label(format!("unicast only (UEs × size = {})", human(baseline)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::MiddleRight)
            .draw()?;

        let repair_max = rows
            .iter()
            .map(|r| r.repair_mean_bytes)
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(&right)
            .caption("mean repair per UE", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..repair_max)?;
        chart
            .configure_mesh()
            .x_desc("FEC repair overhead (% of K)")
            .y_desc("repair bytes per UE")
            .y_label_formatter(&|v| human(*v))
            .draw()?;
        for (i, (loss, group)) in groups.iter().enumerate() {
            let color = color(i);
            let points: Vec<(f64, f64)> = group
                .iter()
                .map(|r| (f64::from(r.repair_percent), r.repair_mean_bytes))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(format!("loss {loss} %"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}
