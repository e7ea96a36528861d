//! Conversations by turn: the TTFT and ITL of every request that was a
//! session's turn N, so a report shows how the wait for the first token
//! grows as the history does (`llm_turns` in the JSON data, `turns` in its
//! summary, a table in Markdown and HTML: `summary::turn_rows`).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::judge::confidence::quantile_bounds;
use crate::measure::histogram::{new_histogram, quantile, record};
use crate::measure::{add_exactly, MergeError};

/// Confidence of the bounds the summary gives each turn's quantiles.
pub const CONFIDENCE: f64 = 0.95;

/// One turn's distributions: TTFT of its completed requests, and every
/// gap between their output chunks (ITL).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub ttft: Histogram<u64>,
    pub itl: Histogram<u64>,
}

impl Default for Turn {
    fn default() -> Self {
        Self {
            ttft: new_histogram(),
            itl: new_histogram(),
        }
    }
}

/// Turns by their number (1: a session's first request).
pub type Turns = BTreeMap<u32, Turn>;

/// Records a completed turn's TTFT (`turn` counts from 0, as sent).
pub fn record_ttft(turns: &mut Turns, turn: u32, ttft: Duration) {
    record(
        &mut turns.entry(turn.saturating_add(1)).or_default().ttft,
        ttft,
    );
}

/// Records gaps between output chunks of turn `turn` (from 0).
pub fn record_itl(turns: &mut Turns, turn: u32, gaps: impl Iterator<Item = Duration>) {
    let itl = &mut turns.entry(turn.saturating_add(1)).or_default().itl;
    for gap in gaps {
        record(itl, gap);
    }
}

/// Adds `other`'s turns to `mine`, exactly.
pub fn merge(mine: &mut Turns, other: &Turns) -> Result<(), MergeError> {
    for (n, theirs) in other {
        let turn = mine.entry(*n).or_default();
        add_exactly(&mut turn.ttft, &theirs.ttft, "llm_turns ttft")?;
        add_exactly(&mut turn.itl, &theirs.itl, "llm_turns itl")?;
    }
    Ok(())
}

/// A quantile with its one-sided bounds at [`CONFIDENCE`], in
/// milliseconds (a bound is null where the samples are too few for it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub ms: f64,
    pub ci_low_ms: Option<f64>,
    pub ci_high_ms: Option<f64>,
}

/// One distribution of one turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub count: u64,
    pub p50: Quantile,
    pub p99: Quantile,
}

/// One turn as the summary says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnSummary {
    /// 1: a session's first request.
    pub turn: u32,
    /// TTFT of its completed requests (count: the requests).
    pub ttft: Figures,
    /// Gaps between output chunks (count: the gaps).
    pub itl: Figures,
}

fn figures(h: &Histogram<u64>) -> Figures {
    let ms = |d: Duration| crate::measure::histogram::round_ms(d.as_secs_f64() * 1e3);
    let at = |q: f64| {
        if h.is_empty() {
            return Quantile::default();
        }
        let (low, high) = quantile_bounds(h, q, CONFIDENCE);
        Quantile {
            ms: ms(quantile(h, q)),
            ci_low_ms: low.map(ms),
            ci_high_ms: high.map(ms),
        }
    };
    Figures {
        count: h.len(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Every turn's figures, in order.
pub fn summary(turns: &Turns) -> Vec<TurnSummary> {
    turns
        .iter()
        .map(|(n, t)| TurnSummary {
            turn: *n,
            ttft: figures(&t.ttft),
            itl: figures(&t.itl),
        })
        .collect()
}

/// `llm_turns` in the JSON data: each turn's histograms in base64 (V2
/// deflate, as the report's other histograms).
pub mod serde_turns {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Encoded {
        ttft: String,
        itl: String,
    }

    fn encode(h: &Histogram<u64>) -> Result<String, String> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| e.to_string())?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    fn decode(text: &str) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| e.to_string())?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| e.to_string())
    }

    pub fn serialize<S: serde::Serializer>(turns: &Turns, s: S) -> Result<S::Ok, S::Error> {
        let mut encoded = BTreeMap::new();
        for (n, t) in turns {
            let turn = Encoded {
                ttft: encode(&t.ttft).map_err(serde::ser::Error::custom)?,
                itl: encode(&t.itl).map_err(serde::ser::Error::custom)?,
            };
            encoded.insert(n.to_string(), turn);
        }
        s.collect_map(encoded)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Turns, D::Error> {
        let encoded: BTreeMap<String, Encoded> = Deserialize::deserialize(d)?;
        let mut turns = Turns::new();
        for (n, t) in encoded {
            let number: u32 = n.parse().map_err(|_| {
                serde::de::Error::custom(format!("llm_turns: {n:?} is not a turn number"))
            })?;
            let turn = Turn {
                ttft: decode(&t.ttft).map_err(serde::de::Error::custom)?,
                itl: decode(&t.itl).map_err(serde::de::Error::custom)?,
            };
            turns.insert(number, turn);
        }
        Ok(turns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn turns_are_numbered_from_one_and_merge_exactly() {
        let mut a = Turns::new();
        for i in 0..200 {
            record_ttft(&mut a, 0, ms(100 + i % 10));
            record_ttft(&mut a, 1, ms(300 + i % 10));
        }
        record_itl(&mut a, 1, [ms(20), ms(22)].into_iter());
        let mut b = Turns::new();
        record_ttft(&mut b, 2, ms(500));
        merge(&mut b, &a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        let s = summary(&b);
        assert_eq!(
            (s[0].turn, s[0].ttft.count, s[1].itl.count, s[2].ttft.count),
            (1, 200, 2, 1)
        );
        assert!((100.0..=110.0).contains(&s[0].ttft.p50.ms), "{:?}", s[0]);
        assert!((300.0..=310.0).contains(&s[1].ttft.p50.ms), "{:?}", s[1]);
        // 200 samples bound a median both ways, not a p99 from above.
        let p50 = s[0].ttft.p50;
        assert!(
            p50.ci_low_ms.is_some_and(|l| l <= p50.ms)
                && p50.ci_high_ms.is_some_and(|h| h >= p50.ms)
        );
        assert_eq!(s[0].ttft.p99.ci_high_ms, None);
    }

    #[test]
    fn turns_survive_the_json_round_trip() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            #[serde(with = "serde_turns")]
            turns: Turns,
        }
        let mut turns = Turns::new();
        record_ttft(&mut turns, 0, ms(5));
        record_itl(&mut turns, 3, [ms(1)].into_iter());
        let text = serde_json::to_string(&Holder {
            turns: turns.clone(),
        })
        .unwrap_or_default();
        let back: Holder = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back.turns, turns);
        assert!(
            serde_json::from_str::<Holder>(r#"{"turns": {"x": {"ttft": "", "itl": ""}}}"#).is_err()
        );
    }
}
