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

/// One entry of a chart's key: drawn in HTML above the chart, never over
/// its data.
struct Key {
    name: String,
    colour: RGBColor,
    mark: Mark,
}

#[derive(Clone, Copy)]
enum Mark {
    Line,
    Dashed,
    Block,
}

impl Key {
    fn new(name: impl Into<String>, colour: RGBColor, mark: Mark) -> Self {
        Self {
            name: name.into(),
            colour,
            mark,
        }
    }
}

/// The key as HTML: a swatch in each entry's colour and mark, its name.
fn key_html(keys: &[Key]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let items: Vec<String> = keys
        .iter()
        .map(|k| {
            let RGBColor(r, g, b) = k.colour;
            let swatch = match k.mark {
                Mark::Line => format!("border-top:3px solid #{r:02x}{g:02x}{b:02x}"),
                Mark::Dashed => format!("border-top:2px dashed #{r:02x}{g:02x}{b:02x}"),
                Mark::Block => format!("background:#{r:02x}{g:02x}{b:02x};height:10px"),
            };
            format!(
                "<li><span class=\"swatch\" style=\"{swatch}\"></span>{}</li>",
                super::escape(&k.name)
            )
        })
        .collect();
    format!("<ul class=\"key\">{}</ul>", items.concat())
}

/// One chart: a titled figure around its key and the SVG, or the reason
/// it is missing.
fn figure(
    id: &str,
    title: &str,
    draw: impl FnOnce(&mut String) -> Result<Vec<Key>, String>,
) -> String {
    let mut svg = String::new();
    match draw(&mut svg) {
        Ok(keys) => format!(
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>{}{svg}</figure>",
            super::escape(title),
            key_html(&keys)
        ),
        Err(e) => format!(
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption><p>not drawn: {}</p></figure>",
            super::escape(title),
            super::escape(&e)
        ),
    }
}

/// Named lines in the palette's colours; their keys.
fn draw_lines<'a, 'b, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    lines: impl Iterator<Item = (&'a str, &'a [(f64, f64)])>,
) -> Result<Vec<Key>, String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let mut keys = Vec::new();
    for (i, (name, points)) in lines.enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        keys.push(Key::new(name, colour, Mark::Line));
    }
    Ok(keys)
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
        // Whole numbers where the axis spans tens (seconds, streams,
        // counts per second), a decimal below.
        let whole = |max: f64| {
            move |v: &f64| {
                if max >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&whole(x_max))
            .y_label_formatter(&whole(y_max))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        let mut keys = draw_lines(
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
                .map_err(|e| e.to_string())?;
            keys.push(Key::new(label, grey, Mark::Dashed));
        }
        root.present().map_err(|e| e.to_string())?;
        Ok(keys)
    })
}

/// A distribution as bars on a log scale of milliseconds (x1.25 buckets
/// from 10 us), with an optional marked part (cut-offs) in red.
fn distribution(
    id: &str,
    title: &str,
    y_desc: &str,
    h: &Histogram<u64>,
    marked: Option<&Histogram<u64>>,
) -> String {
    if let Some(bins) = narrow_bins(h) {
        return linear_distribution(id, title, y_desc, h, &bins, marked);
    }
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
            .y_desc(y_desc)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.0}"))
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
            chart.draw_series(cuts).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
        let mut keys = vec![Key::new(y_desc, PALETTE[0], Mark::Block)];
        if !marked.is_empty() {
            keys.push(Key::new(
                "cut off by the server or platform",
                CUT,
                Mark::Block,
            ));
        }
        Ok(keys)
    })
}

/// Bins of a narrow distribution (its largest value under three times its
/// smallest: steady gaps of 250-252 ms would be one bar on a log scale):
/// up to 30 bins of equal width, in microseconds `(from, to)`. `None` for
/// a wide one.
fn narrow_bins(h: &Histogram<u64>) -> Option<Vec<(u64, u64)>> {
    let (lo, hi) = (h.min(), h.highest_equivalent(h.max()));
    if h.is_empty() || lo == 0 || hi >= lo.saturating_mul(3) {
        return None;
    }
    let width = (hi - lo + 1).div_ceil(30).max(1);
    Some(
        (0..30)
            .map(|i| (lo + i * width, lo + (i + 1) * width))
            .take_while(|(from, _)| *from <= hi)
            .collect(),
    )
}

