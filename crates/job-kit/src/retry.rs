//! One retry loop for every transient failure of every job: exponential backoff with jitter,
//! bounded by attempts and by total time, honouring a server's `Retry-After`, and giving up at
//! once on a permanent error or a cancellation.
//!
//! The caller classifies each failure ([`Attempt::Transient`] or [`Attempt::Permanent`]): only
//! it knows whether repeating the operation is safe.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Attempts in all, the first one included (1 = no retry).
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts once this much time has passed since the first.
    pub max_elapsed: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl Policy {
    /// The wait before attempt `attempt + 1`: `initial * 2^(attempt-1)` capped at `max_delay`,
    /// then "equal jitter" (half fixed, half random) so that many pods failing together do not
    /// retry in lockstep, yet none retries at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The outcome of one failed attempt, as the caller classifies it.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Worth trying again; `retry_after` is the server's own request, if it made one.
    Transient {
        error: E,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help.
    Permanent(E),
}

impl<E> Attempt<E> {
    pub fn transient(error: E) -> Self {
        Attempt::Transient {
            error,
            retry_after: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    Permanent,
    AttemptsExhausted,
    /// The next wait would have gone past `max_elapsed`.
    OutOfTime,
    Cancelled,
}

/// The last error, and why no further attempt was made.
#[derive(Debug)]
pub struct RetryError<E> {
    /// `None` only when a cancellation cut the first attempt short.
    pub error: Option<E>,
    pub attempts: u32,
    pub reason: GaveUp,
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts;
        let s = if n == 1 { "" } else { "s" };
        let Some(error) = &self.error else {
            return write!(f, "cancelled during attempt {n}");
        };
        match self.reason {
            GaveUp::Permanent => write!(f, "{error} (not retried: permanent)"),
            GaveUp::AttemptsExhausted => write!(f, "{error} (gave up after {n} attempt{s})"),
            GaveUp::OutOfTime => write!(
                f,
                "{error} (gave up after {n} attempt{s}: retry time limit reached)"
            ),
            GaveUp::Cancelled => write!(f, "{error} (cancelled after {n} attempt{s})"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().and_then(|e| e.source())
    }
}

/// Runs `op` (given the attempt number, from 1) until it succeeds or the policy says stop.
/// Each retry is logged at `warn` with `what`, the attempt and the wait. A cancellation stops
/// the wait and also drops an attempt in flight: `op` must be safe to abandon midway.
pub async fn retry<T, E, F, Fut>(
    policy: &Policy,
    cancel: &CancellationToken,
    what: &str,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    E: fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    let mut last_error = None;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            outcome = op(attempt) => outcome,
            () = cancel.cancelled() => {
                return Err(RetryError { error: last_error, attempts: attempt, reason: GaveUp::Cancelled });
            }
        };
        let (error, retry_after) = match outcome {
            Ok(value) => return Ok(value),
            Err(Attempt::Permanent(error)) => {
                return Err(RetryError {
                    error: Some(error),
                    attempts: attempt,
                    reason: GaveUp::Permanent,
                });
            }
            Err(Attempt::Transient { error, retry_after }) => (error, retry_after),
        };
        if attempt >= policy.max_attempts {
            return Err(RetryError {
                error: Some(error),
                attempts: attempt,
                reason: GaveUp::AttemptsExhausted,
            });
        }
        let wait = retry_after.unwrap_or_else(|| policy.backoff(attempt));
        if started.elapsed() + wait > policy.max_elapsed {
            return Err(RetryError {
                error: Some(error),
                attempts: attempt,
                reason: GaveUp::OutOfTime,
            });
        }
        crate::metrics::tally().retried();
        tracing::warn!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            server_asked = retry_after.is_some(),
            "{what} failed, retrying: {error}"
        );
        last_error = Some(error);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => {
                return Err(RetryError { error: last_error, attempts: attempt, reason: GaveUp::Cancelled });
            }
        }
    }
}

/// Parses a `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy(max_attempts: u32) -> Policy {
        Policy {
            max_attempts,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success() {
        let calls = Cell::new(0);
        let result = retry(&policy(5), &CancellationToken::new(), "op", |attempt| {
            calls.set(attempt);
            async move {
                if attempt < 3 {
                    Err(Attempt::transient("flaky"))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let err = retry(&policy(5), &CancellationToken::new(), "op", |_| async {
            Err::<(), _>(Attempt::Permanent("bad request"))
        })
        .await
        .unwrap_err();
        assert_eq!((err.attempts, err.reason), (1, GaveUp::Permanent));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts() {
        let err = retry(&policy(3), &CancellationToken::new(), "op", |_| async {
            Err::<(), _>(Attempt::transient("down"))
        })
        .await
        .unwrap_err();
        assert_eq!((err.attempts, err.reason), (3, GaveUp::AttemptsExhausted));
        assert_eq!(err.to_string(), "down (gave up after 3 attempts)");
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_the_time_limit() {
        let started = Instant::now();
        let result = retry(
            &policy(5),
            &CancellationToken::new(),
            "op",
            |attempt| async move {
                if attempt == 1 {
                    Err(Attempt::Transient {
                        error: "slow down",
                        retry_after: Some(Duration::from_secs(7)),
                    })
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(started.elapsed().as_secs(), 7);

        let err = retry(&policy(5), &CancellationToken::new(), "op", |_| async {
            Err::<(), _>(Attempt::Transient {
                error: "come back tomorrow",
                retry_after: Some(Duration::from_secs(86_400)),
            })
        })
        .await
        .unwrap_err();
        assert_eq!((err.attempts, err.reason), (1, GaveUp::OutOfTime));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_the_wait_and_the_attempt() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let err = retry(&policy(5), &cancel, "op", |attempt| {
            let trigger = trigger.clone();
            async move {
                if attempt == 1 {
                    trigger.cancel();
                    Err::<(), _>(Attempt::transient("down"))
                } else {
                    unreachable!("no attempt after a cancellation")
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!((err.attempts, err.reason), (1, GaveUp::Cancelled));
        assert_eq!(err.to_string(), "down (cancelled after 1 attempt)");

        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = retry(&policy(5), &cancel, "op", |_| {
            std::future::pending::<Result<(), Attempt<&str>>>()
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "cancelled during attempt 1");
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let p = policy(10);
        for attempt in 1..=10 {
            let full = (p.initial_delay * (1 << (attempt - 1))).min(p.max_delay);
            let wait = p.backoff(attempt);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Fri, 27 Nov 2026 12:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
