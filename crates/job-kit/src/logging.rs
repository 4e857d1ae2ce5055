//! Logging through `tracing-subscriber`: JSON lines for pods (`LOG_FORMAT=json`), readable text
//! for people. Logs go to stderr so that stdout carries only results (reports, plans, JSON).
//! Every line passes through [`crate::secret::redact`] on its way out, and carries the run's
//! context ([`crate::run`]): in JSON as fields of its own, in text at the end of the line when a
//! scheduler started the run.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Installs the global subscriber (and the `log` bridge, for crates that log through `log`).
/// `run_fields` go on every line. `Err` names what is wrong with the filter; the caller reports
/// it as a config problem.
pub fn init(format: Format, filter: &str, run_fields: &Map<String, Value>) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("not a valid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false);
    let result = match format {
        Format::Json => {
            let appended = RunFields::json(run_fields);
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .map_event_format(|inner| appended.around(inner))
                .try_init()
        }
        // Text is for people at a terminal: the run's own id is noise there, who started it is not.
        Format::Text => match RunFields::text(run_fields) {
            Some(appended) => builder
                .with_ansi(false)
                .map_event_format(|inner| appended.around(inner))
                .try_init(),
            None => builder.with_ansi(io::stderr().is_terminal()).try_init(),
        },
    };
    // Already installed (a test that runs two jobs in one process): the first one stays.
    let _ = result;
    Ok(())
}

/// Run context appended to each line the inner formatter writes, before its newline.
#[derive(Clone)]
struct RunFields {
    /// JSON: `,"key":value,...`, inserted before the object's closing brace.
    json: bool,
    appended: String,
}

impl RunFields {
    fn json(fields: &Map<String, Value>) -> Self {
        let mut appended = String::new();
        for (key, value) in fields {
            let _ = write!(appended, ",{}:{value}", Value::from(key.as_str()));
        }
        RunFields {
            json: true,
            appended,
        }
    }

    fn text(fields: &Map<String, Value>) -> Option<Self> {
        let mut appended = String::new();
        for (key, value) in fields.iter().filter(|(key, _)| *key != "job_run_id") {
            match value {
                Value::String(text) => write!(appended, " {key}={text}"),
                other => write!(appended, " {key}={other}"),
            }
            .ok()?;
        }
        (!appended.is_empty()).then_some(RunFields {
            json: false,
            appended,
        })
    }

    fn around<F>(self, inner: F) -> WithRunFields<F> {
        WithRunFields { inner, run: self }
    }
}

struct WithRunFields<F> {
    inner: F,
    run: RunFields,
}

impl<S, N, F> FormatEvent<S, N> for WithRunFields<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(context, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        let newline = &line[body.len()..];
        let body = match (self.run.json, body.strip_suffix('}')) {
            (true, Some(object)) => {
                return write!(writer, "{object}{}}}{newline}", self.run.appended);
            }
            _ => body,
        };
        write!(writer, "{body}{}{newline}", self.run.appended)
    }
}

struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter
    }
}

/// The fmt layer hands over each event whole in one `write`, so a secret cannot straddle two
/// calls.
struct RedactingWriter;

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr()
            .lock()
            .write_all(secret::redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
