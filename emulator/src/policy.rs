//! The emulator's decisions as pure functions over plain data: how many
//! instances the load wants, which instance a request goes to, when a queued
//! request gives up, which idle instances retire, how long to back off
//! after failed starts. [`super::pool`] applies them to live instances.
//!
//! The rules follow Cloud Run's documented behaviour: the autoscaler aims
//! at about 60% of each instance's concurrency, never runs fewer than the
//! minimum or more than the maximum instances, and a request waits for a
//! free slot up to a queue timeout (bounded by the request timeout).

use std::time::Duration;

use tokio::time::Instant;

/// Cloud Run aims at about this share of each instance's concurrency.
pub const TARGET_UTILISATION: f64 = 0.6;
/// The first back-off after a failed start; it doubles per failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest back-off between start attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started, not yet accepting connections (a cold start).
    Starting,
    /// Takes requests.
    Ready,
    /// Told to stop (SIGTERM): takes no new requests, counts for nothing.
    Draining,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
        }
    }
}

/// What the policy sees of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceView {
    pub phase: Phase,
    /// Requests it serves right now.
    pub inflight: usize,
    /// How long it has had no request (zero while it has some).
    pub idle_for: Duration,
    /// Its process exited.
    pub dead: bool,
}

/// The service's scaling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingRules {
    /// Most requests on one instance at once.
    pub concurrency: usize,
    pub min_instances: usize,
    pub max_instances: usize,
    /// An instance idle this long may retire (down to the minimum).
    pub idle_ttl: Duration,
}

/// What the scaler does on one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Start one more instance.
    Start,
    /// Retire these instances (indices into the slice decided on).
    Retire(Vec<usize>),
    /// Nothing to do.
    Hold,
}

/// Instances wanted for `demand` requests (in flight plus queued): enough
/// that each runs at [`TARGET_UTILISATION`] of its concurrency, within the
/// minimum and maximum.
pub fn wanted_instances(demand: usize, rules: &ScalingRules) -> usize {
    let per_instance = (rules.concurrency as f64 * TARGET_UTILISATION).max(1.0);
    ((demand as f64 / per_instance).ceil() as usize)
        .max(rules.min_instances)
        .min(rules.max_instances)
}

/// One scaler tick: start an instance when fewer live (starting or ready)
/// instances run than the load wants; otherwise retire ready instances that
/// have been idle for the idle TTL, as many as run beyond what is wanted.
/// A starting instance counts as live, so a cold start is not doubled; a
/// draining one counts for nothing.
pub fn decide(instances: &[InstanceView], queued: usize, rules: &ScalingRules) -> ScaleDecision {
    let live = || {
        instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.phase != Phase::Draining)
    };
    let demand = live().map(|(_, i)| i.inflight).sum::<usize>() + queued;
    let wanted = wanted_instances(demand, rules);
    let running = live().count();
    if running < wanted {
        return ScaleDecision::Start;
    }
    let removable = running.saturating_sub(wanted.max(rules.min_instances));
    let idle: Vec<usize> = live()
        .filter(|(_, i)| i.phase == Phase::Ready && i.inflight == 0 && i.idle_for >= rules.idle_ttl)
        .map(|(index, _)| index)
        .take(removable)
        .collect();
    if idle.is_empty() {
        ScaleDecision::Hold
    } else {
        ScaleDecision::Retire(idle)
    }
}

/// The scaling rules of one revision with `percent` of the traffic. A
/// revision with a share scales as the service does, its minimum
/// instances in proportion to its share, rounded up (the emulator's
/// assumption: Cloud Run documents service-level minimum instances as
/// kept across the revisions serving traffic). A revision with no share
/// starts nothing and retires each instance as soon as it holds no
/// request: its open streams run on to their end or the request timeout.
pub fn revision_rules(service: &ScalingRules, percent: u32) -> ScalingRules {
    if percent == 0 {
        return ScalingRules {
            min_instances: 0,
            max_instances: 0,
            idle_ttl: Duration::ZERO,
            ..*service
        };
    }
    ScalingRules {
        min_instances: (service.min_instances * percent as usize).div_ceil(100),
        ..*service
    }
}

