//! What happened to every file: the per-file outcome COPY INTO reports (the original job ignored
//! it), a day's outcome, the run's JSON report, and the exit code they add up to.

use serde::Serialize;

use job_kit::Exit;

/// COPY INTO's per-file status, with Snowflake's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileStatus {
    Loaded,
    /// Loaded before (COPY's load metadata): nothing loaded twice.
    LoadSkipped,
    /// Some rows were rejected (`ON_ERROR='CONTINUE'`); the rest loaded.
    PartiallyLoaded,
    /// Loaded before, and rewritten since (another ETag or checksum under the same name): this
    /// load's rows replaced the earlier load's (`rows_replaced`) in one transaction. Rows it
    /// rejected count as for PARTIALLY_LOADED.
    Reloaded,
    LoadFailed,
    /// No data row: 0 bytes, an empty gzip, or header lines only. A warning, not a failure; a
    /// day whose files are all empty is a day without data (exit 4 unless empty days are
    /// allowed).
    Empty,
    /// Listed, but COPY's result does not mention it and COPY_HISTORY shows no earlier load:
    /// it vanished from the stage, or Snowflake could not tell its load status. Never taken
    /// as loaded: it fails.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOutcome {
    pub file: String,
    pub status: FileStatus,
    pub rows_parsed: u64,
    pub rows_loaded: u64,
    /// A RELOADED file's rows from its earlier load, deleted by this one.
    pub rows_replaced: u64,
    pub errors_seen: u64,
    pub first_error: Option<String>,
    pub first_error_line: Option<u64>,
}

impl FileOutcome {
    pub fn skipped(file: &str) -> FileOutcome {
        FileOutcome {
            file: file.to_owned(),
            status: FileStatus::LoadSkipped,
            rows_parsed: 0,
            rows_loaded: 0,
            rows_replaced: 0,
            errors_seen: 0,
            first_error: None,
            first_error_line: None,
        }
    }

    pub fn empty(file: &str) -> FileOutcome {
        FileOutcome {
            status: FileStatus::Empty,
            ..FileOutcome::skipped(file)
        }
    }

    /// A file that was not read at all, with why.
    pub fn refused(file: &str, why: String) -> FileOutcome {
        FileOutcome {
            status: FileStatus::LoadFailed,
            first_error: Some(why),
            ..FileOutcome::skipped(file)
        }
    }

    /// A file that could not be loaded: nothing of it was, for this one-line reason.
    pub fn load_failed(file: &str, message: &str) -> FileOutcome {
        FileOutcome {
            status: FileStatus::LoadFailed,
            errors_seen: 1,
            first_error: Some(message.lines().next().unwrap_or(message).to_owned()),
            ..FileOutcome::skipped(file)
        }
    }

    /// A file COPY's result left out, until COPY_HISTORY says what became of it.
    pub fn unknown(file: &str, why: String) -> FileOutcome {
        FileOutcome {
            status: FileStatus::Unknown,
            first_error: Some(why),
            ..FileOutcome::skipped(file)
        }
    }

    /// Failed, for the exit code: nothing loaded, or more rejected rows than allowed.
    pub fn failed(&self, max_errors_per_file: u64) -> bool {
        match self.status {
            FileStatus::LoadFailed | FileStatus::Unknown => true,
            FileStatus::PartiallyLoaded | FileStatus::Reloaded => {
                self.errors_seen > max_errors_per_file
            }
            FileStatus::Loaded | FileStatus::LoadSkipped | FileStatus::Empty => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadOutcome {
    /// Files matched and every one loaded (or was loaded before).
    Loaded,
    /// No file matched: upstream data is missing (or late).
    NoFiles,
    /// Files matched, and none holds a data row.
    Empty,
    /// Some files failed or were partly loaded beyond the threshold.
    Partial,
    /// Every file failed.
    Failed,
}

/// One source, one day, one location.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub date: String,
    pub table: String,
    pub stage: String,
    pub path: String,
    pub pattern: String,
    pub files_found: usize,
    /// A day before the run's first named day, loaded again for late files: without files,
    /// or with empty ones only, it is a warning and leaves the exit code alone.
    pub lookback: bool,
    pub reload: bool,
    pub outcome: LoadOutcome,
    pub rows_loaded: u64,
    pub files: Vec<FileOutcome>,
    /// With `--reload`: files the table holds rows of for this load that are no longer in the
    /// stage. Their rows are kept (a file withdrawn upstream is deleted by hand).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_gone: Vec<String>,
    pub seconds: f64,
}

impl LoadReport {
    pub fn outcome_of(files: &[FileOutcome], max_errors_per_file: u64) -> LoadOutcome {
        let failed = files
            .iter()
            .filter(|f| f.failed(max_errors_per_file))
            .count();
        if files.is_empty() {
            LoadOutcome::NoFiles
        } else if files.iter().all(|f| f.status == FileStatus::Empty) {
            LoadOutcome::Empty
        } else if failed == 0 {
            LoadOutcome::Loaded
        } else if failed == files.len() {
            LoadOutcome::Failed
        } else {
            LoadOutcome::Partial
        }
    }
}

/// The JSON report printed on stdout at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub warehouse: String,
    pub loads: Vec<LoadReport>,
    pub files_loaded: usize,
    pub files_skipped: usize,
    pub files_failed: usize,
    pub rows_loaded: u64,
    pub exit_code: u8,
}

impl RunReport {
    pub fn new(
        warehouse: &str,
        loads: Vec<LoadReport>,
        allow_empty: bool,
        max_errors: u64,
    ) -> RunReport {
        let files = || loads.iter().flat_map(|l| &l.files);
        let exit = exit_for(&loads, allow_empty);
        RunReport {
            warehouse: warehouse.to_owned(),
            // A file over the error limit is failed, not also loaded.
            files_loaded: files()
                .filter(|f| {
                    matches!(
                        f.status,
                        FileStatus::Loaded | FileStatus::PartiallyLoaded | FileStatus::Reloaded
                    ) && !f.failed(max_errors)
                })
                .count(),
            files_skipped: files()
                .filter(|f| f.status == FileStatus::LoadSkipped)
                .count(),
            files_failed: files().filter(|f| f.failed(max_errors)).count(),
            rows_loaded: loads.iter().map(|l| l.rows_loaded).sum(),
            exit_code: exit.code(),
            loads,
        }
    }