/// A narrow distribution as bars on a linear scale of milliseconds.
fn linear_distribution(
    id: &str,
    title: &str,
    y_desc: &str,
    h: &Histogram<u64>,
    bins: &[(u64, u64)],
    marked: Option<&Histogram<u64>>,
) -> String {
    figure(id, title, |svg| {
        let count = |h: &Histogram<u64>, (from, to): (u64, u64)| h.count_between(from, to - 1);
        let bars: Vec<(f64, f64, u64, u64)> = bins
            .iter()
            .map(|bin| {
                (
                    bin.0 as f64 / 1e3,
                    bin.1 as f64 / 1e3,
                    count(h, *bin),
                    marked.map_or(0, |m| count(m, *bin)),
                )
            })
            .collect();
        let lo = bars.first().map_or(0.0, |b| b.0);
        let hi = bars.last().map_or(1.0, |b| b.1).max(lo + 0.001);
        let y_max = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64 * 1.1;
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(lo..hi, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("milliseconds")
            .y_desc(y_desc)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|v| label_ms(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().map(|(from, to, n, _)| {
                Rectangle::new([(*from, 0.0), (*to, *n as f64)], PALETTE[0].filled())
            }))
            .map_err(|e| e.to_string())?;
        let any_marked = bars.iter().any(|b| b.3 > 0);
        if any_marked {
            chart
                .draw_series(bars.iter().filter(|b| b.3 > 0).map(|(from, to, _, m)| {
                    Rectangle::new([(*from, 0.0), (*to, *m as f64)], CUT.filled())
                }))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
        let mut keys = vec![Key::new(y_desc, PALETTE[0], Mark::Block)];
        if any_marked {
            keys.push(Key::new(
                "cut off by the server or platform",
                CUT,
                Mark::Block,
            ));
        }
        Ok(keys)
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
    if points.len() >= 3 {
        return points;
    }
    // A narrow range (gaps of 251-254 ms): five ticks spaced evenly on the
    // log scale, rounded to the fewest significant digits that keep at
    // least three of them apart.
    for digits in 2..=6 {
        let mut ticks: Vec<f64> = (0..5)
            .map(|i| round_to(lo * (hi / lo).powf(f64::from(i) / 4.0), digits))
            .filter(|v| *v >= lo && *v <= hi)
            .collect();
        ticks.dedup();
        if ticks.len() >= 3 {
            return ticks;
        }
    }
    vec![lo, hi]
}

/// `v` rounded to `digits` significant digits.
fn round_to(v: f64, digits: i32) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.log10().floor() as i32);
    (v * scale).round() / scale
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
        let keys = draw_lines(
            &mut chart,
            lines
                .iter()
                .map(|(name, points)| (*name, points.as_slice())),
        )?;
        root.present().map_err(|e| e.to_string())?;
        Ok(keys)
    })
}

