//! Streams per revision, derived from the instance ids: trickle names an
//! instance `{K_REVISION}-{8 hex digits}`, so under Cloud Run (or the
//! emulator's revisions) the id says which revision served a stream. A
//! server whose ids have no revision part adds nothing here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Report, TimelinePoint};

/// The revision in an instance id `{revision}-{8 hex digits}`, if it has
/// one.
pub fn revision_of(instance: &str) -> Option<&str> {
    let (revision, random) = instance.rsplit_once('-')?;
    let is_random = random.len() == 8 && random.bytes().all(|b| b.is_ascii_hexdigit());
    (is_random && !revision.is_empty()).then_some(revision)
}

/// One revision's share of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionSummary {
    /// Its instances that served connections.
    pub instances: u64,
    /// Connections it served.
    pub connections: u64,
    /// Most of the run's streams open on it in one second of the
    /// timeline.
    pub peak: u64,
    /// The first and the last second (Unix time) it held an open stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_open_unix: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_open_unix: Option<u64>,
}

/// Open streams per revision in one second of the timeline.
pub fn open_per_revision(point: &TimelinePoint) -> BTreeMap<&str, u64> {
    let mut open = BTreeMap::new();
    for (instance, n) in &point.open {
        if let Some(revision) = revision_of(instance) {
            *open.entry(revision).or_default() += n;
        }
    }
    open
}

/// Every revision the run's instances named, with its figures (empty when
/// none did).
pub fn summarize(report: &Report) -> BTreeMap<String, RevisionSummary> {
    let mut revisions: BTreeMap<String, RevisionSummary> = BTreeMap::new();
    for (instance, stats) in &report.instances {
        if let Some(revision) = revision_of(instance) {
            let summary = revisions.entry(revision.to_owned()).or_default();
            summary.instances += 1;
            summary.connections += stats.connections;
        }
    }
    for point in &report.timeline {
        for (revision, open) in open_per_revision(point) {
            let summary = revisions.entry(revision.to_owned()).or_default();
            summary.peak = summary.peak.max(open);
            if open > 0 {
                summary.first_open_unix.get_or_insert(point.t);
                summary.last_open_unix = Some(point.t);
            }
        }
    }
    revisions
}

/// The revisions as one line, oldest name first: `a: 120 connections
/// (peak 80), b: ...`.
pub fn revisions_line(revisions: &BTreeMap<String, RevisionSummary>) -> String {
    revisions
        .iter()
        .map(|(name, r)| {
            format!(
                "{name}: {} connections on {} instance(s), peak {} open",
                r.connections, r.instances, r.peak
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::InstanceStats;

    #[test]
    fn the_revision_is_the_id_without_its_random_part() {
        let cases = [
            ("trickle-00002-emu-0a1b2c3d", Some("trickle-00002-emu")),
            ("svc-00001-abc-deadBEEF", Some("svc-00001-abc")),
            // No revision: trickle without K_REVISION, or other servers.
            ("0a1b2c3d", None),
            ("-0a1b2c3d", None),
            ("instance-7", None),
            ("svc-00001-abc-0a1b2c3", None),
            ("svc-00001-abc-0a1b2c3g", None),
            ("", None),
        ];
        for (instance, revision) in cases {
            assert_eq!(revision_of(instance), revision, "{instance}");
        }
    }

    #[test]
    fn revisions_add_up_their_instances_connections_and_open_streams() {
        let mut report = Report::new("http://127.0.0.1:8080", "sse", 10.0);
        let stats = |connections| InstanceStats {
            peak: 0,
            connections,
        };
        report.instances.insert("r1-00000001".into(), stats(100));
        report.instances.insert("r1-00000002".into(), stats(50));
        report.instances.insert("r2-00000003".into(), stats(70));
        report.instances.insert("plain".into(), stats(5));
        let point = |t, open: &[(&str, u64)]| TimelinePoint {
            t,
            open: open.iter().map(|(i, n)| ((*i).to_owned(), *n)).collect(),
            ..TimelinePoint::default()
        };
        report.timeline = vec![
            point(10, &[("r1-00000001", 60), ("r1-00000002", 40)]),
            point(
                11,
                &[
                    ("r1-00000001", 50),
                    ("r1-00000002", 30),
                    ("r2-00000003", 20),
                ],
            ),
            point(12, &[("r1-00000001", 0), ("r2-00000003", 90)]),
        ];
        let revisions = summarize(&report);
        assert_eq!(revisions.len(), 2);
        assert_eq!(
            revisions["r1"],
            RevisionSummary {
                instances: 2,
                connections: 150,
                peak: 100,
                first_open_unix: Some(10),
                last_open_unix: Some(11),
            }
        );
        assert_eq!(
            revisions["r2"],
            RevisionSummary {
                instances: 1,
                connections: 70,
                peak: 90,
                first_open_unix: Some(11),
                last_open_unix: Some(12),
            }
        );
        assert_eq!(
            revisions_line(&revisions),
            "r1: 150 connections on 2 instance(s), peak 100 open; r2: 70 connections on 1 instance(s), peak 90 open"
        );
    }
}
