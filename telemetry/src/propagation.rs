//! Parent context for a stream's span: W3C `traceparent`, or Google's
//! `X-Cloud-Trace-Context` when that is the only header (older Google
//! front ends, some proxies), so spans join Cloud Run's request trace.
//!
//! Malformed headers are ignored (the stream starts a new trace); they
//! never fail the request.

use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

pub const TRACEPARENT: &str = "traceparent";
pub const CLOUD_TRACE_CONTEXT: &str = "x-cloud-trace-context";

/// Reads headers from actix's own `HeaderMap` (actix-web 4 uses http 0.2).
pub(crate) struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The `X-Cloud-Trace-Context` propagator: `TRACE_ID/SPAN_ID;o=OPTIONS`,
/// with a 32-hex-digit trace id and a decimal span id.
///
/// Parsing follows Google's own propagator, `CloudTraceFormatPropagator`
/// in GoogleCloudPlatform/opentelemetry-operations-go
/// (`propagator/propagator.go`, `spanContextFromXCTCHeader`): the value must
/// match `^[0-9a-f]{32}/[0-9]{1,20}(;o=[0-9])?$` (lowercase hex, one option
/// digit); an all-zero trace id or a zero span id is invalid; `o=0` or no
/// `o=` means not sampled, and any other digit (1-9) means sampled.
#[derive(Debug, Default, Clone)]
pub struct CloudTraceContextPropagator {
    fields: [String; 1],
}

impl CloudTraceContextPropagator {
    pub fn new() -> Self {
        Self {
            fields: [CLOUD_TRACE_CONTEXT.to_owned()],
        }
    }

    /// Parses one header value; `None` if it is malformed or all zeros.
    pub fn parse(value: &str) -> Option<SpanContext> {
        let (trace, rest) = value.trim().split_once('/')?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if trace.len() != 32 || !trace.bytes().all(lower_hex) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let (span, options) = match rest.split_once(';') {
            Some((span, options)) => (span, Some(options)),
            None => (rest, None),
        };
        if span.is_empty() || span.len() > 20 || !span.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let span_id = SpanId::from(span.parse::<u64>().ok()?);
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        let sampled = match options.map(|o| o.strip_prefix("o=").map(str::as_bytes)) {
            None => false,
            Some(Some([b'0'])) => false,
            Some(Some([digit])) if digit.is_ascii_digit() => true,
            Some(_) => return None,
        };
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        };
        Some(SpanContext::new(
            trace_id,
            span_id,
            flags,
            true,
            TraceState::NONE,
        ))
    }

    /// The header value for a span context.
    pub fn format(context: &SpanContext) -> String {
        let trace = u128::from_be_bytes(context.trace_id().to_bytes());
        let span = u64::from_be_bytes(context.span_id().to_bytes());
        Self::format_ids(trace, span, context.is_sampled())
    }

    /// The header value for raw ids (`TRACE_ID/SPAN_ID;o=N`: the trace id
    /// in lowercase hex, the span id in decimal): what a client that makes
    /// its ids itself (trickle-load) sends, written where the service's
    /// parser is.
    pub fn format_ids(trace_id: u128, span_id: u64, sampled: bool) -> String {
        format!("{trace_id:032x}/{span_id};o={}", u8::from(sampled))
    }
}

impl TextMapPropagator for CloudTraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let context = span.span_context();
        if context.is_valid() {
            injector.set(CLOUD_TRACE_CONTEXT, Self::format(context));
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(CLOUD_TRACE_CONTEXT).and_then(Self::parse) {
            Some(context) => cx.with_remote_span_context(context),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&self.fields)
    }
}

