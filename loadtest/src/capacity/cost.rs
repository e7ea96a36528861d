//! What a stream-hour costs on Cloud Run, under both billing settings,
//! from the capacity answer, the instance's size and dated prices.
//!
//! With long-lived streams an instance with one open stream is processing
//! a request, so under request-based billing it is billable nearly all its
//! life, as under instance-based billing; what differs is the price per
//! vCPU- and GiB-second and the fee per request (every stream and every
//! reconnect is a request). The arithmetic is pure and kept with its
//! inputs, so a script can recompute it from the JSON report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::recommend::{Recommendation, AUTOSCALER_TARGET, CLOUD_RUN_MAX_CONCURRENCY};
use super::sizing::{size_memory, MemorySizing};

/// The prices shipped with trickle-load (Tier 1, as read on the date the
/// file says). `--prices FILE` replaces them.
pub const SHIPPED_PRICES: &str = include_str!("../../prices/cloud-run-tier1.json");
/// Hours in the month the monthly figures use (365 x 24 / 12, the
/// convention of Google's pricing calculator).
pub const MONTH_HOURS: f64 = 730.0;
/// Share of an instance's life billed under request-based billing when it
/// holds streams at a steady load: an instance with at least one open
/// stream is processing a request, and at the steady load it always holds
/// some.
pub const REQUEST_BILLABLE_SHARE: f64 = 1.0;

/// A price list: Cloud Run's two billing settings, with where and when the
/// prices were read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub name: String,
    pub source: String,
    /// The date the prices were read (YYYY-MM-DD).
    pub read_on: String,
    /// Checked against the live page when read: false for the shipped file.
    #[serde(default)]
    pub verified_live: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how_read: Option<String>,
    pub currency: String,
    pub request_based: RequestPrices,
    pub instance_based: InstancePrices,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_tier: Option<FreeTier>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Request-based billing ("CPU only allocated during request processing").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPrices {
    pub vcpu_second: f64,
    pub gib_second: f64,
    pub per_million_requests: f64,
    /// The lower rate of an idle minimum instance; `null`: unknown, charged
    /// at the active rate (an upper bound).
    #[serde(default)]
    pub idle_vcpu_second: Option<f64>,
    #[serde(default)]
    pub idle_gib_second: Option<f64>,
}

/// Instance-based billing ("CPU always allocated"): no request fee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstancePrices {
    pub vcpu_second: f64,
    pub gib_second: f64,
    /// Prices in this block still to be confirmed on the source page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<String>,
}

/// The monthly free tier, subtracted from the monthly figures only when
/// `subtract` says so (it is per billing account, not per service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreeTier {
    pub subtract: bool,
    #[serde(default)]
    pub request_based: Option<Allowance>,
    #[serde(default)]
    pub instance_based: Option<Allowance>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Allowance {
    pub vcpu_seconds: f64,
    pub gib_seconds: f64,
    #[serde(default)]
    pub requests: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    #[error("--prices {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--prices {}: not a price list: {source} (see loadtest/prices/cloud-run-tier1.json for the shape)", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("--prices {}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
}

impl Prices {
    /// The shipped list.
    pub fn shipped() -> Result<Self, PricesError> {
        Self::parse(SHIPPED_PRICES, Path::new("(shipped)"))
    }

    /// `--prices FILE`, or the shipped list.
    pub fn load(path: Option<&Path>) -> Result<Self, PricesError> {
        let Some(path) = path else {
            return Self::shipped();
        };
        let text = std::fs::read_to_string(path).map_err(|source| PricesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, PricesError> {
        let prices: Prices = serde_json::from_str(text).map_err(|source| PricesError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let r = &prices.request_based;
        let i = &prices.instance_based;
        let named = [
            ("request_based.vcpu_second", Some(r.vcpu_second)),
            ("request_based.gib_second", Some(r.gib_second)),
            (
                "request_based.per_million_requests",
                Some(r.per_million_requests),
            ),
            ("request_based.idle_vcpu_second", r.idle_vcpu_second),
            ("request_based.idle_gib_second", r.idle_gib_second),
            ("instance_based.vcpu_second", Some(i.vcpu_second)),
            ("instance_based.gib_second", Some(i.gib_second)),
        ];
        for (name, value) in named {
            if let Some(v) = value {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(PricesError::Invalid {
                        path: path.to_owned(),
                        what: format!("{name} is {v}: a price is a finite number, at least 0"),
                    });
                }
            }
        }
        Ok(prices)
    }
}

/// One container of the instance: every container is billed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub vcpu: f64,
    pub memory_mib: u64,
}

/// Figures under both settings, in the price list's currency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub instance_based: f64,
    pub request_based: f64,
    /// The request-based figure's parts: CPU and memory, and the fee per
    /// request.
    pub request_based_compute: f64,
    pub request_based_requests: f64,
}

