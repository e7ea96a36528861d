//! Durations in JSON as milliseconds (a number, the unit in the field's
//! name: `interval_ms`). Reports written before schema 2 carried Rust's
//! `{"secs": 0, "nanos": 200000000}`: that form is still read.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// What a duration field may hold in a report.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Millis(f64),
    /// Schema 1: serde's own form of `Duration`.
    Rust {
        secs: u64,
        nanos: u32,
    },
}

impl Written {
    fn duration<E: serde::de::Error>(self) -> Result<Duration, E> {
        match self {
            Self::Millis(ms) if ms.is_finite() && ms >= 0.0 => {
                Ok(Duration::from_secs_f64(ms / 1e3))
            }
            Self::Millis(ms) => Err(E::custom(format!("{ms} is not a duration in milliseconds"))),
            Self::Rust { secs, nanos } => Ok(Duration::new(secs, nanos)),
        }
    }
}

fn millis(d: Duration) -> f64 {
    // To the microsecond, as every figure of the report.
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `Option<Duration>` as milliseconds or `null`.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(millis(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<Written>::deserialize(d)?
            .map(Written::duration)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct T {
        #[serde(
            with = "super::option",
            default,
            rename = "interval_ms",
            alias = "interval"
        )]
        interval: Option<std::time::Duration>,
    }

    #[test]
    fn milliseconds_out_and_both_forms_in() {
        let t = T {
            interval: Some(std::time::Duration::from_millis(200)),
        };
        assert_eq!(
            serde_json::to_string(&t).ok().as_deref(),
            Some(r#"{"interval_ms":200.0}"#)
        );
        let old: T = serde_json::from_str(r#"{"interval":{"secs":0,"nanos":200000000}}"#)
            .unwrap_or(T { interval: None });
        assert_eq!(old, t);
        let new: T = serde_json::from_str(r#"{"interval_ms":200}"#).unwrap_or(T { interval: None });
        assert_eq!(new, t);
        let none: T = serde_json::from_str(r#"{"interval_ms":null}"#).unwrap_or(T {
            interval: Some(std::time::Duration::ZERO),
        });
        assert_eq!(none.interval, None);
        assert!(serde_json::from_str::<T>(r#"{"interval_ms":-1}"#).is_err());
    }
}