/// The parent of a stream's span: `traceparent` when present and valid,
/// else `X-Cloud-Trace-Context`, else none (a new trace).
pub fn extract_parent(headers: &HeaderMap) -> Context {
    let extractor = HeaderExtractor(headers);
    if headers.contains_key(TRACEPARENT) {
        let cx = TraceContextPropagator::new().extract(&extractor);
        if cx.span().span_context().is_valid() {
            return cx;
        }
    }
    CloudTraceContextPropagator::new().extract(&extractor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    const TRACE: &str = "105445aa7843bc8bf206b12000100000";

    #[test]
    fn parses_the_documented_format() {
        let cx = CloudTraceContextPropagator::parse(&format!("{TRACE}/1;o=1")).unwrap();
        assert_eq!(format!("{:032x}", cx.trace_id()), TRACE);
        assert_eq!(cx.span_id(), SpanId::from(1));
        assert!(cx.is_sampled());
        assert!(cx.is_remote());
        let cx = CloudTraceContextPropagator::parse(&format!("{TRACE}/18446744073709551615;o=0"))
            .unwrap();
        assert_eq!(cx.span_id(), SpanId::from(u64::MAX));
        assert!(!cx.is_sampled());
        let cx = CloudTraceContextPropagator::parse(&format!("{TRACE}/42")).unwrap();
        assert!(!cx.is_sampled(), "no options: not sampled");
    }

    /// Sampling as Google's propagator decides it (see the type's docs).
    #[test]
    fn sampling_follows_googles_propagator() {
        let sampled = |options: &str| {
            CloudTraceContextPropagator::parse(&format!("{TRACE}/12{options}"))
                .map(|cx| cx.is_sampled())
        };
        assert_eq!(sampled(""), Some(false), "no o=: not sampled");
        assert_eq!(sampled(";o=0"), Some(false));
        assert_eq!(sampled(";o=1"), Some(true));
        for digit in 2..=9 {
            assert_eq!(sampled(&format!(";o={digit}")), Some(true), "o={digit}");
        }
        assert_eq!(sampled(";o=10"), None, "one digit only");
        // Twenty digits are allowed when the value fits in 64 bits.
        let max = CloudTraceContextPropagator::parse(&format!("{TRACE}/18446744073709551615"));
        assert_eq!(max.map(|cx| cx.span_id()), Some(SpanId::from(u64::MAX)));
        let padded = CloudTraceContextPropagator::parse(&format!("{TRACE}/00000000000000000012"));
        assert_eq!(padded.map(|cx| cx.span_id()), Some(SpanId::from(12)));
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in [
            "",
            "/",
            "nonsense",
            TRACE,
            &format!("{TRACE}/"),
            &format!("{TRACE}/abc;o=1"),
            &format!("{TRACE}/-5;o=1"),
            &format!("{TRACE}/18446744073709551616;o=1"),
            &format!("{TRACE}/0;o=1"),
            &format!("{TRACE}/12;o=10"),
            &format!("{TRACE}/12;o="),
            &format!("{TRACE}/12;o=x"),
            &format!("{TRACE}/12;x=1"),
            &format!("{TRACE}/12;"),
            &format!("{TRACE}/000000000000000000012;o=1"),
            &format!("{}/12;o=1", TRACE.to_uppercase()),
            &format!("{}/12;o=1", "0".repeat(32)),
            &format!("{}/12;o=1", &TRACE[..31]),
            &format!("{}g/12;o=1", &TRACE[..31]),
            &format!("{TRACE}0/12;o=1"),
        ] {
            assert!(CloudTraceContextPropagator::parse(bad).is_none(), "{bad:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn traceparent_wins_and_the_cloud_header_is_the_fallback() {
        let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = extract_parent(&headers(&[
            (TRACEPARENT, w3c),
            (CLOUD_TRACE_CONTEXT, &format!("{TRACE}/1;o=1")),
        ]));
        assert_eq!(
            format!("{:032x}", cx.span().span_context().trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        let cx = extract_parent(&headers(&[(
            CLOUD_TRACE_CONTEXT,
            &format!("{TRACE}/7;o=1"),
        )]));
        assert_eq!(
            format!("{:032x}", cx.span().span_context().trace_id()),
            TRACE
        );
        assert_eq!(cx.span().span_context().span_id(), SpanId::from(7));

        // A broken traceparent falls back to the Cloud header.
        let cx = extract_parent(&headers(&[
            (TRACEPARENT, "garbage"),
            (CLOUD_TRACE_CONTEXT, &format!("{TRACE}/7;o=1")),
        ]));
        assert_eq!(
            format!("{:032x}", cx.span().span_context().trace_id()),
            TRACE
        );

        let cx = extract_parent(&headers(&[(CLOUD_TRACE_CONTEXT, "garbage")]));
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn inject_then_extract_round_trips() {
        let original = CloudTraceContextPropagator::parse(&format!("{TRACE}/99;o=1")).unwrap();
        let cx = Context::new().with_remote_span_context(original.clone());
        let mut carrier = std::collections::HashMap::new();
        CloudTraceContextPropagator::new().inject_context(&cx, &mut carrier);
        assert_eq!(carrier[CLOUD_TRACE_CONTEXT], format!("{TRACE}/99;o=1"));
    }

    proptest! {
        #[test]
        fn any_valid_context_round_trips(trace in 1u128.., span in 1u64.., sampled in any::<bool>()) {
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED };
            let context = SpanContext::new(TraceId::from(trace), SpanId::from(span), flags, true, TraceState::NONE);
            let parsed = CloudTraceContextPropagator::parse(&CloudTraceContextPropagator::format(&context)).unwrap();
            prop_assert_eq!(parsed, context);
        }

        #[test]
        fn arbitrary_values_never_panic(value in ".*") {
            let _ = CloudTraceContextPropagator::parse(&value);
        }
    }
}
