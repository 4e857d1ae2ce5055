//! Snowflake's JSON results carry every value as text, some in internal encodings: a DATE is a
//! day count, a TIMESTAMP seconds since the epoch with a fraction, a TIMESTAMP_TZ also an offset
//! in minutes plus 1440, a BOOLEAN `1` or `0`. Callers get readable, stable text instead (ISO
//! dates and RFC 3339 timestamps); everything else is passed on as Snowflake sent it.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// `raw` as text for a column of Snowflake type `type_name`; `Err` says why it is not one.
pub(crate) fn normalize(type_name: &str, raw: String) -> Result<String, String> {
    match type_name {
        "boolean" => match raw.as_str() {
            "1" | "true" | "TRUE" | "True" => Ok("true".into()),
            "0" | "false" | "FALSE" | "False" => Ok("false".into()),
            _ => Err("not a boolean".into()),
        },
        "date" => {
            let days: i64 = raw.parse().map_err(|_| "not a day count".to_owned())?;
            Date::constant(1970, 1, 1)
                .checked_add(Span::new().try_days(days).map_err(|e| e.to_string())?)
                .map(|d| d.to_string())
                .map_err(|e| e.to_string())
        }
        "time" => {
            let nanos = decimal_nanos(&raw)?;
            time_of_day(nanos).map(|t| t.to_string())
        }
        "timestamp_ntz" => {
            let at = timestamp(decimal_nanos(&raw)?)?;
            Ok(wall_clock(at, TimeZone::UTC).to_string())
        }
        "timestamp_ltz" => Ok(timestamp(decimal_nanos(&raw)?)?.to_string()),
        "timestamp_tz" => {
            let (value, offset) = raw
                .split_once(' ')
                .ok_or_else(|| "no time zone offset".to_owned())?;
            let at = timestamp(decimal_nanos(value)?)?;
            let minutes: i32 = offset
                .parse::<i32>()
                .map(|m| m - 1440)
                .map_err(|_| "bad time zone offset".to_owned())?;
            let zone = jiff::tz::Offset::from_seconds(minutes * 60).map_err(|e| e.to_string())?;
            let sign = if minutes < 0 { '-' } else { '+' };
            let (hours, mins) = (minutes.abs() / 60, minutes.abs() % 60);
            Ok(format!(
                "{}{sign}{hours:02}:{mins:02}",
                wall_clock(at, TimeZone::fixed(zone))
            ))
        }
        _ => Ok(raw),
    }
}

/// `"1704164645.123000000"` or `"-1.5"` as nanoseconds.
fn decimal_nanos(text: &str) -> Result<i128, String> {
    let bad = || format!("not a number of seconds: {text:?}");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let negative = whole.starts_with('-');
    let whole: i128 = whole.parse().map_err(|_| bad())?;
    let padded = format!("{fraction:0<9}");
    let fraction: i128 = padded.parse().map_err(|_| bad())?;
    let nanos = whole.abs() * 1_000_000_000 + fraction;
    Ok(if negative { -nanos } else { nanos })
}

fn timestamp(nanos: i128) -> Result<Timestamp, String> {
    Timestamp::from_nanosecond(nanos).map_err(|e| e.to_string())
}

fn wall_clock(at: Timestamp, zone: TimeZone) -> DateTime {
    at.to_zoned(zone).datetime()
}

fn time_of_day(nanos: i128) -> Result<Time, String> {
    const DAY: i128 = 86_400 * 1_000_000_000;
    if !(0..DAY).contains(&nanos) {
        return Err("not a time of day".into());
    }
    let seconds = nanos / 1_000_000_000;
    let part = |n: i128| i8::try_from(n).map_err(|e| e.to_string());
    Time::new(
        part(seconds / 3600)?,
        part(seconds / 60 % 60)?,
        part(seconds % 60)?,
        i32::try_from(nanos % 1_000_000_000).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(type_name: &str, raw: &str) -> String {
        normalize(type_name, raw.to_owned()).unwrap()
    }

    #[test]
    fn internal_encodings_become_readable_text() {
        assert_eq!(n("boolean", "1"), "true");
        assert_eq!(n("boolean", "false"), "false");
        assert_eq!(n("date", "19724"), "2024-01-02");
        assert_eq!(n("date", "-1"), "1969-12-31");
        assert_eq!(n("time", "11045.123000000"), "03:04:05.123");
        assert_eq!(
            n("timestamp_ntz", "1704164645.123000000"),
            "2024-01-02T03:04:05.123"
        );
        assert_eq!(
            n("timestamp_ntz", "1704164645.000000000"),
            "2024-01-02T03:04:05"
        );
        assert_eq!(n("timestamp_ltz", "1704164645.5"), "2024-01-02T03:04:05.5Z");
        assert_eq!(n("timestamp_ltz", "-1.5"), "1969-12-31T23:59:58.5Z");
        assert_eq!(
            n("timestamp_tz", "1704164645.000000000 1500"),
            "2024-01-02T04:04:05+01:00"
        );
        assert_eq!(
            n("timestamp_tz", "1704164645.000000000 1140"),
            "2024-01-01T22:04:05-05:00"
        );
        assert_eq!(
            n("timestamp_tz", "1704164645.000000000 1440"),
            "2024-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn other_types_pass_through() {
        assert_eq!(n("fixed", "12.50"), "12.50");
        assert_eq!(n("text", "LOADED"), "LOADED");
        assert_eq!(n("variant", "{\"a\": 1}"), "{\"a\": 1}");
    }

    #[test]
    fn malformed_values_say_so() {
        assert!(normalize("boolean", "maybe".into()).is_err());
        assert!(normalize("date", "2024-01-02".into()).is_err());
        assert!(normalize("timestamp_ltz", "12:00".into()).is_err());
        assert!(normalize("timestamp_tz", "1704164645.0".into()).is_err());
        assert!(normalize("time", "90000".into()).is_err());
    }
}
