//! Time as roll reads and writes it: durations written in files and on the command line
//! (`30s`, `2m`, `500ms`), and Unix times shown as UTC.

use std::time::Duration;

/// The longest duration roll accepts anywhere (ten years): past it a pause, timeout or lock
/// wait is a typing error, and `Duration` arithmetic would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A duration written `60s`, `2m`, `1h`, `500ms` or as bare seconds (`1.5`): never negative,
/// never NaN or infinite, never above [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * mult)
        .filter(|n| n.is_finite() && *n >= 0.0 && *n <= MAX_DURATION.as_secs_f64())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a duration (write `60s`, `2m`, `1h` or `500ms`; at most 10 years)"))
}

/// Seconds as a duration, refusing what `Duration::from_secs_f64` would panic on.
pub fn seconds(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs >= 0.0 && secs <= MAX_DURATION.as_secs_f64() {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("`{secs:?}` is not a number of seconds from 0 to 10 years"))
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_unix_time() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_443_725), "2026-11-23 14:22:05");
    }

    #[test]
    fn durations_in_every_unit_and_out_of_range_ones_refused() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["-1s", "NaN", "inf", "1e300", "18446744073709551616", "5x", ""] {
            assert!(parse_duration(bad).is_err(), "{bad} was accepted");
        }
        assert!(seconds(f64::INFINITY).is_err());
        assert!(seconds(-0.5).is_err());
    }
}
