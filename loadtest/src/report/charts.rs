//! The reports' charts, drawn by plotters into inline SVG: labelled axes
//! with units and ticks, time on the x axis where time matters, log scales
//! for distributions whose spread calls for one. Every figure comes from
//! the report's own histograms and timeline, as the JSON report has them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::{quantile, Report};
use crate::measure::Measure;

const SIZE: (u32, u32) = (880, 300);
const PALETTE: [RGBColor; 6] = [
    RGBColor(43, 108, 176),
    RGBColor(192, 86, 33),
    RGBColor(47, 133, 90),
    RGBColor(107, 70, 193),
    RGBColor(184, 50, 128),
    RGBColor(44, 122, 123),
];
const CUT: RGBColor = RGBColor(197, 48, 48);

/// One chart: a titled figure around the SVG, or the reason it is missing.
fn figure(id: &str, title: &str, draw: impl FnOnce(&mut String) -> Result<(), String>) -> String {
    let mut svg = String::new();
    match draw(&mut svg) {
        Ok(()) => format!(
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>{svg}</figure>",
            super::escape(title)
        ),
        Err(e) => format!(
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption><p>not drawn: {}</p></figure>",
            super::escape(title),
            super::escape(&e)
        ),
    }
}

/// The series' legend box, where it hides the least.
fn legend<'a, 'b: 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// Named lines in the palette's colours, each with its legend entry.
fn draw_lines<'a, 'b, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    lines: impl Iterator<Item = (&'a str, &'a [(f64, f64)])>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in lines.enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    Ok(())
}

/// Named series over the run's seconds: (label, [(second, value)]).
type Series = Vec<(String, Vec<(f64, f64)>)>;

/// A line chart over the run: x in seconds since its start.
fn over_time(id: &str, title: &str, y_desc: &str, series: &Series) -> String {
    line_chart(
        id,
        title,
        ("time since the start (s)", y_desc),
        series,
        None,
    )
}

/// Lines from zero on both axes (`descs`: the x and y labels), with a
/// dashed vertical line at `marker`'s x, labelled, if given.
fn line_chart(
    id: &str,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &Series,
    marker: Option<(f64, String)>,
) -> String {
    figure(id, title, |svg| {
        let x_max = series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.0))
            .fold(1.0f64, f64::max);
        let y_max = series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(
            &mut chart,
            series
                .iter()
                .map(|(label, points)| (label.as_str(), points.as_slice())),
        )?;
        if let Some((x, label)) = marker {
            let grey = RGBColor(90, 90, 90);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, 0.0), (x, y_max)],
                    6,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], grey.stroke_width(1))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(|e| e.to_string())
    })
}

/// A distribution as bars on a log scale of milliseconds (x1.25 buckets
/// from 10 us), with an optional marked part (cut-offs) in red.
fn distribution(
    id: &str,
    title: &str,
    h: &Histogram<u64>,
    marked: Option<&Histogram<u64>>,
) -> String {
    figure(id, title, |svg| {
        let buckets = log_buckets(h);
        let marked: BTreeMap<u64, u64> = marked
            .map(|m| {
                log_buckets(m)
                    .into_iter()
                    .map(|(upper, n)| ((upper * 1e3) as u64, n))
                    .collect()
            })
            .unwrap_or_default();
        let lo = buckets.first().map_or(0.01, |b| b.0 / 1.25).max(0.001);
        let hi = buckets.last().map_or(1.0, |b| b.0).max(lo * 1.5);
        let y_max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64 * 1.1;
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (lo..hi).log_scale().with_key_points(log_key_points(lo, hi)),
                0.0..y_max,
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("milliseconds (log scale)")
            .y_desc("connections")
            .x_label_formatter(&|v| label_ms(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        let bars = buckets.iter().map(|(upper, n)| {
            Rectangle::new(
                [(upper / 1.25, 0.0), (*upper, *n as f64)],
                PALETTE[0].filled(),
            )
        });
        chart.draw_series(bars).map_err(|e| e.to_string())?;
        if !marked.is_empty() {
            let cuts = buckets.iter().filter_map(|(upper, _)| {
                let n = *marked.get(&((upper * 1e3) as u64))?;
                Some(Rectangle::new(
                    [(upper / 1.25, 0.0), (*upper, n as f64)],
                    CUT.filled(),
                ))
            });
            chart
                .draw_series(cuts)
                .map_err(|e| e.to_string())?
                .label("cut off by the server or platform")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], CUT.filled()));
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        root.present().map_err(|e| e.to_string())
    })
}