/// The instances a new request may go to, best first: ready, alive, below
/// the concurrency, least loaded first (ties keep their order). The caller
/// claims a slot on the first that still has room when it tries.
pub fn placement_order(instances: &[InstanceView], concurrency: usize) -> Vec<usize> {
    let mut order: Vec<usize> = instances
        .iter()
        .enumerate()
        .filter(|(_, i)| i.phase == Phase::Ready && !i.dead && i.inflight < concurrency)
        .map(|(index, _)| index)
        .collect();
    order.sort_by_key(|&index| instances[index].inflight);
    order
}

/// When a request that arrived at `arrived` stops waiting for a slot and
/// gets 429: after the queue timeout, and never after its request timeout.
pub fn queue_deadline(
    arrived: Instant,
    queue_timeout: Duration,
    request_timeout: Duration,
) -> Instant {
    arrived + queue_timeout.min(request_timeout)
}

/// The pause before the next start after `failures` failed starts in a row:
/// none at first, then 0.2 s, doubling, at most 5 s.
pub fn start_backoff(failures: usize) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = failures.min(6) as u32;
    (BACKOFF_FIRST * 2u32.pow(shift)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ScalingRules = ScalingRules {
        concurrency: 10,
        min_instances: 0,
        max_instances: 5,
        idle_ttl: Duration::from_secs(60),
    };

    fn ready(inflight: usize) -> InstanceView {
        InstanceView {
            phase: Phase::Ready,
            inflight,
            idle_for: Duration::ZERO,
            dead: false,
        }
    }

    fn idle(for_s: u64) -> InstanceView {
        InstanceView {
            idle_for: Duration::from_secs(for_s),
            ..ready(0)
        }
    }

    fn phase(phase: Phase, inflight: usize) -> InstanceView {
        InstanceView {
            phase,
            ..ready(inflight)
        }
    }

    #[test]
    fn a_revision_without_traffic_drains_and_one_with_some_keeps_its_share_of_the_minimum() {
        let service = ScalingRules {
            min_instances: 3,
            ..RULES
        };
        // (percent, min instances)
        for (percent, min) in [(100, 3), (50, 2), (10, 1), (1, 1)] {
            let rules = revision_rules(&service, percent);
            assert_eq!(rules.min_instances, min, "{percent}%");
            assert_eq!(rules.max_instances, service.max_instances);
            assert_eq!(rules.idle_ttl, service.idle_ttl);
        }
        // No share: an instance with streams is kept (however many it
        // holds, nothing starts for them), one without retires at once.
        let rules = revision_rules(&service, 0);
        let busy = ready(10);
        let idle_now = idle(0);
        assert_eq!(decide(&[busy, busy], 0, &rules), ScaleDecision::Hold);
        assert_eq!(
            decide(&[busy, idle_now, busy, idle_now], 0, &rules),
            ScaleDecision::Retire(vec![1, 3])
        );
        assert_eq!(decide(&[], 5, &rules), ScaleDecision::Hold);
    }

    #[test]
    fn instances_wanted_aim_at_sixty_percent_within_min_and_max() {
        let with = |min, max| ScalingRules {
            min_instances: min,
            max_instances: max,
            ..RULES
        };
        // (demand, min, max, wanted); 6 requests per instance at 60% of 10.
        let cases = [
            (0, 0, 5, 0),
            (1, 0, 5, 1),
            (6, 0, 5, 1),
            (7, 0, 5, 2),
            (12, 0, 5, 2),
            (13, 0, 5, 3),
            // The minimum holds with no load at all.
            (0, 2, 5, 2),
            (7, 3, 5, 3),
            // The maximum caps however much is queued.
            (1_000, 0, 5, 5),
            (1_000, 1, 1, 1),
        ];
        for (demand, min, max, wanted) in cases {
            assert_eq!(
                wanted_instances(demand, &with(min, max)),
                wanted,
                "demand {demand}, min {min}, max {max}"
            );
        }
        // Concurrency 1 still needs one instance per request.
        let single = ScalingRules {
            concurrency: 1,
            ..RULES
        };
        assert_eq!(wanted_instances(3, &single), 3);
    }

    #[test]
    fn the_scaler_starts_retires_or_holds() {
        use ScaleDecision::*;
        let min1 = ScalingRules {
            min_instances: 1,
            ..RULES
        };
        let max1 = ScalingRules {
            max_instances: 1,
            ..RULES
        };
        // (what runs, queued, rules, decision)
        let cases: Vec<(Vec<InstanceView>, usize, ScalingRules, ScaleDecision)> = vec![
            // Nothing runs, nothing asked: nothing to do.
            (vec![], 0, RULES, Hold),
            // The first request queues: a cold start.
            (vec![], 1, RULES, Start),
            // min instances: started with no load at all.
            (vec![], 0, min1, Start),
            // Six in flight fit one instance at 60%; seven want a second.
            (vec![ready(6)], 0, RULES, Hold),
            (vec![ready(6)], 1, RULES, Start),
            // A starting instance counts: no second start for the same load.
            (vec![ready(6), phase(Phase::Starting, 0)], 1, RULES, Hold),
            // A draining instance counts for nothing, its requests neither.
            (vec![phase(Phase::Draining, 10)], 1, RULES, Start),
            (vec![phase(Phase::Draining, 10), ready(1)], 0, RULES, Hold),
            // max instances: queued requests cannot start an instance more.
            (vec![ready(10)], 50, max1, Hold),
            // Idle past the TTL and not wanted: retired.
            (vec![ready(1), idle(61)], 0, RULES, Retire(vec![1])),
            // Idle but not for long enough: kept.
            (vec![ready(1), idle(59)], 0, RULES, Hold),
            // Idle past the TTL but the minimum needs it: kept.
            (vec![idle(3_600)], 0, min1, Hold),
            (vec![idle(3_600), idle(3_600)], 0, min1, Retire(vec![0])),
            // Busy instances never retire, however many run.
            (vec![ready(1), ready(1), ready(1)], 0, RULES, Hold),
            // A starting instance is not idle, whatever its clock says.
            (
                vec![InstanceView {
                    idle_for: Duration::from_secs(3_600),
                    ..phase(Phase::Starting, 0)
                }],
                0,
                RULES,
                Hold,
            ),
        ];
        for (i, (instances, queued, rules, decision)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(&instances, queued, &rules),
                decision,
                "case {i}: {instances:?} queued {queued}"
            );
        }
    }

    #[test]
    fn requests_go_to_the_least_loaded_ready_instance_with_room() {
        let dead = InstanceView {
            dead: true,
            ..ready(0)
        };
        // (instances, order)
        let cases: Vec<(Vec<InstanceView>, Vec<usize>)> = vec![
            (vec![], vec![]),
            (vec![ready(3), ready(1), ready(2)], vec![1, 2, 0]),
            // Full instances take nothing.
            (vec![ready(10), ready(9)], vec![1]),
            (vec![ready(10), ready(10)], vec![]),
            // Starting, draining and dead instances take nothing.
            (
                vec![
                    phase(Phase::Starting, 0),
                    phase(Phase::Draining, 0),
                    dead,
                    ready(5),
                ],
                vec![3],
            ),
            // Ties keep their order.
            (vec![ready(2), ready(2), ready(1)], vec![2, 0, 1]),
        ];
        for (instances, order) in cases {
            assert_eq!(placement_order(&instances, 10), order, "{instances:?}");
        }
    }

    #[test]
    fn a_queued_request_gives_up_at_the_queue_or_the_request_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(queue_deadline(t0, s(10), s(300)), t0 + s(10));
        // A request timeout shorter than the queue wait bounds it.
        assert_eq!(queue_deadline(t0, s(10), s(2)), t0 + s(2));
        assert_eq!(queue_deadline(t0, Duration::ZERO, s(2)), t0);
    }

    #[test]
    fn failed_starts_back_off_doubling_up_to_five_seconds() {
        let ms = Duration::from_millis;
        let cases = [
            (0, ms(0)),
            (1, ms(200)),
            (2, ms(400)),
            (3, ms(800)),
            (5, ms(3_200)),
            (6, ms(5_000)),
            (100, ms(5_000)),
        ];
        for (failures, backoff) in cases {
            assert_eq!(start_backoff(failures), backoff, "{failures} failures");
        }
    }
}
