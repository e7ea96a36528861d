//! The report as a file: schema 1 and 2 reports (written by earlier
//! builds, committed in `tests/fixtures/`) still read and merge;
//! merges that cannot be exact and unknown formats fail loudly; JSON,
//! Markdown and HTML show the same measures with the same figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use trickle_load::measure::Measure;
use trickle_load::record::{Connection, ConnectionEnd, Integrity};
use trickle_load::report::summary::{show_ms, Summary};
use trickle_load::report::{Report, ReportFormat};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("formats-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trickle_load(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trickle-load"))
        .args(args)
        .output()
        .expect("the trickle-load binary runs")
}

/// A report of `n` connections made here, as the new core writes them.
fn fresh(n: u64) -> Report {
    let mut r = Report::new("http://127.0.0.1:18080", "sse", 2_000_000_000.0);
    r.duration_s = 3.0;
    for i in 0..n {
        r.add_connection(&Connection {
            status: Some(200),
            headers: Some(Duration::from_micros(500 + i)),
            first_byte: Some(Duration::from_micros(900 + i)),
            first_event: Some(Duration::from_millis(1 + i % 9)),
            events: 20,
            bytes: 2_000,
            instance: Some("10a56f0a".to_owned()),
            lifetime: Duration::from_millis(950 + i),
            end: Some(ConnectionEnd::Completed),
            ..Connection::default()
        });
        r.record(Measure::Gap, Duration::from_micros(50_000 + i * 7));
        r.add_stream(
            &Integrity::default(),
            true,
            0,
            &trickle_load::judge::goodput::StreamFigures::default(),
        );
    }
    r
}

#[test]
fn a_schema_2_report_reads_and_merges_with_a_new_one() {
    // Written by the build before schema 3 (a run of 6 users against
    // trickle --max-stream-duration 1s, --stream-rate 10): its ends,
    // integrity and schedule lived only in its summary and latency.
    let old = Report::read(&fixture("report-v2-sse.json")).unwrap();
    assert_eq!(old.schema_version, 5, "upgraded when read");
    assert_eq!(old.ends[&ConnectionEnd::ReconnectHint], 13);
    assert_eq!(old.ends[&ConnectionEnd::ClientDeadline], 6);
    assert!(
        !old.ends.contains_key(&ConnectionEnd::Completed),
        "zeros left out"
    );
    assert_eq!(old.streams_with_ids, 19);
    assert!(old.scheduled);
    assert_eq!(old.integrity.lost, 0);
    let new = fresh(40);
    let mut merged = old.clone();
    merged.merge(&new).unwrap();
    assert_eq!(merged.ends[&ConnectionEnd::Completed], 40);
    assert_eq!(merged.ends[&ConnectionEnd::ReconnectHint], 13);
    assert_eq!(merged.streams_with_ids, 19 + 40);
    // Its summary, computed again, agrees with what it wrote.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("report-v2-sse.json")).unwrap())
            .unwrap();
    let again = Summary::of(&old, &[]);
    for (end, n) in &again.ends {
        // An end newer than the report (`cancelled`) it could not have.
        let was = written["summary"]["ends"][end].as_u64().unwrap_or(0);
        assert_eq!(was, *n, "{end}");
    }
    assert_eq!(
        again.measures["first_event"].count,
        written["summary"]["measures"]["first_event"]["count"]
    );
}

