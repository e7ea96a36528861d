//! Replays the committed corpus of every fuzz target (`corpus/<target>/`)
//! and every crash a campaign found (`crashes/<target>/`, each a
//! regression test): seconds, in the suite, so CI runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn every_target_s_corpus_and_crashes_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, target) in trickle_fuzz::TARGETS {
        let mut inputs = 0;
        for folder in ["corpus", "crashes"] {
            let dir = root.join(folder).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap();
                // A panic names the input that caused it.
                let ran = std::panic::catch_unwind(|| target(&data));
                assert!(ran.is_ok(), "{name}: {} fails", file.display());
                inputs += 1;
            }
        }
        assert!(inputs >= 3, "{name}: only {inputs} inputs in its corpus");
    }
}

/// The corpus inputs written by hand (a campaign's, minimized with
/// `afl-cmin`, are named `afl-*`): the exhaustive tests below take these,
/// so the replay stays a matter of seconds however large the corpus grows.
fn hand_written(path: &Path) -> bool {
    !path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("afl-"))
}

/// Every split of a few inputs, not only the one their first byte picks.
#[test]
fn the_split_does_not_matter_for_any_seed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["http_response", "sse"] {
        let (_, target) = trickle_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap();
        let dir = root.join("corpus").join(name);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !hand_written(&path) {
                continue;
            }
            let data = std::fs::read(path).unwrap();
            let Some((_, input)) = data.split_first() else {
                continue;
            };
            for seed in 0..=255u8 {
                let mut seeded = vec![seed];
                seeded.extend_from_slice(input);
                target(&seeded);
            }
        }
    }
}

/// Seeded mutations of every hand-written corpus input (bytes flipped,
/// inserted, dropped; line ends, colons and NULs spliced in; cut short),
/// through every target: a few thousand inputs in a second, beside the
/// coverage-guided campaigns.
#[test]
fn seeded_mutations_of_the_corpus_hold_every_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rng = fastrand::Rng::with_seed(0x7121_c4e5);
    let special: &[&[u8]] = &[
        b"\r",
        b"\n",
        b"\r\n",
        b":",
        b"\0",
        b"\xef\xbb\xbf",
        b"0\r\n\r\n",
        b"data: ",
    ];
    let mut ran = 0;
    for (name, target) in trickle_fuzz::TARGETS {
        let dir = root.join("corpus").join(name);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !hand_written(&path) {
                continue;
            }
            let seed = std::fs::read(path).unwrap();
            for _ in 0..300 {
                let mut data = seed.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(0..=data.len());
                    match rng.u8(0..5) {
                        0 if at < data.len() => data[at] = rng.u8(..),
                        1 => data.insert(at, rng.u8(..)),
                        2 if at < data.len() => {
                            data.remove(at);
                        }
                        3 => {
                            let piece = special[rng.usize(0..special.len())];
                            data.splice(at..at, piece.iter().copied());
                        }
                        _ => data.truncate(at),
                    }
                }
                let ran_ok = std::panic::catch_unwind(|| target(&data));
                assert!(
                    ran_ok.is_ok(),
                    "{name}: fails on {:?}",
                    String::from_utf8_lossy(&data)
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 5_000, "{ran} inputs");
}
