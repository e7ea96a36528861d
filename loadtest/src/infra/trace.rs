//! Trace context on every stream trickle-load opens, so a stream in the
//! report can be found in the server's traces: a W3C `traceparent` (and,
//! with `--trace-header cloud|both`, Google's `X-Cloud-Trace-Context`)
//! with a new trace id per logical stream and a new span id per connection
//! (a resumed stream stays one trace). `--trace-sample` sets the sampled
//! flag; a `--header traceparent: ...` the user gives wins (nothing is
//! added then).

/// Which trace headers go out.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum TraceHeader {
    /// `traceparent` (W3C Trace Context).
    #[default]
    W3c,
    /// `X-Cloud-Trace-Context` (`TRACE_ID/SPAN_ID;o=1`, the span id in
    /// decimal).
    Cloud,
    /// Both.
    Both,
}

/// One logical stream's trace: its id and whether it is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTrace {
    pub trace_id: u128,
    pub sampled: bool,
    /// With `--reconnect`: the span id of the client's span of the whole
    /// stream, the parent of its connections' spans (no request carries
    /// it; each carries its connection's own span id).
    pub stream_span: Option<u64>,
}

impl StreamTrace {
    /// The trace id as trace views show it: 32 lower-case hex digits.
    pub fn id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// How every stream of the run is traced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePlan {
    pub sample: f64,
    pub header: TraceHeader,
}

impl TracePlan {
    /// A new stream's trace: a random non-zero id, sampled at the ratio.
    pub fn new_stream(&self) -> StreamTrace {
        StreamTrace {
            trace_id: fastrand::u128(1..),
            sampled: self.sample > 0.0 && fastrand::f64() < self.sample,
            stream_span: None,
        }
    }

    /// The headers of one connection of `trace`, whose span is `span`.
    pub fn headers(&self, trace: StreamTrace, span: u64) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(2);
        if matches!(self.header, TraceHeader::W3c | TraceHeader::Both) {
            out.push(("traceparent", traceparent(trace, span)));
        }
        if matches!(self.header, TraceHeader::Cloud | TraceHeader::Both) {
            out.push(("x-cloud-trace-context", cloud_trace_context(trace, span)));
        }
        out
    }
}

/// `00-TRACE_ID-SPAN_ID-FLAGS`, lower-case hex.
pub fn traceparent(trace: StreamTrace, span: u64) -> String {
    format!(
        "00-{:032x}-{span:016x}-{:02x}",
        trace.trace_id,
        u8::from(trace.sampled)
    )
}

/// `TRACE_ID/SPAN_ID;o=N`, as trickle-telemetry's propagator writes and
/// reads it.
pub fn cloud_trace_context(trace: StreamTrace, span: u64) -> String {
    trickle_telemetry::propagation::CloudTraceContextPropagator::format_ids(
        trace.trace_id,
        span,
        trace.sampled,
    )
}

/// The trace plan of a run: none when the user sends a `traceparent` or
/// `X-Cloud-Trace-Context` of their own (theirs wins).
pub fn plan(
    sample: f64,
    header: TraceHeader,
    user_headers: &[(String, String)],
) -> Option<TracePlan> {
    let theirs = user_headers.iter().any(|(name, _)| {
        name.eq_ignore_ascii_case("traceparent")
            || name.eq_ignore_ascii_case("x-cloud-trace-context")
    });
    (!theirs).then_some(TracePlan { sample, header })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_each_format() {
        let trace = StreamTrace {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            sampled: true,
            stream_span: None,
        };
        assert_eq!(
            traceparent(trace, 0x00f0_67aa_0ba9_02b7),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(
            cloud_trace_context(
                StreamTrace {
                    sampled: false,
                    ..trace
                },
                67_667_974_448_284_343
            ),
            "4bf92f3577b34da6a3ce929d0e0e4736/67667974448284343;o=0"
        );
        let both = TracePlan {
            sample: 1.0,
            header: TraceHeader::Both,
        };
        let headers = both.headers(trace, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(
            headers,
            [
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()
                ),
                (
                    "x-cloud-trace-context",
                    "4bf92f3577b34da6a3ce929d0e0e4736/67667974448284343;o=1".to_owned()
                )
            ]
        );
    }

    #[test]
    fn the_sampled_flag_follows_the_ratio() {
        let plan = |sample| TracePlan {
            sample,
            header: TraceHeader::W3c,
        };
        assert!((0..1_000).all(|_| plan(1.0).new_stream().sampled));
        assert!((0..1_000).all(|_| !plan(0.0).new_stream().sampled));
        let sampled = (0..10_000)
            .filter(|_| plan(0.1).new_stream().sampled)
            .count();
        assert!((800..1_200).contains(&sampled), "{sampled}");
    }

    #[test]
    fn a_users_own_trace_header_wins() {
        let theirs = vec![("Traceparent".to_owned(), "00-x".to_owned())];
        assert_eq!(super::plan(0.5, TraceHeader::W3c, &theirs), None);
        assert!(super::plan(0.5, TraceHeader::W3c, &[]).is_some());
    }
}
