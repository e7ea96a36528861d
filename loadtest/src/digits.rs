//! Figures in the digits their meaning needs, for the reports and the
//! figures they carry (no `254.71899999999997`).

/// A figure in the digits its meaning needs: at or above 1 (milliseconds,
/// seconds, Unix times, rates), to the thousandth (a microsecond of a
/// millisecond, a millisecond of a second); below 1 (shares, their bounds,
/// CPU cores), to 4 significant digits, so a small bound (0.05% is
/// 0.0004955) is never rounded to 0.
pub fn tidy_number(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    // JSON shows the shortest text of the rounded value.
    if v.abs() >= 1.0 {
        (v * 1e3).round() / 1e3
    } else {
        let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
        (v * scale).round() / scale
    }
}
