//! The documentation cannot drift from the code: every relative link and
//! anchor in README.md and docs/ resolves, every repository path
//! docs/architecture.md names (in backticks) exists, and every `--flag` shown with a
//! `trickle` or `trickle-load` command (in a code block) or in the
//! configuration table exists in that binary's `--help`. (gcloud, docker,
//! curl and other tools' flags are out of scope.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// GitHub's anchor for a heading: lower case, punctuation dropped except
/// hyphens, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The page's headings (outside code blocks) as anchors.
fn anchors(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
        }
        if !fence && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// `[text](target)` links, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// The repository paths in backticks on a page: a word with a `/` that
/// starts at a top-level folder or file of the repository.
fn named_paths(text: &str) -> Vec<String> {
    let roots = [
        "src/",
        "telemetry/",
        "sse/",
        "protocol/",
        "loadtest/",
        "emulator/",
        "bench/",
        "scripts/",
        "dashboards/",
        "tests/",
        "deploy/",
        "examples/",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| !word.contains(' ') && roots.iter().any(|r| word.starts_with(r)))
        .map(|word| word.trim_end_matches(['.', ',']).to_owned())
        .collect()
}

#[test]
fn every_path_the_code_map_names_exists() {
    let text = std::fs::read_to_string(repo("docs/architecture.md")).unwrap();
    let paths = named_paths(&text);
    for path in &paths {
        // `src/stream/encode/{text,json,sse}.rs` style groups are not used:
        // each path is written whole.
        assert!(
            repo(path).exists(),
            "docs/architecture.md names {path}, which does not exist"
        );
    }
    assert!(paths.len() >= 60, "only {} paths: {paths:?}", paths.len());
    // And the folders of trickle-load it maps are all of them.
    for entry in std::fs::read_dir(repo("loadtest/src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let named = format!("loadtest/src/{name}");
        assert!(
            paths.iter().any(|p| p.starts_with(&named)),
            "docs/architecture.md does not place {named}"
        );
    }
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            assert!(
                target.exists(),
                "{}: link {link:?} to a missing file",
                page.display()
            );
            if !fragment.is_empty() {
                let body = std::fs::read_to_string(&target).unwrap();
                assert!(
                    anchors(&body).contains(&fragment.to_owned()),
                    "{}: link {link:?}: no heading #{fragment} in {}",
                    page.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links");
}

/// A command line of a code block: `\` continuations joined.
fn command_lines(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        if !fence {
            continue;
        }
        let line = line.split(" # ").next().unwrap_or_default();
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The binary (`trickle` or `trickle-load`) and subcommand each command
/// of a line runs (commands split at `&&`, `|`, `;`, `&`; environment
/// assignments before the program skipped), and the flags it passes (an
/// emulator's `--` hands the rest to trickle). Commands of other programs
/// (gcloud, docker, curl, cargo build...) are left out.
fn invocations(line: &str) -> Vec<(&'static str, Option<String>, Vec<String>)> {
    let mut out = Vec::new();
    let separated = line.replace("&&", ";").replace(['|', '&'], ";");
    for command in separated.split(';') {
        let words: Vec<&str> = command
            .split_whitespace()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .collect();
        let Some(first) = words.first().map(|w| w.trim_start_matches('(')) else {
            continue;
        };
        let (mut binary, start) = if first.ends_with("trickle-load") || first == "$E" {
            ("trickle-load", 1)
        } else if first == "trickle" || first.ends_with("/trickle") {
            ("trickle", 1)
        } else if first == "cargo" && words.get(1) == Some(&"run") {
            // cargo run [--release] [-p trickle-load] -- FLAGS
            let Some(dash) = words.iter().position(|x| *x == "--") else {
                out.push(("trickle", None, Vec::new()));
                continue;
            };
            let load = words[..dash].contains(&"trickle-load");
            (if load { "trickle-load" } else { "trickle" }, dash + 1)
        } else {
            continue;
        };
        let mut sub = words
            .get(start)
            .filter(|s| ["capacity", "emulate", "merge"].contains(s))
            .map(|s| (*s).to_owned());
        let mut flags = Vec::new();
        for word in &words[start + usize::from(sub.is_some())..] {
            if word.starts_with('>') || word.starts_with("2>") {
                break;
            }
            if *word == "--" && sub.as_deref() == Some("emulate") {
                out.push((binary, sub.take(), std::mem::take(&mut flags)));
                binary = "trickle";
            } else if let Some(flag) = word.strip_prefix("--").filter(|f| !f.is_empty()) {
                let name = flag.split('=').next().unwrap_or_default();
                if name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    flags.push(format!("--{name}"));
                }
            }
        }
        out.push((binary, sub, flags));
    }
    out
}

fn help(binary: &str, sub: Option<&str>, cache: &mut HashMap<String, String>) -> String {
    let key = format!("{binary} {}", sub.unwrap_or(""));
    cache
        .entry(key)
        .or_insert_with(|| {
            let program = PathBuf::from(env!("CARGO_BIN_EXE_trickle")).with_file_name(binary);
            assert!(
                program.exists(),
                "{} missing: cargo build --workspace",
                program.display()
            );
            let out = Command::new(&program)
                .args(sub)
                .arg("--help")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .clone()
}

fn offers(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next().unwrap_or(' ');
        let before = help[..i].chars().last().unwrap_or(' ');
        (before == ' ' || before == ',') && " ,=<[\n]".contains(next)
    })
}

#[test]
fn every_flag_the_docs_show_exists_in_its_binary() {
    let mut cache = HashMap::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for line in command_lines(&text) {
            for (binary, sub, flags) in invocations(&line) {
                let help = help(binary, sub.as_deref(), &mut cache);
                for flag in flags {
                    assert!(
                        offers(&help, &flag),
                        "{}: `{line}`: {binary} {} has no {flag}",
                        page.display(),
                        sub.as_deref().unwrap_or("")
                    );
                    checked += 1;
                }
            }
        }
    }
    // The configuration table: every flag trickle has.
    let service = std::fs::read_to_string(repo("docs/service.md")).unwrap();
    let trickle = help("trickle", None, &mut cache);
    for row in service.lines().filter(|l| l.starts_with("| `--")) {
        let cell = row.split('|').nth(1).unwrap_or_default();
        for flag in cell.split('`').filter(|f| f.starts_with("--")) {
            assert!(
                offers(&trickle, flag),
                "docs/service.md: trickle has no {flag}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} flags checked");
}
