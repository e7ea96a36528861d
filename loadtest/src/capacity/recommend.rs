//! From the concurrency one instance holds within its SLO to the settings
//! that make Cloud Run keep it there: `containerConcurrency`, trickle's
//! `--max-streams`, and the instances for a target load. The arithmetic is
//! kept as text so the report can show it.

use serde::{Deserialize, Serialize};

/// Cloud Run's largest `containerConcurrency`.
pub const CLOUD_RUN_MAX_CONCURRENCY: u64 = 1_000;
/// The share of each instance's concurrency Cloud Run's autoscaler aims at.
pub const AUTOSCALER_TARGET: f64 = 0.6;
/// The variable trickle reads `--max-streams` from: the shipped manifests
/// set it, so an update of the variable alone changes it (an argument
/// would win over the variable).
pub const MAX_STREAMS_ENV: &str = "TRICKLE_MAX_STREAMS";

/// The settings, with the working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Cloud Run `containerConcurrency` (the service's `--concurrency`).
    pub container_concurrency: u64,
    /// The cap of 1,000 bound: the instance could hold more.
    pub capped: bool,
    /// trickle's `--max-streams` (its 429 comes before the platform's queue).
    pub max_streams: u64,
    /// The headroom applied to the measured answer.
    pub headroom: f64,
    /// `--target-streams`, when given.
    pub target_streams: Option<u64>,
    /// Instances Cloud Run's autoscaler runs for the target.
    pub instances_for_target: Option<u64>,
    /// `--max-instances` that allows them.
    pub max_instances: Option<u64>,
    /// Resident memory of the instance, in bytes, read from its
    /// `process_resident_memory_bytes` at the level `memory_at_streams`.
    pub memory_bytes: Option<u64>,
    /// The level the memory was read at: the smallest passing level that
    /// holds `container_concurrency` streams (the answer's when none).
    pub memory_at_streams: Option<u64>,
    /// The search stopped at `--max` without a failure: the instance holds
    /// at least the answer, and the headroom is a margin below a lower
    /// bound, not below a measured limit.
    #[serde(default)]
    pub at_least: bool,
    /// Made for the lower end of an answer that is a range, unresolved:
    /// to be confirmed by a search that decides it.
    #[serde(default)]
    pub provisional: bool,
    /// The answer the settings were made for (the lower end when
    /// provisional).
    #[serde(default)]
    pub answer: u64,
    /// The service container's memory limit, sized from `memory_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<super::sizing::MemorySizing>,
    /// The cheaper billing setting for this workload (`instance_based` or
    /// `request_based`; see `capacity.cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<String>,
    /// The working, one line a step.
    pub arithmetic: Vec<String>,
}

impl Recommendation {
    /// The one command that applies these settings and changes nothing
    /// else: the concurrency, trickle's limit through its variable (the
    /// manifests pass it so; `--args` would replace every argument), the
    /// instances when a target was given.
    pub fn gcloud(&self) -> String {
        format!(
            "gcloud run services update SERVICE --region REGION --concurrency {} --update-env-vars {MAX_STREAMS_ENV}={}{}",
            self.container_concurrency,
            self.max_streams,
            self.max_instances
                .map_or_else(String::new, |n| format!(" --max-instances {n}"))
        )
    }
}

/// The settings for an instance that holds `answer` streams within its
/// SLO. `memory`: what it used at each passing level (streams, bytes),
/// where it said.
pub fn recommend(
    answer: u64,
    headroom: f64,
    target_streams: Option<u64>,
    memory: &[(u64, u64)],
    at_least: bool,
) -> Recommendation {
    let mut arithmetic = Vec::new();
    if at_least {
        arithmetic.push(format!(
            "no level failed up to --max: the instance holds at least {answer} streams; the headroom below keeps a margin under that lower bound (raise --max to find the limit itself)"
        ));
    }
    let with_headroom = ((answer as f64 * headroom).floor() as u64).max(1);
    arithmetic.push(format!(
        "containerConcurrency = floor({answer} x {headroom}) = {with_headroom}"
    ));
    let capped = with_headroom > CLOUD_RUN_MAX_CONCURRENCY;
    let container_concurrency = with_headroom.min(CLOUD_RUN_MAX_CONCURRENCY);
    if capped {
        arithmetic.push(format!(
            "capped at Cloud Run's maximum: {CLOUD_RUN_MAX_CONCURRENCY} (the instance could hold {with_headroom})"
        ));
    }
    arithmetic.push(format!(
        "trickle --max-streams ({MAX_STREAMS_ENV}) = containerConcurrency = {container_concurrency} (trickle answers 429 before the platform queues)"
    ));
    let instances = target_streams.map(|target| {
        let per_instance = AUTOSCALER_TARGET * container_concurrency as f64;
        let n = (target as f64 / per_instance).ceil().max(1.0) as u64;
        arithmetic.push(format!(
            "instances for {target} streams = ceil({target} / ({AUTOSCALER_TARGET} x {container_concurrency})) = {n}; --max-instances {n}"
        ));
        n
    });
    // The memory of the smallest measured level that holds the settings.
    let mut sorted = memory.to_vec();
    sorted.sort_unstable();
    let measured = sorted
        .iter()
        .find(|(streams, _)| *streams >= container_concurrency)
        .or(sorted.last())
        .copied();
    if let Some((streams, bytes)) = measured {
        arithmetic.push(format!(
            "memory at {streams} streams: {:.1} MiB resident (process_resident_memory_bytes)",
            bytes as f64 / 1_048_576.0
        ));
    }
    Recommendation {
        container_concurrency,
        capped,
        max_streams: container_concurrency,
        headroom,
        target_streams,
        instances_for_target: instances,
        max_instances: instances,
        memory_bytes: measured.map(|(_, bytes)| bytes),
        memory_at_streams: measured.map(|(streams, _)| streams),
        at_least,
        provisional: false,
        answer,
        memory_limit: None,
        billing: None,
        arithmetic,
    }
}

