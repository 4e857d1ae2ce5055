//! The exit-code convention shared by every job. Schedulers act on it: Airflow retries a task
//! that exited non-zero, and a data engineer reading a pod's status should know from the number
//! alone whether to fix data, configuration, or nothing.

/// How a job run ended. The numbers are a documented contract (README, `--help`); never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything the job set out to do was done.
    Success,
    /// The job failed: nothing or not everything was done, and it said why.
    Failure,
    /// Bad configuration or usage: a missing or invalid variable, flag or input file. Retrying
    /// will not help until someone changes the configuration.
    Usage,
    /// Partial success: the job finished but some items failed (e.g. some files of a load).
    Partial,
    /// Nothing to do: the input the run expects does not exist (e.g. no files upstream for the
    /// day). Distinct, because missing upstream data is the most common silent failure.
    NoInput,
    /// Stopped by SIGTERM or SIGINT before finishing.
    Interrupted,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::NoInput => 4,
            Exit::Interrupted => 130,
        }
    }

    pub const ALL: [Exit; 6] = [
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::Partial,
        Exit::NoInput,
        Exit::Interrupted,
    ];

    /// The exit a code stands for; `None` for a code outside the convention (a signal's).
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.into_iter().find(|exit| exit.code() == code)
    }

    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "the job failed",
            Exit::Usage => "bad configuration or usage (a variable, flag or input is wrong)",
            Exit::Partial => "partial success: finished, but some items failed",
            Exit::NoInput => "no input: what the run expects to process does not exist",
            Exit::Interrupted => "interrupted by SIGTERM/SIGINT",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// The exit-code table for `--help`.
pub fn table() -> String {
    let mut out = String::from("Exit codes:\n");
    for exit in Exit::ALL {
        out.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
    }
    out
}

/// An error a job returns: it says which exit code it deserves.
pub trait JobError: std::error::Error {
    fn exit(&self) -> Exit {
        Exit::Failure
    }
}

/// The error and its sources on one line, `outer: inner: innermost`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}
