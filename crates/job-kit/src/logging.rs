//! Logging through `tracing-subscriber`: JSON lines for pods (`LOG_FORMAT=json`), readable text
//! for people. Logs go to stderr so that stdout carries only results (reports, plans, JSON).
//! Every line passes through [`crate::secret::redact`] on its way out.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Installs the global subscriber (and the `log` bridge, for crates that log through `log`).
/// `Err` names what is wrong with the filter; the caller reports it as a config problem.
pub fn init(format: Format, filter: &str) -> Result<(), String> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("not a valid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false);
    let result = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        Format::Text => builder.with_ansi(io::stderr().is_terminal()).try_init(),
    };
    // Already installed (a test that runs two jobs in one process): the first one stays.
    let _ = result;
    Ok(())
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
