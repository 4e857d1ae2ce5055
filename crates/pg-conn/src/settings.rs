//! The session safety nets: limits the server enforces for us, so that a statement, a lock wait
//! or an idle transaction cannot outlive the job, and a statement whose client was killed is
//! cancelled by the server.

use std::fmt::Write as _;
use std::time::Duration;

/// Session settings applied before the first statement.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub statement_timeout: Option<Duration>,
    pub lock_timeout: Option<Duration>,
    pub idle_in_transaction_timeout: Option<Duration>,
    /// `client_connection_check_interval`, which servers before 14 do not know.
    pub connection_check: Option<Duration>,
}

impl Settings {
    /// The `SET` statements, for one round trip (with `BEGIN`, where there is one).
    pub fn sql(&self) -> String {
        let mut sql = String::new();
        // At least 1 ms: 0 would mean no timeout at all.
        let ms = |value: Duration| value.as_millis().max(1);
        for (name, value) in [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout,
            ),
        ] {
            if let Some(value) = value {
                let _ = write!(sql, "SET {name} = {};", ms(value));
            }
        }
        if let Some(value) = self.connection_check {
            // A SELECT whose WHERE is false evaluates nothing: no error on an older server.
            let _ = write!(
                sql,
                "SELECT set_config('client_connection_check_interval', '{}', false) \
                 WHERE current_setting('server_version_num')::int >= 140000;",
                ms(value)
            );
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_set_statements() {
        assert_eq!(Settings::default().sql(), "");
        let settings = Settings {
            statement_timeout: Some(Duration::from_secs_f64(90.5)),
            lock_timeout: Some(Duration::from_micros(10)),
            idle_in_transaction_timeout: Some(Duration::from_secs(300)),
            connection_check: Some(Duration::from_secs(10)),
        };
        assert_eq!(
            settings.sql(),
            "SET statement_timeout = 90500;SET lock_timeout = 1;\
             SET idle_in_transaction_session_timeout = 300000;\
             SELECT set_config('client_connection_check_interval', '10000', false) \
             WHERE current_setting('server_version_num')::int >= 140000;"
        );
    }
}
