//! A duration or a range of two, as flags take them (`2s`, `500ms-5s`):
//! `--cancel-after` and `--turn-delay`.

use std::time::Duration;

/// A duration or a range of two (`2s`, `500ms-5s`), low end first.
pub(crate) fn parse(text: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let duration = |part: &str| {
        humantime::parse_duration(part.trim()).map_err(|e| {
            format!("{text:?}: {part:?} is not a duration ({e}); expected 2s or 500ms-5s")
        })
    };
    let (lo, hi) = (duration(lo)?, duration(hi)?);
    if lo > hi {
        return Err(format!(
            "{text:?}: the range's low end is above its high end"
        ));
    }
    Ok((lo, hi))
}

/// A range as [`parse`] reads it: one duration when both ends agree.
pub(crate) fn write(
    f: &mut std::fmt::Formatter<'_>,
    lo: Duration,
    hi: Duration,
) -> std::fmt::Result {
    let low = humantime::format_duration(lo);
    if lo == hi {
        write!(f, "{low}")
    } else {
        write!(f, "{low}-{}", humantime::format_duration(hi))
    }
}