/// The cost at `--target-streams`, per month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtTarget {
    pub streams: u64,
    /// Instances the autoscaler runs for them (at least `--min-instances`).
    pub instances: u64,
    pub per_month: Figures,
    /// The free tier was subtracted (the price list said so).
    pub free_tier_subtracted: bool,
}

/// What `--min-instances` costs while they are idle (no stream open), per
/// month: the floor of the bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleFloor {
    pub instances: u64,
    pub per_month: Figures,
    /// `idle rate` or `active rate: an upper bound, the price list has no idle rate`.
    pub request_based_rate: String,
}

/// The inputs, so a script can recompute the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostInputs {
    pub prices: Prices,
    pub containers: Vec<Container>,
    /// Streams one instance holds at the steady load the recommendation
    /// runs it at: containerConcurrency x the autoscaler's target.
    pub streams_per_instance: f64,
    /// The answer itself (at most Cloud Run's maximum concurrency): an
    /// instance run full, with no headroom.
    pub streams_at_answer: u64,
    /// How long one stream lasts before it ends and is reopened (a request
    /// each time).
    pub stream_life_s: f64,
    pub target_streams: Option<u64>,
    pub instances_for_target: Option<u64>,
    pub min_instances: u64,
}

/// `capacity.cost` in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub inputs: CostInputs,
    pub vcpu: f64,
    pub memory_gib: f64,
    pub requests_per_stream_hour: f64,
    pub request_billable_share: f64,
    pub month_hours: f64,
    /// Per 1,000 stream-hours at the steady load.
    pub per_1000_stream_hours: Figures,
    /// Per 1,000 stream-hours with instances run at the answer itself.
    pub per_1000_stream_hours_at_answer: Figures,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_target: Option<AtTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_floor: Option<IdleFloor>,
    /// `instance_based` or `request_based`.
    pub cheaper: String,
    /// How much less the cheaper setting costs, as a share of the other.
    pub saving_share: f64,
    pub why: String,
    /// What to keep in mind: unconfirmed prices, the prices' date.
    pub caveats: Vec<String>,
}

/// Per-second prices of the whole instance.
struct Rates {
    instance: f64,
    request: f64,
    request_idle: Option<f64>,
}

fn rates(prices: &Prices, vcpu: f64, gib: f64) -> Rates {
    let r = &prices.request_based;
    let i = &prices.instance_based;
    Rates {
        instance: vcpu * i.vcpu_second + gib * i.gib_second,
        request: vcpu * r.vcpu_second + gib * r.gib_second,
        request_idle: match (r.idle_vcpu_second, r.idle_gib_second) {
            (Some(c), Some(m)) => Some(vcpu * c + gib * m),
            _ => None,
        },
    }
}

/// Per 1,000 stream-hours with `streams` streams on every instance.
fn per_1000_stream_hours(
    inputs: &CostInputs,
    rates: &Rates,
    streams: f64,
    requests_per_stream_hour: f64,
) -> Figures {
    let instance_seconds = 1_000.0 / streams.max(f64::MIN_POSITIVE) * 3_600.0;
    let compute = instance_seconds * REQUEST_BILLABLE_SHARE * rates.request;
    let requests =
        1_000.0 * requests_per_stream_hour * inputs.prices.request_based.per_million_requests / 1e6;
    Figures {
        instance_based: instance_seconds * rates.instance,
        request_based: compute + requests,
        request_based_compute: compute,
        request_based_requests: requests,
    }
}