/// Buckets of a histogram on a log scale: (upper bound in ms, count), from
/// the first non-empty bucket to the last.
fn log_buckets(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let all: Vec<(f64, u64)> = h
        .iter_log(10, 1.25)
        .map(|v| {
            (
                v.value_iterated_to() as f64 / 1e3,
                v.count_since_last_iteration(),
            )
        })
        .collect();
    let first = all.iter().position(|(_, n)| *n > 0).unwrap_or(0);
    let last = all.iter().rposition(|(_, n)| *n > 0).map_or(0, |i| i + 1);
    all[first..last.max(first)].to_vec()
}

/// Labelled ticks for a log axis over `[lo, hi]`: the 1, 2 and 5 of each
/// decade inside it (plotters' own pick leaves a range inside one decade
/// without a label), and the ends when fewer than three fall inside.
fn log_key_points(lo: f64, hi: f64) -> Vec<f64> {
    let mut points = Vec::new();
    let first = lo.max(1e-9).log10().floor() as i32;
    let last = hi.max(1e-9).log10().ceil() as i32;
    for decade in first..=last {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(decade);
            if v >= lo && v <= hi {
                points.push(v);
            }
        }
    }
    if points.len() < 3 {
        points.push(lo);
        points.push(hi);
        points.sort_by(f64::total_cmp);
        points.dedup();
    }
    points
}

/// x of a percentile on a "nines" axis, drawn on a log scale: 1 / (1 - q)
/// (50% 2, 90% 10, 99% 100, 99.9% 1,000), so each nine takes the same
/// width.
fn nines(q: f64) -> f64 {
    1.0 / (1.0 - q.min(1.0 - 1e-9))
}

/// The nines axis' labels.
const NINES: [(f64, &str); 6] = [
    (0.5, "50%"),
    (0.9, "90%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (0.99999, "99.999%"),
];

/// Latency against percentile, the way load testers read a distribution
/// (HdrHistogram's percentile plot): x on a "nines" axis from the median
/// to the highest percentile the samples reach (1 - 1/n), y in
/// milliseconds on a log scale; one line per measure. Ticks labelled on
/// both axes.
fn percentile_plot(id: &str, title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    figure(id, title, |svg| {
        let lines: Vec<(&str, Vec<(f64, f64)>)> = series
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(name, h)| {
                let top = 1.0 - 1.0 / h.len().max(2) as f64;
                let mut points: Vec<(f64, f64)> = h
                    .iter_quantiles(4)
                    .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
                    .filter(|(q, _)| *q >= 0.5 && *q <= top)
                    .map(|(q, v)| (nines(q), h.highest_equivalent(v) as f64 / 1e3))
                    .collect();
                points.insert(0, (nines(0.5), quantile(h, 0.5).as_secs_f64() * 1e3));
                points.push((nines(top), h.max() as f64 / 1e3));
                points.dedup_by(|a, b| a.0 <= b.0);
                (*name, points)
            })
            .collect();
        let x_max = lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.0))
            .fold(nines(0.9), f64::max);
        let values: Vec<f64> = lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.1))
            .collect();
        let lo = values.iter().copied().fold(f64::MAX, f64::min).max(0.001) / 1.3;
        let hi = values.iter().copied().fold(0.0f64, f64::max).max(lo * 2.0) * 1.3;
        let x_ticks: Vec<f64> = NINES
            .iter()
            .map(|(q, _)| nines(*q))
            .filter(|x| *x <= x_max + 1e-9)
            .collect();
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (nines(0.5)..x_max).log_scale().with_key_points(x_ticks),
                (lo..hi).log_scale().with_key_points(log_key_points(lo, hi)),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("milliseconds (log scale)")
            .x_label_formatter(&|x| {
                NINES
                    .iter()
                    .find(|(q, _)| (nines(*q) / x - 1.0).abs() < 1e-6)
                    .map_or_else(String::new, |(_, l)| (*l).to_owned())
            })
            .y_label_formatter(&|v| label_ms(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(
            &mut chart,
            lines
                .iter()
                .map(|(name, points)| (*name, points.as_slice())),
        )?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(|e| e.to_string())
    })
}

