//! The S1 latency plot (SVG, drawn with plotters): percentiles per contender, one panel
//! per master count.

use std::path::Path;

use plotters::prelude::*;

use crate::BenchError;
use crate::report::Report;
use crate::scenario::{Contender, Scenario};
use crate::stats::{Percentiles, float, float64};

/// Percentiles on the x axis, evenly spaced so the tail gets room.
const PERCENTILES: [(f64, &str); 10] = [
    (0.01, "p1"),
    (0.05, "p5"),
    (0.10, "p10"),
    (0.25, "p25"),
    (0.50, "p50"),
    (0.75, "p75"),
    (0.90, "p90"),
    (0.95, "p95"),
    (0.99, "p99"),
    (0.999, "p99.9"),
];

fn color(c: Contender) -> RGBColor {
    match c {
        Contender::Floor => RGBColor(0, 0, 0),
        Contender::QuorumFloor => RGBColor(130, 130, 130),
        Contender::Ours => RGBColor(214, 39, 40),
        Contender::OursPoll10ms => RGBColor(255, 127, 14),
        Contender::OursPollDefault => RGBColor(148, 103, 189),
        Contender::OursNoFencing => RGBColor(140, 86, 75),
        Contender::Rslock => RGBColor(31, 119, 180),
        Contender::Rslock10ms => RGBColor(44, 160, 44),
    }
}

fn out_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Output(format!("plot: {e}"))
}

/// The percentile curves of one scenario: `(contender, [(x index, µs)])`.
fn curves(report: &Report, scenario: Scenario) -> Vec<(Contender, Vec<(f64, f64)>)> {
    scenario
        .contenders()
        .into_iter()
        .filter_map(|c| {
            let percentiles = Percentiles::of(report.samples.get(&(scenario, c))?)?;
            let points: Vec<(f64, f64)> = PERCENTILES
                .iter()
                .enumerate()
                .map(|(i, (q, _))| (float(i), float64(percentiles.at(*q))))
                .collect();
            Some((c, points))
        })
        .collect()
}

/// Draws the S1 percentiles (1 and 3 masters side by side) into an SVG file.
///
/// # Errors
///
/// [`BenchError::Output`] when drawing or writing fails.
pub fn latency_svg(report: &Report, path: &Path) -> Result<(), BenchError> {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(out_err)?;
    let (left, right) = root.split_horizontally(550);
    for (area, scenario, title) in [
        (left, Scenario::S1One, "S1, 1 master: µs per lock+unlock"),
        (
            right,
            Scenario::S1Three,
            "S1, 3 masters: µs per lock+unlock",
        ),
    ] {
        let curves = curves(report, scenario);
        let ys = || curves.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y));
        // Log scale: the body (tens to hundreds of µs) and the tail (milliseconds) both show.
        let top = ys().fold(10.0_f64, f64::max) * 1.3;
        let bottom = ys().fold(top, f64::min).max(1.0) * 0.8;
        let last_x = float(PERCENTILES.len().saturating_sub(1));
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.2_f64..last_x + 0.2, (bottom..top).log_scale())
            .map_err(out_err)?;
        let label = |x: &f64| {
            let i = x.round();
            PERCENTILES
                .iter()
                .enumerate()
                .find(|(k, _)| float(*k) == i)
                .map(|(_, (_, name))| (*name).to_owned())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_labels(PERCENTILES.len())
            .x_label_formatter(&label)
            .y_label_formatter(&|y: &f64| format!("{y:.0}"))
            .x_desc("percentile")
            .y_desc("µs (log scale)")
            .draw()
            .map_err(out_err)?;
        for (contender, points) in curves {
            let style = color(contender).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(out_err)?
                .label(contender.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x.saturating_add(18), y)], style)
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(out_err)?;
    }
    root.present().map_err(out_err)
}