/// `process_resident_memory_bytes` from a Prometheus text exposition.
pub fn resident_memory(exposition: &str) -> Option<u64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix("process_resident_memory_bytes ")?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_has_headroom_and_instances_follow_the_autoscaler() {
        let r = recommend(
            40,
            0.8,
            Some(1_000),
            &[(40, 50 * 1_048_576), (20, 30 * 1_048_576)],
            false,
        );
        assert_eq!(r.container_concurrency, 32);
        assert_eq!(r.max_streams, 32);
        assert!(!r.capped);
        // ceil(1000 / (0.6 x 32)) = ceil(52.08) = 53
        assert_eq!(r.instances_for_target, Some(53));
        assert_eq!(r.max_instances, Some(53));
        assert!(
            r.arithmetic[0].contains("floor(40 x 0.8) = 32"),
            "{:?}",
            r.arithmetic
        );
        // Read at the smallest level that holds 32 streams: 40.
        assert_eq!(r.memory_at_streams, Some(40));
        assert!(r
            .arithmetic
            .iter()
            .any(|l| l.contains("at 40 streams: 50.0 MiB")));
    }

    #[test]
    fn cloud_runs_maximum_caps_and_says_so() {
        let r = recommend(
            19_000,
            0.8,
            None,
            &[(800, 20 << 20), (1_600, 34 << 20), (19_000, 330 << 20)],
            false,
        );
        assert_eq!(r.container_concurrency, 1_000);
        assert!(r.capped);
        assert!(r.arithmetic.iter().any(|l| l.contains("could hold 15200")));
        assert_eq!(r.instances_for_target, None);
        // The memory that goes with 1,000 streams, not with 19,000.
        assert_eq!(r.memory_at_streams, Some(1_600));
        assert_eq!(r.memory_bytes, Some(34 << 20));
        // Tiny answers still allow one stream.
        assert_eq!(recommend(1, 0.5, None, &[], false).container_concurrency, 1);
    }

    /// The command changes only the concurrency, trickle's limit and the
    /// instances, with a region; and the shipped manifests give trickle
    /// its limit through the variable the command sets (an argument would
    /// win over it, and `--args` would drop every other argument).
    #[test]
    fn the_command_and_the_shipped_manifests_agree() {
        let r = recommend(100, 0.8, Some(1_000), &[], false);
        let command = r.gcloud();
        assert_eq!(
            command,
            "gcloud run services update SERVICE --region REGION --concurrency 80 --update-env-vars TRICKLE_MAX_STREAMS=80 --max-instances 21"
        );
        assert!(!command.contains("--args"));
        for manifest in ["service.yaml", "service-h2c.yaml"] {
            let path =
                concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/cloudrun/").to_owned() + manifest;
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                !text.contains("--max-streams"),
                "{manifest} passes --max-streams as an argument"
            );
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            let at = lines
                .iter()
                .position(|l| *l == format!("- name: {MAX_STREAMS_ENV}"))
                .unwrap_or_else(|| panic!("{manifest} sets no {MAX_STREAMS_ENV}"));
            let value = lines[at + 1]
                .trim_start_matches("value:")
                .trim()
                .trim_matches('"');
            let concurrency = lines
                .iter()
                .find_map(|l| l.strip_prefix("containerConcurrency:"))
                .map(str::trim);
            assert_eq!(Some(value), concurrency, "{manifest}");
        }
        // A search stopped by --max says its answer is a lower bound.
        let bounded = recommend(200, 0.8, None, &[], true);
        assert!(bounded.at_least && bounded.arithmetic[0].contains("at least 200"));
    }

    #[test]
    fn memory_is_read_from_the_exposition() {
        let text = "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes 1.2345e+07\n";
        assert_eq!(resident_memory(text), Some(12_345_000));
        assert_eq!(resident_memory("nothing here\n"), None);
    }
}
