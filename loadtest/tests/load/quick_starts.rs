//! README's quick starts, run as written (scaled only in time where a test
//! must be short) against trickle, ending with the exit codes the README
//! documents.

use std::process::Command;

use crate::helpers::spawn_trickle;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"))
}

/// The words of the first `sh` block under `heading`, continuation lines
/// joined, from the word after `--` (cargo's own arguments dropped).
fn quick_start(heading: &str) -> Vec<String> {
    let text = readme();
    let section = text
        .split(&format!("\n## {heading}"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in README.md"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("no sh block under {heading:?}"));
    let line = block.replace("\\\n", " ");
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let start = words
        .iter()
        .position(|w| w == "--")
        .unwrap_or_else(|| panic!("no `cargo run ... --` in {heading:?}: {line}"));
    words[start + 1..].to_vec()
}

/// `words` with `flag`'s value replaced (every occurrence), or the flag
/// dropped with its value when `value` is `None`.
fn with(words: &[String], flag: &str, value: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut found = false;
    let mut i = 0;
    while i < words.len() {
        if words[i] == flag {
            found = true;
            if let Some(v) = value {
                out.extend([flag.to_owned(), v.to_owned()]);
            }
            i += 2;
        } else {
            out.push(words[i].clone());
            i += 1;
        }
    }
    assert!(found, "{flag} is not in {words:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_2_passes_with_exit_code_0_and_writes_its_reports() {
    let host = spawn_trickle(&[]).await;
    let dir = std::env::temp_dir().join(format!("quick-start-2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let words = quick_start("Quick start 2");
    let words = with(&words, "--host", Some(&host));
    // Scaled in time only: 10 s instead of 30 s.
    let words = with(&words, "--run-time", Some("10s"));
    let words = with(&words, "--stream-report", None);
    let (html, json) = (dir.join("report.html"), dir.join("report.json"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trickle-load"))
            .args(&words)
            .args(["--stream-report", &html.display().to_string()])
            .args(["--stream-report", &json.display().to_string()])
            .args(["--progress-secs", "0"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "README: exit code 0 every check passed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `jq -e .summary.passed report.json` holds.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["summary"]["passed"], true, "{}", v["summary"]);
    assert!(std::fs::metadata(dir.join("report.html")).is_ok_and(|m| m.len() > 10_000));
}

#[test]
fn quick_start_3_is_the_search_the_acceptance_test_runs() {
    // capacity::a_first_search_with_the_quick_start_options_answers runs
    // these options (scaled in time: 5 s holds) and asserts exit code 0:
    // if the README's change, that test must change with them.
    let words = quick_start("Quick start 3");
    assert_eq!(words.first().map(String::as_str), Some("capacity"));
    let words = with(&words[1..], "--host", None);
    let words = with(&words, "--report", None);
    assert_eq!(
        words.join(" "),
        crate::capacity::QUICK_START_3,
        "README's quick start 3 and the acceptance test differ"
    );
}