/// The cost of a stream-hour under both settings, which is cheaper and why.
pub fn cost(inputs: CostInputs) -> Cost {
    let vcpu: f64 = inputs.containers.iter().map(|c| c.vcpu).sum();
    let memory_gib: f64 = inputs
        .containers
        .iter()
        .map(|c| c.memory_mib as f64 / 1_024.0)
        .sum();
    let rates = rates(&inputs.prices, vcpu, memory_gib);
    let requests_per_stream_hour = 3_600.0 / inputs.stream_life_s.max(f64::MIN_POSITIVE);
    let steady = per_1000_stream_hours(
        &inputs,
        &rates,
        inputs.streams_per_instance,
        requests_per_stream_hour,
    );
    let at_answer = per_1000_stream_hours(
        &inputs,
        &rates,
        inputs.streams_at_answer as f64,
        requests_per_stream_hour,
    );
    let month_s = MONTH_HOURS * 3_600.0;
    let at_target = inputs.target_streams.map(|streams| {
        let instances = inputs
            .instances_for_target
            .unwrap_or(1)
            .max(inputs.min_instances);
        let instance_s = instances as f64 * month_s;
        let requests = streams as f64 * MONTH_HOURS * requests_per_stream_hour;
        let free = inputs.prices.free_tier.as_ref().filter(|f| f.subtract);
        let less = |used: f64, allowance: Option<f64>| (used - allowance.unwrap_or(0.0)).max(0.0);
        let r = &inputs.prices.request_based;
        let i = &inputs.prices.instance_based;
        let rf = free.and_then(|f| f.request_based);
        let inf = free.and_then(|f| f.instance_based);
        let billable_s = instance_s * REQUEST_BILLABLE_SHARE;
        let request_compute = less(billable_s * vcpu, rf.map(|a| a.vcpu_seconds)) * r.vcpu_second
            + less(billable_s * memory_gib, rf.map(|a| a.gib_seconds)) * r.gib_second;
        let request_fee = less(requests, rf.map(|a| a.requests)) * r.per_million_requests / 1e6;
        let instance_based = less(instance_s * vcpu, inf.map(|a| a.vcpu_seconds)) * i.vcpu_second
            + less(instance_s * memory_gib, inf.map(|a| a.gib_seconds)) * i.gib_second;
        AtTarget {
            streams,
            instances,
            per_month: Figures {
                instance_based,
                request_based: request_compute + request_fee,
                request_based_compute: request_compute,
                request_based_requests: request_fee,
            },
            free_tier_subtracted: free.is_some(),
        }
    });
    let idle_floor = (inputs.min_instances > 0).then(|| {
        let seconds = inputs.min_instances as f64 * month_s;
        let idle = rates.request_idle.unwrap_or(rates.request);
        IdleFloor {
            instances: inputs.min_instances,
            per_month: Figures {
                instance_based: seconds * rates.instance,
                request_based: seconds * idle,
                request_based_compute: seconds * idle,
                request_based_requests: 0.0,
            },
            request_based_rate: if rates.request_idle.is_some() {
                "idle rate".to_owned()
            } else {
                "active rate: an upper bound, the price list has no idle rate".to_owned()
            },
        }
    });
    let (cheaper, saving_share, why) = verdict(&inputs, &steady, vcpu, memory_gib);
    let mut caveats = vec![format!(
        "prices {} as read on {} from {}{}",
        inputs.prices.name,
        inputs.prices.read_on,
        inputs.prices.source,
        if inputs.prices.verified_live {
            ""
        } else {
            ", not verified live"
        }
    )];
    for name in &inputs.prices.instance_based.unconfirmed {
        caveats.push(format!(
            "instance_based.{name} is unconfirmed in the price list: confirm it, or give --prices"
        ));
    }
    if at_target.is_some() {
        let subtracted = inputs.prices.free_tier.as_ref().is_some_and(|f| f.subtract);
        caveats.push(if subtracted {
            "the monthly free tier is subtracted (the price list says so; it is per billing account)".to_owned()
        } else {
            "the monthly free tier is not subtracted".to_owned()
        });
    }
    Cost {
        inputs,
        vcpu,
        memory_gib,
        requests_per_stream_hour,
        request_billable_share: REQUEST_BILLABLE_SHARE,
        month_hours: MONTH_HOURS,
        per_1000_stream_hours: steady,
        per_1000_stream_hours_at_answer: at_answer,
        at_target,
        idle_floor,
        cheaper,
        saving_share,
        why,
        caveats,
    }
}

