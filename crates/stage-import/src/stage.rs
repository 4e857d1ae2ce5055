//! Where a source's files are: a stage's URL (an S3 prefix or a local directory) and the files
//! below it. Listing is the preflight: before any COPY, the job knows which files a day has.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A stage's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageUrl {
    /// `s3://bucket/prefix`
    S3 { bucket: String, prefix: String },
    /// `file:///absolute/dir`, or a plain path (relative to the working directory).
    Local(PathBuf),
}

impl StageUrl {
    pub fn parse(text: &str) -> Result<StageUrl, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{text:?} names no bucket"));
            }
            let mut prefix = prefix.trim_matches('/').to_owned();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            return Ok(StageUrl::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        if let Some(rest) = text.strip_prefix("file://") {
            return Ok(StageUrl::Local(PathBuf::from(rest)));
        }
        if text.contains("://") {
            return Err(format!(
                "{text:?}: only s3:// and file:// stages are supported"
            ));
        }
        Ok(StageUrl::Local(PathBuf::from(text)))
    }

    /// The URL as Snowflake's CREATE STAGE takes it.
    pub fn url(&self) -> String {
        match self {
            StageUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            StageUrl::Local(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                format!(
                    "file://{}/",
                    absolute.display().to_string().trim_end_matches('/')
                )
            }
        }
    }
}

/// A file below a stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StagedFile {
    /// The path below the stage URL, `/`-separated (what COPY reports as the file).
    pub path: String,
    pub size: u64,
    /// Changes when the content does (S3's ETag, a local file's mtime): a changed file is new.
    pub tag: String,
}

/// The files below `root` whose path starts with `prefix` (S3 prefix semantics: `2026-11-26`
/// covers `2026-11-26/a.csv` and `2026-11-26.csv`), sorted by path.
pub fn list_local(root: &Path, prefix: &str) -> std::io::Result<Vec<StagedFile>> {
    let prefix = prefix.trim_start_matches('/');
    // Walk only below the deepest directory the prefix names.
    let start = match prefix.rfind('/') {
        Some(slash) => root.join(&prefix[..slash]),
        None => root.to_path_buf(),
    };
    let mut files = Vec::new();
    if !root.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("stage directory {} does not exist", root.display()),
        ));
    }
    if start.is_dir() {
        walk(root, &start, prefix, &mut files)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, prefix: &str, files: &mut Vec<StagedFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            // Descend only where the prefix can still match.
            let as_dir = format!("{relative}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, files)?;
            }
        } else if file_type.is_file() && relative.starts_with(prefix) {
            let meta = entry.metadata()?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            files.push(StagedFile {
                path: relative,
                size: meta.len(),
                tag: format!("mtime:{mtime}"),
            });
        }
    }
    Ok(())
}

/// The files whose whole path matches `pattern`, as COPY's PATTERN matches.
pub fn matching(files: Vec<StagedFile>, pattern: &regex::Regex) -> Vec<StagedFile> {
    files
        .into_iter()
        .filter(|f| pattern.is_match(&f.path))
        .collect()
}

/// Why `path` (an S3 key below the stage) is not a plain relative path, if it is not: every
/// `/`-separated part must be an ordinary file name, so that the key cannot name a place
/// outside the folder the embedded warehouse downloads into.
pub fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("the key names no file");
    }
    for part in path.split('/') {
        match part {
            "" => {
                return Some("the key has an empty path part (a leading, trailing or double `/`)");
            }
            "." | ".." => return Some("the key has a `.` or `..` path part"),
            _ if part.contains('\\') => return Some("the key has a `\\` in a path part"),
            _ if part.chars().any(char::is_control) => {
                return Some("the key has a control character");
            }
            _ => {}
        }
    }
    None
}

/// `pattern` anchored at both ends: COPY's PATTERN must match the whole path.
pub fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_keys_are_safe() {
        for safe in [
            "a.csv",
            "2026-11-26/a.csv",
            "2026-11-26/*-x[1]?.csv",
            "..a/b..c",
        ] {
            assert_eq!(unsafe_path(safe), None, "{safe}");
        }
        for unsafe_ in [
            "",
            "2026-11-26/../../../../outside.csv",
            "../outside.csv",
            "./a.csv",
            "/etc/passwd",
            "2026-11-26//a.csv",
            "2026-11-26/",
            "a\\..\\..\\b.csv",
            "a\nb.csv",
        ] {
            assert!(unsafe_path(unsafe_).is_some(), "{unsafe_:?}");
        }
    }

    #[test]
    fn parses_stage_urls() {
        assert_eq!(
            StageUrl::parse("s3://bucket/a/b").unwrap(),
            StageUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b/".into()
            }
        );
        assert_eq!(
            StageUrl::parse("s3://bucket").unwrap(),
            StageUrl::S3 {
                bucket: "bucket".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            StageUrl::parse("file:///data/x").unwrap(),
            StageUrl::Local("/data/x".into())
        );
        assert_eq!(
            StageUrl::parse("stage").unwrap(),
            StageUrl::Local("stage".into())
        );
        assert!(StageUrl::parse("gcs://b").is_err());
        assert!(StageUrl::parse("s3:///x").is_err());
    }

    #[test]
    fn lists_by_prefix_and_matches_whole_paths() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "2026-11-26/lic-2026-11-26.csv",
            "2026-11-26/notes.txt",
            "2026-11-25/lic-2026-11-25.csv",
            "2026-11-26.csv",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let files = list_local(dir.path(), "2026-11-26").unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "2026-11-26.csv",
                "2026-11-26/lic-2026-11-26.csv",
                "2026-11-26/notes.txt"
            ]
        );
        let pattern = anchored(r".*2026-11-26\.csv").unwrap();
        let matched: Vec<_> = matching(files, &pattern)
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(matched, ["2026-11-26.csv", "2026-11-26/lic-2026-11-26.csv"]);
        assert!(list_local(&dir.path().join("missing"), "").is_err());
    }
}
