//! One duration syntax for every flag: a number of seconds (`90`, `2.5`) or a
//! humantime duration (`90s`, `30m`, `1h30m`, `24h`, `7d`). Zero is refused: every
//! duration flag means "how long", and none of them makes sense as nothing.

use std::time::Duration;

/// Parses a positive duration.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{s:?} is not a positive duration"));
        }
        Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is too long"))?
    } else {
        humantime::parse_duration(s).map_err(|e| {
            format!("{s:?} is not a duration ({e}); use seconds or e.g. 90s, 30m, 1h30m, 7d")
        })?
    };
    if d.is_zero() {
        return Err(format!("{s:?} is zero; give a positive duration"));
    }
    Ok(d)
}

/// A duration the way it is written on the command line (`1h 30m`, `250ms`).
pub fn show(d: Duration) -> String {
    let rounded = if d >= Duration::from_secs(1) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    };
    humantime::format_duration(rounded).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_units_parse_to_the_same_durations() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn zero_negative_and_garbage_are_refused() {
        for bad in ["0", "0s", "-1", "", "1w2x", "NaN", "inf", "abc"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shown_durations_read_as_humans_write_them() {
        assert_eq!(show(Duration::from_secs(86_400)), "1day");
        assert_eq!(show(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(show(Duration::from_millis(1500)), "1s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
    }
}