    pub fn exit(&self) -> Exit {
        Exit::ALL
            .into_iter()
            .find(|e| e.code() == self.exit_code)
            .unwrap_or(Exit::Failure)
    }
}

/// The worst outcome decides: a failed load, then a partial one, then a day without files
/// (a named day: a lookback day without data is only a warning).
fn exit_for(loads: &[LoadReport], allow_empty: bool) -> Exit {
    let any = |outcome| loads.iter().any(|l| l.outcome == outcome);
    let named_day_without_data = loads
        .iter()
        .any(|l| !l.lookback && matches!(l.outcome, LoadOutcome::NoFiles | LoadOutcome::Empty));
    if any(LoadOutcome::Failed) {
        if loads.iter().all(|l| l.outcome == LoadOutcome::Failed) {
            Exit::Failure
        } else {
            Exit::Partial
        }
    } else if any(LoadOutcome::Partial) {
        Exit::Partial
    } else if named_day_without_data && !allow_empty {
        Exit::NoInput
    } else {
        Exit::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(status: FileStatus, errors: u64) -> FileOutcome {
        FileOutcome {
            file: "f".into(),
            status,
            rows_parsed: 10,
            rows_loaded: 10 - errors,
            rows_replaced: 0,
            errors_seen: errors,
            first_error: None,
            first_error_line: None,
        }
    }

    fn load(outcome: LoadOutcome) -> LoadReport {
        LoadReport {
            source: "s".into(),
            location: None,
            date: "2026-01-01".into(),
            table: "t".into(),
            stage: "st".into(),
            path: "p".into(),
            pattern: ".*".into(),
            files_found: 0,
            lookback: false,
            reload: false,
            outcome,
            rows_loaded: 0,
            files: vec![],
            files_gone: Vec::new(),
            seconds: 0.0,
        }
    }

    #[test]
    fn outcome_of_files() {
        use FileStatus::*;
        assert_eq!(LoadReport::outcome_of(&[], 0), LoadOutcome::NoFiles);
        assert_eq!(
            LoadReport::outcome_of(&[file(Loaded, 0), file(LoadSkipped, 0)], 0),
            LoadOutcome::Loaded
        );
        assert_eq!(
            LoadReport::outcome_of(&[file(Loaded, 0), file(PartiallyLoaded, 2)], 0),
            LoadOutcome::Partial
        );
        assert_eq!(
            LoadReport::outcome_of(&[file(Loaded, 0), file(PartiallyLoaded, 2)], 2),
            LoadOutcome::Loaded
        );
        assert_eq!(
            LoadReport::outcome_of(&[file(LoadFailed, 10)], 100),
            LoadOutcome::Failed
        );
        let empty = FileOutcome::empty("e");
        assert_eq!(
            LoadReport::outcome_of(&[empty.clone(), empty.clone()], 0),
            LoadOutcome::Empty
        );
        assert_eq!(
            LoadReport::outcome_of(&[empty, file(Loaded, 0)], 0),
            LoadOutcome::Loaded
        );
    }

    #[test]
    fn a_file_over_the_error_limit_is_counted_as_failed_only() {
        use FileStatus::*;
        let mut partial = load(LoadOutcome::Partial);
        partial.files = vec![
            file(Loaded, 0),
            file(PartiallyLoaded, 2),
            file(PartiallyLoaded, 1),
            file(Reloaded, 0),
            file(Reloaded, 2),
        ];
        let report = RunReport::new("duckdb", vec![partial], false, 1);
        assert_eq!((report.files_loaded, report.files_failed), (3, 2));
    }

    #[test]
    fn the_worst_outcome_sets_the_exit_code() {
        use LoadOutcome::*;
        let exit = |outcomes: &[LoadOutcome], allow_empty| {
            let loads = outcomes.iter().map(|o| load(*o)).collect::<Vec<_>>();
            RunReport::new("duckdb", loads, allow_empty, 0).exit()
        };
        assert_eq!(exit(&[Loaded, Loaded], false), Exit::Success);
        assert_eq!(exit(&[Loaded, NoFiles], false), Exit::NoInput);
        assert_eq!(exit(&[Loaded, NoFiles], true), Exit::Success);
        assert_eq!(exit(&[Loaded, Empty], false), Exit::NoInput);
        assert_eq!(exit(&[Empty], true), Exit::Success);
        // A lookback day without data is a warning; the day that ended still fails.
        let with_lookback = |first: LoadOutcome, last: LoadOutcome| {
            let mut early = load(first);
            early.lookback = true;
            RunReport::new("duckdb", vec![early, load(last)], false, 0).exit()
        };
        assert_eq!(with_lookback(NoFiles, Loaded), Exit::Success);
        assert_eq!(with_lookback(Empty, Loaded), Exit::Success);
        assert_eq!(with_lookback(Loaded, NoFiles), Exit::NoInput);
        assert_eq!(with_lookback(Failed, Loaded), Exit::Partial);
        assert_eq!(exit(&[Partial, NoFiles], false), Exit::Partial);
        assert_eq!(exit(&[Failed, Loaded], false), Exit::Partial);
        assert_eq!(exit(&[Failed, Failed], false), Exit::Failure);
    }
}
