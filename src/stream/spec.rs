//! The validated shape of one stream request: [`StreamSpec`].
//!
//! Built once at the edge from the query string and the `Last-Event-ID`
//! header; every error names the parameter and the accepted range, so the
//! client gets a useful `400`.

use std::time::Duration;

/// Most events one stream may ask for.
pub(crate) const MAX_CHUNKS: u64 = 1_000_000;
/// Longest pause between events, and longest think time before the first.
pub(crate) const MAX_DELAY_MS: u64 = 3_600_000;
/// Largest payload per event: one event is the most a stream ever buffers.
pub(crate) const MAX_SIZE: usize = 65_536;

pub(crate) const DEFAULT_CHUNKS: u64 = 10;
pub(crate) const DEFAULT_INTERVAL_MS: u64 = 1_000;

/// Header a resuming SSE client sends (the browser's `EventSource` does).
pub(crate) const LAST_EVENT_ID_HEADER: &str = "Last-Event-ID";

/// What the client asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Events in the whole stream (ids `0..chunks`).
    pub chunks: u64,
    pub interval: Duration,
    pub first_delay: Duration,
    /// Payload bytes per event.
    pub size: usize,
    /// Each interval varies by up to this much either way.
    pub jitter: Duration,
    /// The last id the client already has; the stream starts after it.
    pub resume_after: Option<u64>,
}

impl Default for StreamSpec {
    fn default() -> Self {
        Self {
            chunks: DEFAULT_CHUNKS,
            interval: Duration::from_millis(DEFAULT_INTERVAL_MS),
            first_delay: Duration::ZERO,
            size: 0,
            jitter: Duration::ZERO,
            resume_after: None,
        }
    }
}

/// A request the service cannot serve as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{parameter} must be {accepted}, got {value:?}")]
    Invalid {
        parameter: &'static str,
        value: String,
        accepted: String,
    },
    #[error("unknown query parameter {0:?}; known: chunks, interval_ms, first_delay_ms, size, jitter_ms, last_event_id")]
    Unknown(String),
    #[error("query parameter {0} given more than once")]
    Repeated(&'static str),
    #[error("the query string is not valid form encoding")]
    MalformedQuery,
}

impl SpecError {
    /// The parameter at fault, if one is.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            SpecError::Invalid { parameter, .. } | SpecError::Repeated(parameter) => {
                Some(parameter)
            }
            SpecError::Unknown(name) => Some(name),
            SpecError::MalformedQuery => None,
        }
    }

    /// The accepted values, where there is a range to name.
    pub fn accepted(&self) -> Option<&str> {
        match self {
            SpecError::Invalid { accepted, .. } => Some(accepted),
            _ => None,
        }
    }
}

const PARAMETERS: [&str; 6] = trickle_protocol::params::ALL;

impl StreamSpec {
    /// Parses the raw query string and the `Last-Event-ID` header value. The
    /// header wins over `last_event_id`: a browser reconnecting keeps the URL
    /// it started with, so the header is the more recent resume point.
    pub fn parse(query: &str, last_event_id: Option<&[u8]>) -> Result<Self, SpecError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| SpecError::MalformedQuery)?;
        let mut raw: [Option<String>; PARAMETERS.len()] = Default::default();
        for (name, value) in pairs {
            let slot = PARAMETERS
                .iter()
                .position(|known| *known == name)
                .ok_or_else(|| SpecError::Unknown(name.clone()))?;
            if raw[slot].replace(value).is_some() {
                return Err(SpecError::Repeated(PARAMETERS[slot]));
            }
        }
        let [chunks, interval_ms, first_delay_ms, size, jitter_ms, last_event_id_query] = raw;

        let chunks = number("chunks", chunks, 0, MAX_CHUNKS)?.unwrap_or(DEFAULT_CHUNKS);
        let interval_ms =
            number("interval_ms", interval_ms, 0, MAX_DELAY_MS)?.unwrap_or(DEFAULT_INTERVAL_MS);
        let first_delay_ms =
            number("first_delay_ms", first_delay_ms, 0, MAX_DELAY_MS)?.unwrap_or(0);
        let size = number("size", size, 0, MAX_SIZE as u64)?.unwrap_or(0);
        let jitter_ms = number("jitter_ms", jitter_ms, 0, interval_ms)?.unwrap_or(0);

        let last_id_max = chunks.saturating_sub(1);
        let resume_after = match last_event_id {
            Some(header) => {
                let text = std::str::from_utf8(header).map_err(|_| SpecError::Invalid {
                    parameter: LAST_EVENT_ID_HEADER,
                    value: String::from_utf8_lossy(header).into_owned(),
                    accepted: resume_range(chunks),
                })?;
                resume_point(LAST_EVENT_ID_HEADER, text.trim(), chunks, last_id_max)?
            }
            None => match last_event_id_query {
                Some(text) => resume_point("last_event_id", &text, chunks, last_id_max)?,
                None => None,
            },
        };

        Ok(Self {
            chunks,
            interval: Duration::from_millis(interval_ms),
            first_delay: Duration::from_millis(first_delay_ms),
            size: usize::try_from(size).unwrap_or(MAX_SIZE),
            jitter: Duration::from_millis(jitter_ms),
            resume_after,
        })
    }

    /// The first id this stream will send.
    pub(crate) fn first_id(&self) -> u64 {
        self.resume_after.map_or(0, |last| last + 1)
    }
}