/// Two significant digits or so: 0.42, 4.2, 42, 420; more where the tick
/// has them (251.5).
fn label_ms(ms: f64) -> String {
    if ms >= 10.0 && (ms - ms.round()).abs() > 1e-6 {
        format!("{ms:.1}")
    } else if ms >= 10.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// Every chart of a stream report, in reading order.
pub(crate) fn stream_charts(report: &Report) -> String {
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
    // The same streams by revision, when the instance ids name revisions
    // (a deploy under load: the old revision's streams run down as the
    // new one's rise).
    let revisions = super::revisions::summarize(report);
    if !revisions.is_empty() {
        let by_revision: Series = revisions
            .keys()
            .map(|revision| {
                let points = report
                    .timeline
                    .iter()
                    .map(|p| {
                        let open = super::revisions::open_per_revision(p);
                        (
                            at(p.t),
                            open.get(revision.as_str()).copied().unwrap_or(0) as f64,
                        )
                    })
                    .collect();
                (revision.clone(), points)
            })
            .collect();
        out.push_str(&over_time(
            "revisions",
            "Open streams per revision over the run",
            "open streams",
            &by_revision,
        ));
    }
    // A point's count over the part of its second the run covered: the
    // first and last seconds are partial (a count of 0.3 s is not a rate
    // of a second); a part under a quarter second is too short to say.
    let end = report.started_unix + report.duration_s;
    let per_second = |f: &dyn Fn(&super::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        report
            .timeline
            .iter()
            .filter_map(|p| {
                let from = (p.t as f64).max(report.started_unix);
                let to = (p.t as f64 + 1.0).min(end);
                let covered = if report.duration_s > 0.0 {
                    to - from
                } else {
                    1.0
                };
                (covered >= 0.25).then(|| (at(p.t), f(p) / covered.min(1.0)))
            })
            .collect()
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
                    let h = p
                        .first_event
                        .as_ref()
                        .and_then(crate::measure::histogram::Packed::unpack)
                        .filter(|h| !h.is_empty())?;
                    Some((at(p.t), quantile(&h, *q).as_secs_f64() * 1e3))
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
    if let Some(llm) = &report.llm {
        // Tokens as their chunks arrived: the chunks of each second, at
        // the tokens per chunk of the completed requests (counting tokens
        // when requests complete swings with their ends).
        let per_chunk = if llm.output_chunks > 0 {
            llm.output_tokens as f64 / llm.output_chunks as f64
        } else {
            1.0
        };
        out.push_str(&over_time(
            "tokens",
            &format!(
                "Output tokens per second, as their chunks arrived ({per_chunk:.2} tokens per chunk, from the completed requests)"
            ),
            "tokens per second",
            &vec![(
                "tokens/s".to_owned(),
                per_second(&|p| p.events as f64 * per_chunk),
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
            out.push_str(&distribution(
                "gaps",
                "Gaps between events",
                "gaps",
                h,
                None,
            ));
        }
        // Held on the way: a path that holds events shows as delays far
        // above the rest (HAProxy's defaults: every event about 200 ms).
        if let Some(h) = report.measured(Measure::Delivery) {
            out.push_str(&distribution(
                "delivery",
                "Delivery delay of each event (received - the server's stamp)",
                "events",
                h,
                None,
            ));
        }
    }
    if let Some(h) = report.measured(Measure::Lifetime) {
        out.push_str(&distribution(
            "lifetimes",
            "Connection lifetimes (cut-offs in red)",
            "connections",
            h,
            report.measured(Measure::Cutoff),
        ));
    }
    out
}

/// One quantity of a capacity search: its p99 per level, its SLO bound.
pub(crate) struct CapacitySeries {
    pub name: &'static str,
    pub slo_ms: Option<f64>,
    pub levels: Vec<CapacityPoint>,
}

/// One level's p99 with its bounds (`None`: too few samples for that
/// bound; the bar then runs off the chart's edge).
pub(crate) struct CapacityPoint {
    pub streams: u64,
    pub p99_ms: f64,
    pub low_ms: Option<f64>,
    pub high_ms: Option<f64>,
    pub passed: bool,
}

/// p99 against concurrency (log milliseconds), the SLOs dashed, passing
/// levels filled and failing ones hollow, the answer as a vertical line.
pub(crate) fn capacity_chart(series: &[CapacitySeries], answer: Option<u64>) -> String {
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
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_desc("p99, milliseconds (log scale)")
                .y_label_formatter(&|v| label_ms(*v))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| e.to_string())?;
            let mut keys = Vec::new();
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
                    .map_err(|e| e.to_string())?;
                keys.push(Key::new(format!("{} p99", s.name), colour, Mark::Line));
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
                        .map_err(|e| e.to_string())?;
                    keys.push(Key::new(
                        format!("{} SLO {bound:.0} ms", s.name),
                        colour,
                        Mark::Dashed,
                    ));
                }
            }
            if let Some(answer) = answer {
                let green = RGBColor(47, 133, 90);
                chart
                    .draw_series(LineSeries::new(
                        [(answer as f64, lo), (answer as f64, hi)],
                        green.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?;
                keys.push(Key::new(
                    format!("answer: {answer} streams"),
                    green,
                    Mark::Line,
                ));
            }
            root.present().map_err(|e| e.to_string())?;
            Ok(keys)
        },
    )
}

/// Throughput against concurrency, the knee marked: where adding streams
/// stopped adding throughput.
pub(crate) fn throughput_chart(levels: &[(u64, f64)], knee: Option<u64>, unit: &str) -> String {
    let points = levels.iter().map(|l| (l.0 as f64, l.1)).collect();
    line_chart(
        "throughput",
        &format!("throughput ({unit}) against concurrent streams (the knee: where more streams stopped adding throughput)"),
        ("concurrent streams", unit),
        &vec![("throughput".to_owned(), points)],
        knee.map(|k| (k as f64, format!("knee: {k} streams"))),
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_text::between;
    use std::time::Duration;

    use super::*;
    use crate::measure::histogram::{new_histogram, record};

    #[test]
    fn a_narrow_distribution_is_binned_linearly_and_says_what_it_counts() {
        // Steady gaps of 250-252 ms: one bar on a log scale of x1.25
        // buckets; here, bins a tenth of a millisecond wide.
        let mut h = new_histogram();
        for i in 0..2_000u64 {
            record(&mut h, Duration::from_micros(250_000 + (i * 7919) % 2_000));
        }
        let bins = narrow_bins(&h).unwrap_or_default();
        assert!(bins.len() >= 20, "{bins:?}");
        let svg = distribution("gaps", "Gaps between events", "gaps", &h, None);
        assert!(svg.contains("</span>gaps</li>"), "the key names gaps");
        assert!(!svg.contains("connections"), "{svg}");
        let bars = svg.matches("<rect").count();
        assert!(bars >= 20, "{bars} bars");
        // A wide one keeps its log scale.
        record(&mut h, Duration::from_millis(5_000));
        assert!(narrow_bins(&h).is_none());
    }

    #[test]
    fn a_narrow_log_axis_gets_ticks_inside_it() {
        let ticks = log_key_points(250.0, 254.0);
        assert!(ticks.len() >= 3, "{ticks:?}");
        assert!(
            ticks.iter().all(|t| (250.0..=254.0).contains(t)),
            "{ticks:?}"
        );
        // A wide one: 1, 2 and 5 of each decade.
        assert_eq!(log_key_points(0.9, 60.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
    }

    #[test]
    fn rates_per_second_count_the_part_of_a_second_the_run_covered() {
        // 120 events a second, steady; the run ends 0.5 s into its last
        // second, which had 60: a rate of 120, not a dip (nor, counted
        // twice, a spike).
        let mut r = Report::new("http://x", "sse", 1_000.0);
        r.duration_s = 3.5;
        for (t, events) in [(1_000, 120), (1_001, 120), (1_002, 120), (1_003, 60)] {
            r.timeline.push(crate::report::TimelinePoint {
                t,
                open: BTreeMap::new(),
                started: 0,
                events,
                errors: 0,
                output_tokens: 0,
                first_event: None,
            });
        }
        let html = stream_charts(&r);
        let events = between(&html, "id=\"events\"", "</figure>");
        // The line's points, as plotters writes them: the last is level
        // with the others.
        let ys: Vec<f64> = events
            .split("<polyline")
            .skip(1)
            .map(|line| {
                between(line, "points=\"", "\"")
                    .split_whitespace()
                    .filter_map(|p| p.split(',').nth(1)?.parse().ok())
                    .collect::<Vec<f64>>()
            })
            .find(|ys| ys.len() == 4)
            .unwrap_or_else(|| panic!("no line of 4 points in {events}"));
        assert!(ys.windows(2).all(|w| (w[0] - w[1]).abs() < 1.0), "{ys:?}");
        // The key is HTML above the chart, never drawn over its data.
        assert!(events.contains("<ul class=\"key\">"), "{events}");
    }
}