/// Which setting is cheaper at the steady load, by how much, and why: the
/// parts where the two bills differ, largest first.
fn verdict(inputs: &CostInputs, steady: &Figures, vcpu: f64, gib: f64) -> (String, f64, String) {
    let instance_cheaper = steady.instance_based <= steady.request_based;
    let (low, high) = if instance_cheaper {
        (steady.instance_based, steady.request_based)
    } else {
        (steady.request_based, steady.instance_based)
    };
    let share = if high > 0.0 { (high - low) / high } else { 0.0 };
    let r = &inputs.prices.request_based;
    let i = &inputs.prices.instance_based;
    // Each part's cost per 1,000 stream-hours under each setting.
    let instance_s = 1_000.0 / inputs.streams_per_instance.max(f64::MIN_POSITIVE) * 3_600.0;
    let request_s = instance_s * REQUEST_BILLABLE_SHARE;
    let parts = [
        (
            "CPU",
            instance_s * vcpu * i.vcpu_second,
            request_s * vcpu * r.vcpu_second,
            versus(instance_cheaper, i.vcpu_second, r.vcpu_second, "vCPU-second"),
        ),
        (
            "memory",
            instance_s * gib * i.gib_second,
            request_s * gib * r.gib_second,
            versus(instance_cheaper, i.gib_second, r.gib_second, "GiB-second"),
        ),
        (
            "requests",
            0.0,
            steady.request_based_requests,
            format!(
                "{:.1} requests per stream-hour at {} per million under request-based billing, none under instance-based",
                3_600.0 / inputs.stream_life_s.max(f64::MIN_POSITIVE),
                price(r.per_million_requests)
            ),
        ),
    ];
    let mut favour: Vec<(f64, String)> = parts
        .iter()
        .filter_map(|(name, inst, req, detail)| {
            let saved = if instance_cheaper {
                req - inst
            } else {
                inst - req
            };
            (saved > 0.0).then(|| (saved, format!("{name} ({detail})")))
        })
        .collect();
    favour.sort_by(|a, b| b.0.total_cmp(&a.0));
    let reasons: Vec<String> = favour.into_iter().map(|(_, why)| why).collect();
    let name = if instance_cheaper {
        "instance_based"
    } else {
        "request_based"
    };
    let why = format!(
        "streams keep instances busy, so an instance is billable nearly all its life under either setting: {} is {:.0}% cheaper{}",
        name.replace('_', "-"),
        share * 100.0,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(", on {}", reasons.join("; "))
        }
    );
    (name.to_owned(), share, why)
}

/// The instance as `capacity` was told it is (`--cpu`, `--memory`, the
/// sidecar, `--stream-life`, `--min-instances`, `--headroom`).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub vcpu: u64,
    pub memory_mib: u64,
    pub sidecar_vcpu: f64,
    pub sidecar_memory_mib: u64,
    pub stream_life: Duration,
    pub min_instances: u64,
    pub headroom: f64,
}

impl Plan {
    pub fn of(args: &super::CapacityArgs) -> Self {
        Self {
            vcpu: args.vcpu,
            memory_mib: args.memory,
            sidecar_vcpu: args.sidecar_cpu,
            sidecar_memory_mib: args.sidecar_memory,
            stream_life: args.stream_life,
            min_instances: args.min_instances,
            headroom: args.headroom,
        }
    }
}