fn number(
    parameter: &'static str,
    raw: Option<String>,
    min: u64,
    max: u64,
) -> Result<Option<u64>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
        _ => Err(SpecError::Invalid {
            parameter,
            value: raw,
            accepted: format!("an integer in {min}..={max}"),
        }),
    }
}

fn resume_range(chunks: u64) -> String {
    if chunks == 0 {
        "absent: a stream of 0 chunks has no id to resume after".to_owned()
    } else {
        format!("an event id in 0..={}", chunks - 1)
    }
}

/// An empty `Last-Event-ID` means "no event yet" (the SSE spec resets the id
/// to the empty string), so it starts from the beginning.
fn resume_point(
    parameter: &'static str,
    text: &str,
    chunks: u64,
    max: u64,
) -> Result<Option<u64>, SpecError> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(id) if chunks > 0 && id <= max => Ok(Some(id)),
        _ => Err(SpecError::Invalid {
            parameter,
            value: text.to_owned(),
            accepted: resume_range(chunks),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_the_flask_example() {
        let spec = StreamSpec::parse("", None).unwrap();
        assert_eq!(spec, StreamSpec::default());
        assert_eq!(spec.chunks, 10);
        assert_eq!(spec.interval, Duration::from_secs(1));
    }

    #[test]
    fn every_parameter_is_read() {
        let spec = StreamSpec::parse(
            "chunks=5&interval_ms=20&first_delay_ms=7&size=16&jitter_ms=3&last_event_id=2",
            None,
        )
        .unwrap();
        assert_eq!(
            spec,
            StreamSpec {
                chunks: 5,
                interval: Duration::from_millis(20),
                first_delay: Duration::from_millis(7),
                size: 16,
                jitter: Duration::from_millis(3),
                resume_after: Some(2),
            }
        );
        assert_eq!(spec.first_id(), 3);
    }

    #[test]
    fn the_header_wins_over_the_query() {
        let spec = StreamSpec::parse("last_event_id=1", Some(b"4")).unwrap();
        assert_eq!(spec.resume_after, Some(4));
        let spec = StreamSpec::parse("last_event_id=1", Some(b"")).unwrap();
        assert_eq!(spec.resume_after, None);
    }

    #[test]
    fn bad_values_name_the_parameter_and_range() {
        // (query, Last-Event-ID header, parameter named, accepted range named)
        type Case = (
            &'static str,
            Option<&'static [u8]>,
            &'static str,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                "chunks=abc",
                None,
                "chunks",
                Some("an integer in 0..=1000000"),
            ),
            (
                "chunks=1000001",
                None,
                "chunks",
                Some("an integer in 0..=1000000"),
            ),
            (
                "chunks=-1",
                None,
                "chunks",
                Some("an integer in 0..=1000000"),
            ),
            (
                "interval_ms=3600001",
                None,
                "interval_ms",
                Some("an integer in 0..=3600000"),
            ),
            ("size=65537", None, "size", Some("an integer in 0..=65536")),
            (
                "interval_ms=10&jitter_ms=11",
                None,
                "jitter_ms",
                Some("an integer in 0..=10"),
            ),
            (
                "chunks=3&last_event_id=3",
                None,
                "last_event_id",
                Some("an event id in 0..=2"),
            ),
            (
                "last_event_id=x",
                None,
                "last_event_id",
                Some("an event id in 0..=9"),
            ),
            (
                "",
                Some(b"nope"),
                "Last-Event-ID",
                Some("an event id in 0..=9"),
            ),
            (
                "",
                Some(b"\xff"),
                "Last-Event-ID",
                Some("an event id in 0..=9"),
            ),
            ("chunkz=3", None, "chunkz", None),
            ("chunks=1&chunks=2", None, "chunks", None),
        ];
        for (query, header, parameter, accepted) in cases {
            let err = StreamSpec::parse(query, *header).unwrap_err();
            assert_eq!(err.parameter(), Some(*parameter), "{query}");
            assert_eq!(err.accepted(), *accepted, "{query}");
        }
    }

    proptest! {
        #[test]
        fn any_in_range_query_parses_back(
            chunks in 1..=MAX_CHUNKS,
            interval in 0..=MAX_DELAY_MS,
            size in 0..=MAX_SIZE,
            resume in proptest::option::of(any::<u64>()),
        ) {
            let resume = resume.map(|r| r % chunks);
            let mut query = format!("chunks={chunks}&interval_ms={interval}&size={size}");
            if let Some(r) = resume {
                query.push_str(&format!("&last_event_id={r}"));
            }
            let spec = StreamSpec::parse(&query, None).unwrap();
            prop_assert_eq!(spec.chunks, chunks);
            prop_assert_eq!(spec.interval, Duration::from_millis(interval));
            prop_assert_eq!(spec.size, size);
            prop_assert_eq!(spec.resume_after, resume);
        }

        #[test]
        fn arbitrary_queries_never_panic(query in ".*", header in proptest::option::of(any::<Vec<u8>>())) {
            let _ = StreamSpec::parse(&query, header.as_deref());
        }
    }
}