#[test]
fn a_schema_1_report_reads_and_merges_with_a_new_one() {
    let old = Report::read(&fixture("report-v1-sse.json")).unwrap();
    // Schema 1 kept these at the top level and durations as Rust's
    // {"secs", "nanos"}: both read.
    assert_eq!(old.schema_version, 5, "upgraded when read");
    assert_eq!(old.ends[&ConnectionEnd::Completed], 62);
    assert_eq!(old.ends[&ConnectionEnd::ClientDeadline], 20);
    assert_eq!(old.streams_with_ids, 82);
    assert!(old.scheduled);
    let expect = old.expectations.clone().unwrap();
    assert_eq!(expect.interval, Some(Duration::from_millis(50)));
    assert_eq!(expect.max_ttfb_p99, Some(Duration::from_millis(500)));
    let old_first = old.histogram(Measure::FirstEvent).len();
    assert_eq!(old_first, 82);

    let new = fresh(40);
    let mut merged = old.clone();
    merged.merge(&new).unwrap();
    assert_eq!(merged.connections, old.connections + 40);
    assert_eq!(merged.ends[&ConnectionEnd::Completed], 62 + 40);
    assert_eq!(merged.histogram(Measure::FirstEvent).len(), old_first + 40);
    assert_eq!(merged.streams_with_ids, 82 + 40);
    assert_eq!(merged.processes, 2);

    // Written as schema 4 and read back: the same figures. The data is
    // written as data; the summary and latency beside it, derived.
    let json = merged.to_json(&[]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 5);
    // Schema 3 is the same without the `cancelled` end: still read.
    let mut three = v.clone();
    three["schema_version"] = 3.into();
    let read = trickle_load::report::Report::from_json(&three.to_string()).unwrap();
    assert_eq!(read.ends, merged.ends);
    assert_eq!(read.schema_version, 5, "upgraded when read");
    assert_eq!(v["ends"]["completed"], 102);
    assert_eq!(v["streams_with_ids"], 122);
    assert_eq!(v["scheduled"], true);
    assert_eq!(v["summary"]["ends"]["completed"], 102);
    assert_eq!(v["latency"]["scheduled"], true);
    // Different checks (the new part has none): the merge judges none.
    assert!(v["expectations"].is_null());
    let old_json: serde_json::Value = serde_json::from_str(&old.to_json(&[]).unwrap()).unwrap();
    assert_eq!(old_json["expectations"]["interval_ms"], 50.0);
    assert_eq!(old_json["expectations"]["max_ttfb_p99_ms"], 500.0);
    assert!(old_json["expectations"].get("interval").is_none());
    let back = Report::from_json(&json).unwrap();
    assert_eq!(back.ends, merged.ends);
    assert_eq!(back.integrity, merged.integrity);
    assert_eq!(back.scheduled, merged.scheduled);
    assert_eq!(back.expectations, merged.expectations);
    for m in Measure::ALL {
        assert_eq!(back.histogram(m), merged.histogram(m), "{m}");
    }

    // What is derived is never read back: a summary or latency edited by
    // hand changes nothing.
    let mut edited = v.clone();
    edited["summary"]["ends"]["completed"] = 1.into();
    edited["latency"]["scheduled"] = false.into();
    let read = Report::from_json(&edited.to_string()).unwrap();
    assert_eq!(read.ends, merged.ends);
    assert!(read.scheduled);

    // The LLM fixture too, through the binary: a schema 1 file and a new
    // one merge into one report with the LLM figures added up.
    let dir = temp_dir("v1");
    let llm = Report::read(&fixture("report-v1-llm.json")).unwrap();
    let requests = llm.llm.as_ref().unwrap().requests;
    let copy = dir.join("llm-new.json");
    std::fs::write(&copy, llm.to_json(&[]).unwrap()).unwrap();
    let out_path = dir.join("llm-merged.json");
    let out = trickle_load(&[
        "merge",
        fixture("report-v1-llm.json").to_str().unwrap(),
        copy.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = Report::read(&out_path).unwrap();
    assert_eq!(merged.llm.as_ref().unwrap().requests, 2 * requests);
    assert_eq!(
        merged.histogram(Measure::Ttft).len(),
        2 * llm.histogram(Measure::Ttft).len()
    );
}

#[test]
fn a_merge_that_cannot_be_exact_fails_and_writes_nothing() {
    let dir = temp_dir("bounds");
    // A report whose lifetime histogram was kept with other bounds (up to
    // ten hours, holding a five-hour connection).
    let mut v: serde_json::Value = serde_json::from_str(&fresh(5).to_json(&[]).unwrap()).unwrap();
    let mut wide = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 36_000_000_000, 3).unwrap();
    wide.record(18_000_000_000).unwrap();
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(&wide, &mut bytes)
        .unwrap();
    v["histograms"]["lifetime"] = base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into();
    let odd = dir.join("odd.json");
    std::fs::write(&odd, v.to_string()).unwrap();
    let normal = dir.join("normal.json");
    std::fs::write(&normal, fresh(5).to_json(&[]).unwrap()).unwrap();
    let merged = dir.join("merged.json");
    let _ = std::fs::remove_file(&merged);
    let out = trickle_load(&[
        "merge",
        normal.to_str().unwrap(),
        odd.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot merge")
            && stderr.contains("lifetime")
            && stderr.contains("odd.json"),
        "{stderr}"
    );
    assert!(!merged.exists(), "nothing written");
}

#[test]
fn an_unknown_report_format_is_a_usage_error_before_anything_runs() {
    let dir = temp_dir("format");
    let input = dir.join("in.json");
    std::fs::write(&input, fresh(3).to_json(&[]).unwrap()).unwrap();
    let csv = dir.join("out.xyz");
    let out = trickle_load(&[
        "merge",
        input.to_str().unwrap(),
        "-o",
        csv.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(".json, .md or .html"), "{stderr}");
    assert!(!csv.exists());
    // The same for a run's --stream-report and capacity's --report: refused
    // when the flags are parsed (no server is listening on this port, and
    // none is needed to say so).
    for args in [
        vec![
            "--host",
            "http://127.0.0.1:9",
            "--users",
            "1",
            "--run-time",
            "1s",
            "--stream-report",
            "r.csv",
        ],
        vec![
            "capacity",
            "--host",
            "http://127.0.0.1:9",
            "--slo-error-rate",
            "0.1",
            "--report",
            "c.txt",
        ],
    ] {
        let out = trickle_load(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(".json, .md or .html"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("connect_error"),
            "refused before any load: {stderr}"
        );
    }
    assert_eq!(
        ReportFormat::of(Path::new("a.md")),
        Ok(ReportFormat::Markdown)
    );
}

/// The table rows a format shows: label -> the five cells after it.
fn rows(
    text: &str,
    cells: impl Fn(&str) -> Option<(String, Vec<String>)>,
) -> Vec<(String, Vec<String>)> {
    text.split('\n').filter_map(cells).collect()
}

#[test]
fn json_markdown_and_html_show_the_same_measures_and_figures() {
    let mut report = fresh(200);
    for i in 0..20u64 {
        // Cut connections and their resumes: every stream measure.
        report.add_connection(&Connection {
            status: Some(200),
            connect: Some(Duration::from_micros(80 + i)),
            first_event: Some(Duration::from_millis(2)),
            lifetime: Duration::from_secs(290) + Duration::from_millis(i),
            end: Some(ConnectionEnd::ReconnectHint),
            ..Connection::default()
        });
        report.record(Measure::Resume, Duration::from_millis(100 + i));
    }
    let summary = Summary::of(&report, &[]);
    let json: serde_json::Value =
        serde_json::from_str(&report.render(ReportFormat::Json, &[]).unwrap()).unwrap();
    let markdown = report.render(ReportFormat::Markdown, &[]).unwrap();
    let html = report.render(ReportFormat::Html, &[]).unwrap();

    let expected: Vec<(String, Vec<String>)> = summary
        .measured()
        .into_iter()
        .map(|(m, s)| {
            // The JSON summary holds the same numbers the tables show.
            let j = &json["summary"]["measures"][m.key()];
            assert_eq!(j["count"], s.count, "{m}");
            assert_eq!(j["p99_ms"].as_f64(), Some(s.p99_ms), "{m}");
            (
                m.label().to_owned(),
                std::iter::once(s.count.to_string())
                    .chain([s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms].map(show_ms))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        expected.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        [
            "TCP connect",
            "time to headers",
            "TTFB, first body byte",
            "TTFB, first event",
            "gap between events",
            "connection lifetime",
            "age at cut-off",
            "resume (cut to next event)",
        ],
        "every stream measure, in one order"
    );

    let md = rows(&markdown, |line| {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        (cells.len() == 6 && expected.iter().any(|(l, _)| *l == cells[0]))
            .then(|| (cells[0].clone(), cells[1..].to_vec()))
    });
    assert_eq!(md, expected, "Markdown");

    let html_rows = rows(&html.replace("</tr>", "</tr>\n"), |line| {
        let start = line.find("<tr data-measure=")?;
        let cells: Vec<String> = line[start..]
            .split("<td>")
            .skip(1)
            .map(|c| c.split("</td>").next().unwrap_or("").to_owned())
            .collect();
        (cells.len() == 6).then(|| (cells[0].clone(), cells[1..].to_vec()))
    });
    assert_eq!(html_rows, expected, "HTML");
}

#[test]
fn reports_of_different_runs_merge_only_when_forced_and_then_say_so() {
    let dir = temp_dir("mixed");
    let here = dir.join("here.json");
    std::fs::write(&here, fresh(5).to_json(&[]).unwrap()).unwrap();
    let mut elsewhere = fresh(5);
    elsewhere.target = "http://127.0.0.1:19090".to_owned();
    elsewhere.transport = "ndjson".to_owned();
    let there = dir.join("there.json");
    std::fs::write(&there, elsewhere.to_json(&[]).unwrap()).unwrap();
    let merged = dir.join("merged.json");
    let _ = std::fs::remove_file(&merged);
    let out = trickle_load(&[
        "merge",
        here.to_str().unwrap(),
        there.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another run")
            && stderr.contains("target \"http://127.0.0.1:18080\" / \"http://127.0.0.1:19090\"")
            && stderr.contains("transport \"sse\" / \"ndjson\"")
            && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(!merged.exists(), "nothing written");
    // Forced: merged, and the report says what it mixes (JSON, Markdown).
    let md = dir.join("merged.md");
    for output in [&merged, &md] {
        let out = trickle_load(&[
            "merge",
            here.to_str().unwrap(),
            there.to_str().unwrap(),
            "--force",
            "-o",
            output.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = Report::read(&merged).unwrap();
    assert_eq!(report.connections, 10);
    assert_eq!(report.mixes.len(), 2, "{:?}", report.mixes);
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("**Mixed runs**"), "{text}");
}