/// Sizes the recommendation's memory limit from what was measured, prices
/// a stream-hour for it, and adds both to its working.
pub fn for_recommendation(r: &mut Recommendation, plan: &Plan, prices: Prices) -> Cost {
    let measured = r.memory_at_streams.zip(r.memory_bytes);
    let sizing: MemorySizing = size_memory(measured, plan.headroom, plan.vcpu, plan.memory_mib);
    let mut containers = vec![Container {
        name: "service".to_owned(),
        vcpu: plan.vcpu as f64,
        memory_mib: sizing.limit_mib,
    }];
    if plan.sidecar_vcpu > 0.0 || plan.sidecar_memory_mib > 0 {
        containers.push(Container {
            name: "sidecar".to_owned(),
            vcpu: plan.sidecar_vcpu,
            memory_mib: plan.sidecar_memory_mib,
        });
    }
    let steady = AUTOSCALER_TARGET * r.container_concurrency as f64;
    let at_answer = r.answer.clamp(1, CLOUD_RUN_MAX_CONCURRENCY);
    let c = cost(CostInputs {
        prices,
        containers,
        streams_per_instance: steady,
        streams_at_answer: at_answer,
        stream_life_s: plan.stream_life.as_secs_f64(),
        target_streams: r.target_streams,
        instances_for_target: r.instances_for_target,
        min_instances: plan.min_instances,
    });
    r.arithmetic.push(sizing.arithmetic.clone());
    let f = &c.per_1000_stream_hours;
    let a = &c.per_1000_stream_hours_at_answer;
    r.arithmetic.push(format!(
        "cost per 1,000 stream-hours ({} vCPU, {:.2} GiB an instance, all containers; {steady:.0} streams an instance = {AUTOSCALER_TARGET} x {}): instance-based {}, request-based {} ({} of it request fees, {:.1} requests per stream-hour); at the answer itself ({at_answer} an instance): {} and {}",
        c.vcpu,
        c.memory_gib,
        r.container_concurrency,
        money(f.instance_based),
        money(f.request_based),
        money(f.request_based_requests),
        c.requests_per_stream_hour,
        money(a.instance_based),
        money(a.request_based),
    ));
    if let Some(t) = &c.at_target {
        r.arithmetic.push(format!(
            "{} streams on {} instances: {} a month instance-based, {} request-based",
            t.streams,
            t.instances,
            money(t.per_month.instance_based),
            money(t.per_month.request_based)
        ));
    }
    if let Some(floor) = &c.idle_floor {
        r.arithmetic.push(format!(
            "--min-instances {} kept idle: {} a month instance-based, {} request-based at the {}",
            floor.instances,
            money(floor.per_month.instance_based),
            money(floor.per_month.request_based),
            floor.request_based_rate
        ));
    }
    r.arithmetic.push(format!(
        "billing: {} (gcloud run services update SERVICE {})",
        c.why,
        if c.cheaper == "instance_based" {
            "--no-cpu-throttling"
        } else {
            "--cpu-throttling"
        }
    ));
    r.memory_limit = Some(sizing);
    r.billing = Some(c.cheaper.clone());
    c
}

impl Cost {
    /// The report's table: what is priced, instance-based, request-based.
    pub fn rows(&self) -> Vec<[String; 3]> {
        let mut rows = vec![
            [
                format!(
                    "per 1,000 stream-hours, {:.0} streams an instance (the steady load)",
                    self.inputs.streams_per_instance
                ),
                money(self.per_1000_stream_hours.instance_based),
                format!(
                    "{} ({} request fees)",
                    money(self.per_1000_stream_hours.request_based),
                    money(self.per_1000_stream_hours.request_based_requests)
                ),
            ],
            [
                format!(
                    "per 1,000 stream-hours, {} streams an instance (the answer, no headroom)",
                    self.inputs.streams_at_answer
                ),
                money(self.per_1000_stream_hours_at_answer.instance_based),
                money(self.per_1000_stream_hours_at_answer.request_based),
            ],
        ];
        if let Some(t) = &self.at_target {
            rows.push([
                format!(
                    "{} streams, a month ({} instances, {} h)",
                    t.streams, t.instances, self.month_hours
                ),
                money(t.per_month.instance_based),
                money(t.per_month.request_based),
            ]);
        }
        if let Some(f) = &self.idle_floor {
            rows.push([
                format!(
                    "{} minimum instance{} idle, a month",
                    f.instances,
                    if f.instances == 1 { "" } else { "s" }
                ),
                money(f.per_month.instance_based),
                format!(
                    "{} (at the {})",
                    money(f.per_month.request_based),
                    f.request_based_rate
                ),
            ]);
        }
        rows
    }

    /// One line on the instance priced.
    pub fn instance_line(&self) -> String {
        let parts: Vec<String> = self
            .inputs
            .containers
            .iter()
            .map(|c| format!("{} {} vCPU {} MiB", c.name, c.vcpu, c.memory_mib))
            .collect();
        format!(
            "an instance of {} vCPU and {:.2} GiB ({}); a stream lives {:.0} s ({:.1} requests per stream-hour); request-based billing counts {:.0}% of an instance's life (it always holds a stream at the steady load)",
            self.vcpu,
            self.memory_gib,
            parts.join(", "),
            self.inputs.stream_life_s,
            self.requests_per_stream_hour,
            self.request_billable_share * 100.0
        )
    }
}