/// Two significant digits or so: 0.42, 4.2, 42, 420.
fn label_ms(ms: f64) -> String {
    if ms >= 10.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// Every chart of a stream report, in reading order.
pub fn stream_charts(report: &Report) -> String {
    let mut out = String::new();
    let start = report.timeline.first().map_or(0, |p| p.t);
    let at = |t: u64| (t.saturating_sub(start)) as f64;
    let mut instances: Vec<&String> = report.instances.keys().collect();
    instances.sort();
    let open: Series = instances
        .iter()
        .map(|instance| {
            let points = report
                .timeline
                .iter()
                .map(|p| (at(p.t), p.open.get(*instance).copied().unwrap_or(0) as f64))
                .collect();
            ((*instance).clone(), points)
        })
        .collect();
    out.push_str(&over_time(
        "open",
        "Open streams per instance over the run",
        "open streams",
        &open,
    ));
    let per_second = |f: &dyn Fn(&super::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        report.timeline.iter().map(|p| (at(p.t), f(p))).collect()
    };
    let events_label = if report.llm.is_some() {
        "output chunks per second"
    } else {
        "events per second"
    };
    out.push_str(&over_time(
        "events",
        "Events received per second",
        events_label,
        &vec![("events/s".to_owned(), per_second(&|p| p.events as f64))],
    ));
    out.push_str(&over_time(
        "starts-errors",
        "New streams and errors per second",
        "per second",
        &vec![
            (
                "requests sent".to_owned(),
                per_second(&|p| p.started as f64),
            ),
            (
                "connections ended in error".to_owned(),
                per_second(&|p| p.errors as f64),
            ),
        ],
    ));
    let ttfb_over_time: Series = [(0.5, "p50"), (0.99, "p99")]
        .iter()
        .map(|(q, name)| {
            let points = report
                .timeline
                .iter()
                .filter_map(|p| {
                    let h = p.first_event.as_ref().filter(|h| !h.is_empty())?;
                    Some((at(p.t), quantile(h, *q).as_secs_f64() * 1e3))
                })
                .collect();
            ((*name).to_owned(), points)
        })
        .collect();
    out.push_str(&over_time(
        "ttfb-over-time",
        "Time to first event per second of the run (p50, p99 of the first events that came in it)",
        "milliseconds",
        &ttfb_over_time,
    ));
    if report.llm.is_some() {
        out.push_str(&over_time(
            "tokens",
            "Output tokens per second (completed requests)",
            "tokens per second",
            &vec![(
                "tokens/s".to_owned(),
                per_second(&|p| p.output_tokens as f64),
            )],
        ));
        let measures = [
            ("TTFT", Measure::Ttft),
            ("ITL", Measure::Gap),
            ("TPOT", Measure::Tpot),
            ("end-to-end", Measure::E2e),
        ];
        let series: Vec<(&str, &Histogram<u64>)> = measures
            .iter()
            .filter_map(|(name, m)| report.measured(*m).map(|h| (*name, h)))
            .collect();
        if !series.is_empty() {
            out.push_str(&percentile_plot(
                "llm-percentiles",
                "LLM latencies by percentile (TTFT and end-to-end of completed requests, ITL of every gap, TPOT per request)",
                &series,
            ));
        }
    } else {
        let series: Vec<(&str, &Histogram<u64>)> = [
            ("time to first event", Measure::FirstEvent),
            ("gap between events", Measure::Gap),
        ]
        .iter()
        .filter_map(|(name, m)| report.measured(*m).map(|h| (*name, h)))
        .collect();
        if !series.is_empty() {
            out.push_str(&percentile_plot(
                "percentiles",
                "Time to first event and gaps between events by percentile",
                &series,
            ));
        }
        // The shape of the gaps: a histogram shows bursts (a buffering
        // proxy) as a second peak.
        if let Some(h) = report.measured(Measure::Gap) {
            out.push_str(&distribution("gaps", "Gaps between events", h, None));
        }
        // Held on the way: a path that holds events shows as delays far
        // above the rest (HAProxy's defaults: every event about 200 ms).
        if let Some(h) = report.measured(Measure::Delivery) {
            out.push_str(&distribution(
                "delivery",
                "Delivery delay of each event (received - the server's stamp)",
                h,
                None,
            ));
        }
    }
    if let Some(h) = report.measured(Measure::Lifetime) {
        out.push_str(&distribution(
            "lifetimes",
            "Connection lifetimes (cut-offs in red)",
            h,
            report.measured(Measure::Cutoff),
        ));
    }
    out
}

/// One quantity of a capacity search: its p99 per level, its SLO bound.
pub struct CapacitySeries {
    pub name: &'static str,
    pub slo_ms: Option<f64>,
    pub levels: Vec<CapacityPoint>,
}

/// One level's p99 with its bounds (`None`: too few samples for that
/// bound; the bar then runs off the chart's edge).
pub struct CapacityPoint {
    pub streams: u64,
    pub p99_ms: f64,
    pub low_ms: Option<f64>,
    pub high_ms: Option<f64>,
    pub passed: bool,
}

/// p99 against concurrency (log milliseconds), the SLOs dashed, passing
/// levels filled and failing ones hollow, the answer as a vertical line.
pub fn capacity_chart(series: &[CapacitySeries], answer: Option<u64>) -> String {
    figure(
        "capacity",
        "p99 against concurrent streams, with its bounds as error bars (filled: passing level; hollow: failing or unresolved; dashed: the SLOs)",
        |svg| {
            let x_max = series
                .iter()
                .flat_map(|s| s.levels.iter().map(|l| l.streams))
                .chain(answer)
                .max()
                .unwrap_or(1)
                .max(1) as f64
                * 1.08;
            let values: Vec<f64> = series
                .iter()
                .flat_map(|s| {
                    s.levels
                        .iter()
                        .flat_map(|l| [Some(l.p99_ms), l.low_ms, l.high_ms])
                        .flatten()
                        .chain(s.slo_ms)
                })
                .filter(|v| *v > 0.0)
                .collect();
            let lo = values.iter().copied().fold(f64::MAX, f64::min);
            let hi = values.iter().copied().fold(0.0f64, f64::max);
            let (lo, hi) = if lo > hi {
                (1.0, 1_000.0)
            } else {
                (lo / 2.0, hi * 2.0)
            };
            let root = SVGBackend::with_string(svg, (880, 340)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(64)
                .build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("concurrent streams")
                .y_desc("p99, milliseconds (log scale)")
                .y_label_formatter(&|v| label_ms(*v))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, s) in series.iter().enumerate() {
                // TTFB blue, gap red, TPOT green: the earlier chart's colours.
                let colour = [PALETTE[0], CUT, PALETTE[2]][i % 3];
                let points: Vec<(f64, f64)> = s
                    .levels
                    .iter()
                    .map(|l| (l.streams as f64, l.p99_ms.max(lo)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        colour.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(format!("{} p99", s.name))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(s.levels.iter().map(|l| {
                        let style = if l.passed {
                            colour.filled()
                        } else {
                            colour.stroke_width(2)
                        };
                        Circle::new((l.streams as f64, l.p99_ms.max(lo)), 5, style)
                    }))
                    .map_err(|e| e.to_string())?;
                // The bounds: from the lower to the upper (or off the top
                // when there were too few samples for one).
                chart
                    .draw_series(s.levels.iter().map(|l| {
                        let x = l.streams as f64;
                        let low = l.low_ms.unwrap_or(lo).max(lo);
                        let high = l.high_ms.unwrap_or(hi).min(hi);
                        PathElement::new(vec![(x, low), (x, high)], colour.stroke_width(1))
                    }))
                    .map_err(|e| e.to_string())?;
                if let Some(bound) = s.slo_ms {
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(0.0, bound), (x_max, bound)],
                            8,
                            5,
                            colour.stroke_width(1),
                        ))
                        .map_err(|e| e.to_string())?
                        .label(format!("{} SLO {bound:.0} ms", s.name))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(1))
                        });
                }
            }
            if let Some(answer) = answer {
                let green = RGBColor(47, 133, 90);
                chart
                    .draw_series(LineSeries::new(
                        [(answer as f64, lo), (answer as f64, hi)],
                        green.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(format!("answer: {answer} streams"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], green.stroke_width(2))
                    });
            }
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            root.present().map_err(|e| e.to_string())
        },
    )
}

/// Throughput against concurrency, the knee marked: where adding streams
/// stopped adding throughput.
pub fn throughput_chart(levels: &[(u64, f64)], knee: Option<u64>, unit: &str) -> String {
    let points = levels.iter().map(|l| (l.0 as f64, l.1)).collect();
    line_chart(
        "throughput",
        &format!("throughput ({unit}) against concurrent streams (the knee: where more streams stopped adding throughput)"),
        ("concurrent streams", unit),
        &vec![("throughput".to_owned(), points)],
        knee.map(|k| (k as f64, format!("knee: {k} streams"))),
    )
}
