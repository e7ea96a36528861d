//! The instance's size as Cloud Run allows it: vCPU, and the memory limit
//! sized from the memory measured at the recommended concurrency.
//!
//! Cloud Run's rules (docs.cloud.google.com/run/docs/configuring/cpu, "vCPU
//! and memory table", and .../configuring/services/memory-limits, read
//! 2026-12-07): above 1 vCPU only whole numbers up to 8; memory per vCPU
//! 1: up to 4 GiB, 2: up to 8 GiB, 4: 2 to 16 GiB, 6: 4 to 24 GiB, 8: 4 to
//! 32 GiB; at least 512 MiB in the second generation environment. Below 1
//! vCPU, concurrency must be 1 and billing request-based: no setting for a
//! streaming service holding many streams.

use serde::{Deserialize, Serialize};

/// The smallest memory limit of the second generation environment.
pub const MIN_MEMORY_MIB: u64 = 512;
/// Memory limits are rounded up to this step.
pub const MEMORY_STEP_MIB: u64 = 128;
/// The vCPU counts a multi-stream service can use, with their memory
/// range in MiB.
pub const VCPU_MEMORY: [(u64, u64, u64); 5] = [
    (1, MIN_MEMORY_MIB, 4 * 1_024),
    (2, MIN_MEMORY_MIB, 8 * 1_024),
    (4, 2 * 1_024, 16 * 1_024),
    (6, 4 * 1_024, 24 * 1_024),
    (8, 4 * 1_024, 32 * 1_024),
];

/// The memory range Cloud Run allows with `vcpu` vCPU.
pub fn memory_range(vcpu: u64) -> Option<(u64, u64)> {
    VCPU_MEMORY
        .iter()
        .find(|(v, _, _)| *v == vcpu)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// `--cpu`: 1, 2, 4, 6 or 8.
pub fn parse_vcpu(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Err(format!(
            "{raw}: below 1 vCPU Cloud Run needs concurrency 1 and request-based billing (run/docs/configuring/cpu): no setting for a service holding many streams; give 1, 2, 4, 6 or 8"
        )),
        Ok(v) if v.fract() == 0.0 && memory_range(v as u64).is_some() => Ok(v as u64),
        _ => Err(format!("{raw}: Cloud Run's vCPU counts are 1, 2, 4, 6 or 8")),
    }
}

/// `--sidecar-cpu`: 0 (no sidecar) or 0.08 to 8 vCPU.
pub fn parse_sidecar_vcpu(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(v) if v == 0.0 || (0.08..=8.0).contains(&v) => Ok(v),
        _ => Err(format!("{raw}: 0 (no sidecar) or 0.08 to 8 vCPU")),
    }
}

/// A memory size as Kubernetes and gcloud write it: `512Mi`, `1Gi`,
/// `1.5Gi`, `500M`, `2G` (M and G are powers of ten), in MiB, rounded up.
/// `0` is no memory (a sidecar left out).
pub fn parse_memory(raw: &str) -> Result<u64, String> {
    let text = raw.trim();
    let (number, bytes_per_unit) = if let Some(n) = text.strip_suffix("Mi") {
        (n, 1_048_576.0)
    } else if let Some(n) = text.strip_suffix("Gi") {
        (n, 1_073_741_824.0)
    } else if let Some(n) = text.strip_suffix('M') {
        (n, 1e6)
    } else if let Some(n) = text.strip_suffix('G') {
        (n, 1e9)
    } else if text == "0" {
        ("0", 1.0)
    } else {
        return Err(format!(
            "{raw}: a memory size with its unit, e.g. 512Mi, 1Gi, 2G"
        ));
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * bytes_per_unit <= 64.0 * 1_073_741_824.0 => {
            Ok((v * bytes_per_unit / 1_048_576.0).ceil() as u64)
        }
        _ => Err(format!(
            "{raw}: a memory size with its unit, e.g. 512Mi, 1Gi, 2G (at most 64Gi)"
        )),
    }
}

/// The service container's memory limit, with the working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySizing {
    /// The limit to set, in MiB.
    pub limit_mib: u64,
    /// `measured` (from the instance's resident memory) or `--memory`
    /// (nothing measured).
    pub from: String,
    /// Resident memory read, in bytes, and the level it was read at.
    pub measured_bytes: Option<u64>,
    pub at_streams: Option<u64>,
    /// Cloud Run's range for the vCPU count, in MiB.
    pub allowed_mib: (u64, u64),
    /// The limit needs more vCPU than given: the fewest that allow it.
    pub needs_vcpu: Option<u64>,
    pub arithmetic: String,
}