/// Two prices of a unit, the cheaper setting's first, each named.
fn versus(instance_first: bool, instance: f64, request: f64, unit: &str) -> String {
    let (first, first_name, second, second_name) = if instance_first {
        (instance, "instance-based", request, "request-based")
    } else {
        (request, "request-based", instance, "instance-based")
    };
    format!(
        "{} {first_name} vs {} {second_name} per {unit}",
        price(first),
        price(second)
    )
}

/// A unit price, without float noise.
fn price(v: f64) -> String {
    let text = format!("{v:.10}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("${text}")
}

/// A figure of money, to the cent above a dollar, else to a tenth of one.
pub fn money(v: f64) -> String {
    if v < 1.0 {
        return format!("${v:.3}");
    }
    let text = format!("{v:.2}");
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("${grouped}.{cents}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(streams: f64, life_s: f64) -> CostInputs {
        CostInputs {
            prices: Prices::shipped().unwrap_or_else(|e| panic!("{e}")),
            containers: vec![
                Container {
                    name: "service".into(),
                    vcpu: 1.0,
                    memory_mib: 512,
                },
                Container {
                    name: "collector sidecar".into(),
                    vcpu: 0.5,
                    memory_mib: 256,
                },
            ],
            streams_per_instance: streams,
            streams_at_answer: 1_000,
            stream_life_s: life_s,
            target_streams: None,
            instances_for_target: None,
            min_instances: 0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    /// Worked by hand: 1.5 vCPU and 0.75 GiB, 480 streams an instance
    /// (1,000 x 0.8 x 0.6), streams living 290 s.
    #[test]
    fn a_stream_hour_costs_what_the_hand_computation_says() {
        let c = cost(inputs(480.0, 290.0));
        // 1,000 stream-hours = 1000/480 instance-hours = 7,500 instance-seconds.
        // instance-based: 7500 x (1.5 x 0.000018 + 0.75 x 0.000002) = 7500 x 0.0000285 = 0.21375
        assert!(
            close(c.per_1000_stream_hours.instance_based, 0.21375),
            "{c:?}"
        );
        // request-based: 7500 x (1.5 x 0.000024 + 0.75 x 0.0000025) = 7500 x 0.000037875 = 0.2840625
        assert!(close(
            c.per_1000_stream_hours.request_based_compute,
            0.2840625
        ));
        // requests: 1000 x 3600/290 = 12,413.8 requests x 0.40/1e6 = 0.0049655...
        assert!(close(
            c.per_1000_stream_hours.request_based_requests,
            1_000.0 * 3_600.0 / 290.0 * 0.4 / 1e6
        ));
        assert!(close(
            c.per_1000_stream_hours.request_based,
            0.2840625 + 1_000.0 * 3_600.0 / 290.0 * 0.4 / 1e6
        ));
        // At the answer itself: 1,000 streams an instance, 3,600 instance-seconds.
        assert!(close(
            c.per_1000_stream_hours_at_answer.instance_based,
            3_600.0 * 0.0000285
        ));
        assert_eq!(c.cheaper, "instance_based");
        // (0.2890280 - 0.21375) / 0.2890280 = 26.0%
        let request = 0.2840625 + 1_000.0 * 3_600.0 / 290.0 * 0.4 / 1e6;
        assert!(close(c.saving_share, (request - 0.21375) / request));
        assert!(c.why.contains("instance-based is 26% cheaper"), "{}", c.why);
        // The largest part first: CPU, then memory, then the fee.
        let cpu = c.why.find("CPU").unwrap_or(usize::MAX);
        let fee = c.why.find("requests (").unwrap_or(0);
        assert!(cpu < fee, "{}", c.why);
        assert!(
            c.why.contains(
                "CPU ($0.000018 instance-based vs $0.000024 request-based per vCPU-second)"
            ),
            "{}",
            c.why
        );
        assert!(c
            .caveats
            .iter()
            .any(|l| l.contains("2026-12-06") && l.contains("not verified live")));
        assert!(c
            .caveats
            .iter()
            .any(|l| l.contains("gib_second is unconfirmed")));
    }

    /// A month at a target, the free tier when the list says to subtract
    /// it, and the idle floor of minimum instances.
    #[test]
    fn a_month_at_the_target_and_the_idle_floor() {
        let mut i = inputs(480.0, 3_600.0);
        i.target_streams = Some(2_000);
        i.instances_for_target = Some(5);
        i.min_instances = 2;
        let c = cost(i.clone());
        let t = c.at_target.as_ref().unwrap_or_else(|| panic!("no target"));
        assert_eq!(t.instances, 5);
        let month_s = 730.0 * 3_600.0;
        assert!(close(t.per_month.instance_based, 5.0 * month_s * 0.0000285));
        // 2,000 streams x 730 h x 1 request per stream-hour.
        assert!(close(
            t.per_month.request_based_requests,
            2_000.0 * 730.0 * 0.4 / 1e6
        ));
        assert!(!t.free_tier_subtracted);
        let floor = c.idle_floor.as_ref().unwrap_or_else(|| panic!("no floor"));
        assert!(close(
            floor.per_month.instance_based,
            2.0 * month_s * 0.0000285
        ));
        // No idle rate in the shipped list: the active rate, said so.
        assert!(close(
            floor.per_month.request_based,
            2.0 * month_s * 0.000037875
        ));
        assert!(floor.request_based_rate.contains("upper bound"));

        // The free tier subtracted, an idle rate given.
        if let Some(free) = i.prices.free_tier.as_mut() {
            free.subtract = true;
        }
        i.prices.request_based.idle_vcpu_second = Some(0.0000025);
        i.prices.request_based.idle_gib_second = Some(0.0000025);
        let c = cost(i);
        let t = c.at_target.as_ref().unwrap_or_else(|| panic!("no target"));
        assert!(t.free_tier_subtracted);
        let vcpu_s = 5.0 * month_s * 1.5 - 180_000.0;
        let gib_s = 5.0 * month_s * 0.75 - 360_000.0;
        assert!(close(
            t.per_month.request_based_compute,
            vcpu_s * 0.000024 + gib_s * 0.0000025
        ));
        // 1,460,000 requests are inside the 2 million free.
        assert_eq!(t.per_month.request_based_requests, 0.0);
        let floor = c.idle_floor.as_ref().unwrap_or_else(|| panic!("no floor"));
        assert!(close(
            floor.per_month.request_based,
            2.0 * month_s * 2.25 * 0.0000025
        ));
        assert_eq!(floor.request_based_rate, "idle rate");
    }

    /// Short streams make many requests: with a cheap enough request-based
    /// CPU price the other setting can win, and the reason follows.
    #[test]
    fn the_verdict_follows_the_prices() {
        let mut i = inputs(480.0, 290.0);
        i.prices.request_based.vcpu_second = 0.000010;
        let c = cost(i);
        assert_eq!(c.cheaper, "request_based");
        assert!(c.why.contains("request-based is"), "{}", c.why);
        assert!(
            c.why.contains(
                "CPU ($0.00001 request-based vs $0.000018 instance-based per vCPU-second)"
            ),
            "{}",
            c.why
        );
        assert!(!c.why.contains("requests ("), "{}", c.why);
    }

    #[test]
    fn a_price_list_is_checked() {
        let dir = std::env::temp_dir().join(format!("trickle-prices-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let bad = dir.join("bad.json");
        let text = SHIPPED_PRICES.replace("\"vcpu_second\": 0.000024", "\"vcpu_second\": -1");
        let _ = std::fs::write(&bad, text);
        let e = Prices::load(Some(&bad))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("request_based.vcpu_second is -1"), "{e}");
        let _ = std::fs::write(&bad, "{\"name\": 1}");
        let e = Prices::load(Some(&bad))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a price list"), "{e}");
        let e = Prices::load(Some(&dir.join("missing.json")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("missing.json"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(money(1234.5), "$1,234.50");
        assert_eq!(money(1_234_567.891), "$1,234,567.89");
        assert_eq!(money(12.0), "$12.00");
        assert_eq!(money(0.2137), "$0.214");
    }
}
