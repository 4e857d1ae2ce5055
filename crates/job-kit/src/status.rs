//! The status file: how a job tells a watcher in the same pod how it ended, without the
//! Kubernetes API. With `JOB_STATUS_FILE` set, the kit writes the exit code and a one-line
//! summary of the final error (the text it logged, already redacted) when the job ends, on every
//! exit path: success, a job error, a configuration error, a second signal, a panic. webhook-alert
//! in `ALERT_WATCH_STATUS_FILES` mode reads it with [`read`] and posts a failure.
//!
//! The format is two lines: the exit code, then the summary (absent on success):
//!
//! ```text
//! 3
//! stage-import: 2 of 9 files failed to load
//! ```
//!
//! The file is written to a temporary file in the same directory (created new, never through a
//! symlink) and renamed over the target, so a reader sees the old file or the whole new one. A
//! target that is a symlink is refused. Failing to write it is a warning, never a job failure.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::secret;

/// The most a status file holds; a longer summary is cut (on a character boundary).
pub const MAX_BYTES: usize = 4096;

/// What a status file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u8,
    /// The final error's one-line summary; `None` on success.
    pub error: Option<String>,
}

/// Where this process writes its status, once `JOB_STATUS_FILE` has been read.
static PATH: OnceLock<PathBuf> = OnceLock::new();

/// Sets where [`record`] writes (the first call wins), and installs a panic hook that records
/// the panic as the job's end.
pub fn set_path(path: PathBuf) {
    if PATH.set(path).is_ok() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The release profile aborts on panic: the container then exits with 128 + SIGABRT.
            let code = if cfg!(panic = "abort") { 134 } else { 101 };
            record(code, Some(&format!("panic: {info}")));
            previous(info);
        }));
    }
}

/// Writes the status file if a path was set; a failure is logged as a warning.
pub fn record(code: u8, error: Option<&str>) {
    let Some(path) = PATH.get() else { return };
    match write(path, code, error) {
        Ok(()) => tracing::debug!(path = %path.display(), code, "status file written"),
        Err(err) => tracing::warn!(
            path = %path.display(),
            "cannot write the status file (the job's own result is unchanged): {err}"
        ),
    }
}

/// The file's text: the code, and the summary redacted, on one line, cut to fit [`MAX_BYTES`].
pub fn contents(code: u8, error: Option<&str>) -> String {
    let mut out = format!("{code}\n");
    let summary = error
        .map(|e| one_line(&secret::redact(e)))
        .unwrap_or_default();
    if !summary.is_empty() {
        let room = MAX_BYTES - out.len() - 1;
        let mut end = summary.len().min(room);
        while !summary.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&summary[..end]);
        out.push('\n');
    }
    out
}

/// Lines joined with `; `, blank ones dropped: a config error lists its problems on lines.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes `path` atomically: a new temporary file beside it (`O_CREAT|O_EXCL|O_NOFOLLOW`),
/// synced, then renamed over it. Refuses a target that is a symlink.
pub fn write(path: &Path, code: u8, error: Option<&str>) -> io::Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other("it is a symlink; refusing to replace it"));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    let temp = dir.join(format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(contents(code, error).as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Reads a status file. `Ok(None)`: there is none (the job never wrote it).
pub fn read(path: &Path) -> io::Result<Option<Status>> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BYTES)]).into_owned(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    parse(&text).map(Some)
}

/// The two lines of a status file.
pub fn parse(text: &str) -> io::Result<Status> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let code = first.parse::<u8>().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "its first line is {:?}, not an exit code",
                first.chars().take(40).collect::<String>()
            ),
        )
    })?;
    let error = lines
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned);
    Ok(Status { code, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_the_code_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status");
        write(&path, 0, None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n");
        assert_eq!(
            read(&path).unwrap(),
            Some(Status {
                code: 0,
                error: None
            })
        );
    }

    #[test]
    fn every_error_exit_is_written_with_its_summary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status");
        for exit in crate::Exit::ALL {
            let error = format!("job: failed with {}", exit.meaning());
            write(&path, exit.code(), Some(&error)).unwrap();
            let status = read(&path).unwrap().unwrap();
            assert_eq!(status.code, exit.code());
            assert_eq!(status.error.as_deref(), Some(error.as_str()));
        }
    }

    #[test]
    fn the_summary_is_one_redacted_line() {
        crate::secret::register("st4tus-s3cret");
        let text = contents(
            2,
            Some("job: invalid configuration (2 problems)\n  - A: is st4tus-s3cret\n\n  - B: bad"),
        );
        assert_eq!(
            text,
            "2\njob: invalid configuration (2 problems); - A: is ***; - B: bad\n"
        );
    }

    #[test]
    fn the_file_is_bounded_and_cut_on_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status");
        let error = "é🦀x".repeat(5000);
        write(&path, 1, Some(&error)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.len() <= MAX_BYTES, "{}", text.len());
        assert!(text.len() > MAX_BYTES - 8, "{}", text.len());
        let status = parse(&text).unwrap();
        assert!(error.starts_with(status.error.as_deref().unwrap()));
    }

    #[test]
    fn it_replaces_the_file_atomically_leaving_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status");
        fs::write(&path, "old").unwrap();
        // A reader holding the old file keeps reading the old one: the new one is renamed in.
        let before = fs::File::open(&path).unwrap();
        write(&path, 3, Some("job: partial")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "3\njob: partial\n");
        let mut old = String::new();
        io::Read::read_to_string(&mut &before, &mut old).unwrap();
        assert_eq!(old, "old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["job.status"]);
    }

    #[test]
    fn a_symlink_target_is_refused_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("job.status");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = write(&path, 1, Some("x")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temp file left"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent/job.status");
        assert!(write(&path, 0, None).is_err());
    }

    #[test]
    fn reading_tells_missing_from_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status");
        assert_eq!(read(&path).unwrap(), None);
        fs::write(&path, "").unwrap();
        assert!(read(&path).is_err());
        fs::write(&path, "oops\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("\"oops\""), "{err}");
        fs::write(&path, "130\n\njob: interrupted\n").unwrap();
        assert_eq!(
            read(&path).unwrap().unwrap().error.as_deref(),
            Some("job: interrupted")
        );
    }
}
