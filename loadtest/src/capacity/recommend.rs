//! From the concurrency one instance holds within its SLO to the settings
//! that make Cloud Run keep it there: `containerConcurrency`, trickle's
//! `--max-streams`, and the instances for a target load. The arithmetic is
//! kept as text so the report can show it.

use serde::{Deserialize, Serialize};

/// Cloud Run's largest `containerConcurrency`.
pub const CLOUD_RUN_MAX_CONCURRENCY: u64 = 1_000;
/// The share of each instance's concurrency Cloud Run's autoscaler aims at.
pub const AUTOSCALER_TARGET: f64 = 0.6;

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
    /// The working, one line a step.
    pub arithmetic: Vec<String>,
}

/// The settings for an instance that holds `answer` streams within its
/// SLO. `memory`: what it used at each passing level (streams, bytes),
/// where it said.
pub fn recommend(
    answer: u64,
    headroom: f64,
    target_streams: Option<u64>,
    memory: &[(u64, u64)],
) -> Recommendation {
    let mut arithmetic = Vec::new();
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
        "trickle --max-streams = containerConcurrency = {container_concurrency} (trickle answers 429 before the platform queues)"
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
        );
        assert_eq!(r.container_concurrency, 1_000);
        assert!(r.capped);
        assert!(r.arithmetic.iter().any(|l| l.contains("could hold 15200")));
        assert_eq!(r.instances_for_target, None);
        // The memory that goes with 1,000 streams, not with 19,000.
        assert_eq!(r.memory_at_streams, Some(1_600));
        assert_eq!(r.memory_bytes, Some(34 << 20));
        // Tiny answers still allow one stream.
        assert_eq!(recommend(1, 0.5, None, &[]).container_concurrency, 1);
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
