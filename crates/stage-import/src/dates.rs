//! Which days a run loads: one day (by default yesterday in UTC) or a backfill range, in order,
//! each preceded by the lookback: the days before the first one, loaded again so that files
//! that arrived late are not lost (files loaded before are skipped).

use jiff::civil::Date;

/// At most this many days in one run: a typo in a year should not start a decade of loads.
pub const MAX_DAYS: i32 = 3660;

pub fn days(
    date: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    lookback_days: u32,
    today: Date,
) -> Result<Vec<Date>, String> {
    let (first, last) = first_and_last(date, from, to, today)?;
    let first = first
        .checked_sub(jiff::Span::new().days(i64::from(lookback_days)))
        .map_err(|e| {
            format!("STAGE_IMPORT_LOOKBACK_DAYS: {lookback_days} days before {first}: {e}")
        })?;
    let span = (last - first).get_days() + 1;
    if span > MAX_DAYS {
        return Err(format!(
            "{first}..{last} is {span} days; at most {MAX_DAYS} in one run"
        ));
    }
    Ok(first
        .series(jiff::Span::new().days(1))
        .take(span as usize)
        .collect())
}

/// The first and last day the variables name, before the lookback.
fn first_and_last(
    date: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    today: Date,
) -> Result<(Date, Date), String> {
    let parse = |var: &str, text: &str| {
        text.parse::<Date>()
            .map_err(|e| format!("{var}: {text:?} is not a date YYYY-MM-DD: {e}"))
    };
    match (date, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(
            "STAGE_IMPORT_DATE (--date) and STAGE_IMPORT_FROM/TO (--from/--to) exclude each other"
                .to_owned(),
        ),
        (Some(day), None, None) => {
            let day = parse("STAGE_IMPORT_DATE", day)?;
            Ok((day, day))
        }
        (None, Some(from), Some(to)) => {
            let from = parse("STAGE_IMPORT_FROM", from)?;
            let to = parse("STAGE_IMPORT_TO", to)?;
            if from > to {
                return Err(format!(
                    "STAGE_IMPORT_FROM {from} is after STAGE_IMPORT_TO {to}"
                ));
            }
            Ok((from, to))
        }
        (None, Some(_), None) | (None, None, Some(_)) => Err(
            "a backfill needs both STAGE_IMPORT_FROM (--from) and STAGE_IMPORT_TO (--to)"
                .to_owned(),
        ),
        (None, None, None) => {
            let yesterday = today.yesterday().map_err(|e| e.to_string())?;
            Ok((yesterday, yesterday))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const TODAY: Date = date(2026, 3, 1);

    #[test]
    fn defaults_to_yesterday() {
        assert_eq!(
            days(None, None, None, 0, TODAY).unwrap(),
            [date(2026, 2, 28)]
        );
    }

    #[test]
    fn a_range_is_every_day_in_order_inclusive() {
        let range = days(None, Some("2024-02-27"), Some("2024-03-01"), 0, TODAY).unwrap();
        assert_eq!(
            range,
            [
                date(2024, 2, 27),
                date(2024, 2, 28),
                date(2024, 2, 29),
                date(2024, 3, 1)
            ]
        );
    }

    #[test]
    fn the_lookback_loads_the_days_before_the_first_again() {
        assert_eq!(
            days(Some("2026-11-01"), None, None, 2, TODAY).unwrap(),
            [date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)]
        );
        assert_eq!(
            days(None, None, None, 1, TODAY).unwrap(),
            [date(2026, 2, 27), date(2026, 2, 28)]
        );
        assert_eq!(
            days(None, Some("2026-01-10"), Some("2026-01-11"), 1, TODAY).unwrap(),
            [date(2026, 1, 9), date(2026, 1, 10), date(2026, 1, 11)]
        );
        // The lookback counts towards the limit on days in one run.
        assert!(
            days(None, Some("2016-03-04"), Some("2026-03-01"), 62, TODAY)
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn bad_input_says_which_variable() {
        assert!(
            days(Some("2026-13-01"), None, None, 0, TODAY)
                .unwrap_err()
                .starts_with("STAGE_IMPORT_DATE: \"2026-13-01\"")
        );
        assert!(
            days(None, Some("2026-03-02"), Some("2026-03-01"), 0, TODAY)
                .unwrap_err()
                .contains("is after")
        );
        assert!(
            days(None, Some("2026-03-02"), None, 0, TODAY)
                .unwrap_err()
                .contains("needs both")
        );
        assert!(
            days(Some("2026-03-02"), Some("2026-03-02"), None, 0, TODAY)
                .unwrap_err()
                .contains("exclude each other")
        );
        assert!(
            days(None, Some("1000-01-01"), Some("2026-01-01"), 0, TODAY)
                .unwrap_err()
                .contains("at most")
        );
    }
}