/// Sizes the limit so the measured resident memory is `headroom` of it
/// (rounded up to 128 MiB, at least Cloud Run's minimum for `vcpu`); with
/// nothing measured, `given_mib` (`--memory`) is kept and checked.
pub fn size_memory(
    measured: Option<(u64, u64)>,
    headroom: f64,
    vcpu: u64,
    given_mib: u64,
) -> MemorySizing {
    let (lo, hi) = memory_range(vcpu).unwrap_or((MIN_MEMORY_MIB, 4 * 1_024));
    let (limit_mib, from, arithmetic) = match measured {
        Some((streams, bytes)) => {
            let mib = bytes as f64 / 1_048_576.0;
            let wanted = mib / headroom.max(0.01);
            let stepped =
                ((wanted / MEMORY_STEP_MIB as f64).ceil() as u64).max(1) * MEMORY_STEP_MIB;
            let limit = stepped.max(lo);
            (
                limit,
                "measured",
                format!(
                    "memory limit = {mib:.1} MiB resident at {streams} streams / {headroom} = {wanted:.0} MiB, rounded up to {MEMORY_STEP_MIB} MiB{}: {limit} MiB",
                    if stepped < lo {
                        format!(", at least Cloud Run's {lo} MiB for {vcpu} vCPU")
                    } else {
                        String::new()
                    }
                ),
            )
        }
        None => (
            given_mib,
            "--memory",
            format!("memory limit = --memory {given_mib} MiB (no resident memory was read)"),
        ),
    };
    let needs_vcpu = (limit_mib > hi || limit_mib < lo)
        .then(|| {
            VCPU_MEMORY
                .iter()
                .find(|(_, lo, hi)| limit_mib >= *lo && limit_mib <= *hi)
                .map(|(v, _, _)| *v)
        })
        .flatten()
        .filter(|v| *v > vcpu);
    let arithmetic = match (needs_vcpu, limit_mib > hi, limit_mib < lo) {
        (Some(v), _, _) => {
            format!("{arithmetic}; more than {vcpu} vCPU allows ({lo}-{hi} MiB): give --cpu {v}")
        }
        (None, true, _) => {
            format!("{arithmetic}; more than Cloud Run allows (at most 32 GiB)")
        }
        (None, _, true) => format!(
            "{arithmetic}; below Cloud Run's {lo} MiB for {vcpu} vCPU: set at least {lo} MiB"
        ),
        _ => format!("{arithmetic} (Cloud Run allows {lo}-{hi} MiB with {vcpu} vCPU)"),
    };
    MemorySizing {
        limit_mib,
        from: from.to_owned(),
        measured_bytes: measured.map(|(_, b)| b),
        at_streams: measured.map(|(s, _)| s),
        allowed_mib: (lo, hi),
        needs_vcpu,
        arithmetic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_parsed_as_gcloud_writes_them() {
        for (raw, mib) in [
            ("512Mi", 512),
            ("1Gi", 1_024),
            ("1.5Gi", 1_536),
            ("2G", 1_908),
            ("500M", 477),
            ("0", 0),
        ] {
            assert_eq!(parse_memory(raw), Ok(mib), "{raw}");
        }
        for raw in ["512", "1Ti", "-1Gi", "Gi", "100Gi"] {
            assert!(parse_memory(raw).is_err(), "{raw}");
        }
        assert_eq!(parse_vcpu("2"), Ok(2));
        assert!(parse_vcpu("3").is_err_and(|e| e.contains("1, 2, 4, 6 or 8")));
        assert!(parse_vcpu("0.5").is_err_and(|e| e.contains("concurrency 1")));
        assert_eq!(parse_sidecar_vcpu("0.5"), Ok(0.5));
        assert_eq!(parse_sidecar_vcpu("0"), Ok(0.0));
        assert!(parse_sidecar_vcpu("0.01").is_err());
    }

    /// The table of cases: measured memory over the headroom, rounded, at
    /// least the floor for the vCPU count, and more vCPU when it needs it.
    #[test]
    fn memory_is_sized_from_what_was_measured() {
        let mib = 1_048_576;
        // (measured MiB, vCPU, limit, needs vCPU)
        for (measured, vcpu, limit, needs) in [
            (100, 1, 512, None),        // 125 -> 128, below the floor 512
            (500, 1, 640, None),        // 625 -> 640
            (3_500, 1, 4_480, Some(2)), // 4375 -> 4480: over 4 GiB, 2 vCPU allow it
            (1_000, 4, 2_048, None),    // 1250 -> 1280, the floor for 4 vCPU is 2 GiB
            (30_000, 8, 37_504, None),  // over 32 GiB: no vCPU count allows it
        ] {
            let s = size_memory(Some((1_000, measured * mib)), 0.8, vcpu, 512);
            assert_eq!((s.limit_mib, s.needs_vcpu), (limit, needs), "{s:?}");
            assert_eq!(s.from, "measured");
        }
        let over = size_memory(Some((1_000, 30_000 * mib)), 0.8, 8, 512);
        assert!(
            over.arithmetic.contains("at most 32 GiB"),
            "{}",
            over.arithmetic
        );
        let s = size_memory(Some((800, 100 * mib)), 0.8, 1, 512);
        assert!(
            s.arithmetic
                .contains("100.0 MiB resident at 800 streams / 0.8 = 125 MiB")
                && s.arithmetic.contains("at least Cloud Run's 512 MiB"),
            "{}",
            s.arithmetic
        );
        // Nothing measured: --memory is kept, and checked.
        let s = size_memory(None, 0.8, 4, 1_024);
        assert_eq!((s.limit_mib, s.from.as_str()), (1_024, "--memory"));
        assert!(
            s.arithmetic.contains("below Cloud Run's 2048 MiB"),
            "{}",
            s.arithmetic
        );
    }
}
