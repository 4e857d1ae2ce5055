//! Where a source's files are: a stage's URL (an S3 prefix or a local directory) and the files
//! below it. Listing is the preflight: before any COPY, the job knows which files a day has.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
    /// The content's identity (S3's ETag, a local file's SHA-256): the load history keys a file
    /// on it, so that a touched file is not loaded twice and a rewritten one replaces its rows.
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
            let (size, digest) = content_digest(&path)?;
            files.push(StagedFile {
                path: relative,
                size,
                tag: format!("sha256:{digest}"),
            });
        }
    }
    Ok(())
}

/// A local file's size and SHA-256 (hex), read once in 1 MiB blocks: a file's identity is its
/// content, not its mtime, which a copy or a `touch` changes.
fn content_digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    let digest = hasher.finalize();
    Ok((size, digest.iter().map(|b| format!("{b:02x}")).collect()))
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

    #[test]
    fn a_files_tag_follows_its_content_not_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026-11-26.csv");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let tag = || list_local(dir.path(), "").unwrap()[0].tag.clone();
        let first = tag();
        // `printf 'a,b\n1,2\n' | sha256sum`
        assert_eq!(
            first,
            "sha256:492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470"
        );
        let touched = std::fs::File::options().write(true).open(&path).unwrap();
        touched
            .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .unwrap();
        assert_eq!(tag(), first, "a touched file is the same file");
        std::fs::write(&path, "a,b\n1,3\n").unwrap();
        assert_ne!(tag(), first, "a rewritten file is a new one");
        assert_eq!(list_local(dir.path(), "").unwrap()[0].size, 8);
    }
}
