//! Finding a script by name. Airflow task names cannot hold underscores while file names often
//! do, so `account-arr` and `account_arr` name the same file; an unknown name is answered with
//! the names that exist.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("no script was named: give it as the SCRIPT argument or in PG_JOB_SCRIPT")]
    NotNamed,
    #[error("script name {0:?} is not a plain file name (no directories, no leading dot)")]
    InvalidName(String),
    #[error("cannot read the scripts directory {}: {source}", .dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown script {name:?}: {} has {}", .dir.display(), list(.available))]
    Unknown {
        name: String,
        dir: PathBuf,
        available: Vec<String>,
    },
    #[error("script name {name:?} matches more than one file: {}", .files.join(", "))]
    Ambiguous { name: String, files: Vec<String> },
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn list(available: &[String]) -> String {
    if available.is_empty() {
        "no .sql scripts".to_owned()
    } else {
        format!(
            "{} (hyphens and underscores are interchangeable)",
            available.join(", ")
        )
    }
}

/// The one spelling two names are compared in.
fn key(name: &str) -> String {
    name.replace('-', "_")
}

/// The file in `dir` that `name` means: `<name>.sql`, hyphens and underscores interchangeable;
/// `name` may end in `.sql`.
pub fn resolve(dir: &Path, name: &str) -> Result<PathBuf, ScriptError> {
    let name = name.trim();
    let stem = name.strip_suffix(".sql").unwrap_or(name);
    if stem.is_empty() || stem.starts_with('.') || stem.contains(['/', '\\']) {
        return Err(ScriptError::InvalidName(name.to_owned()));
    }
    let scripts = scripts(dir)?;
    let wanted = key(stem);
    let matches: Vec<&String> = scripts.iter().filter(|s| key(s) == wanted).collect();
    match matches.as_slice() {
        [one] => Ok(dir.join(format!("{one}.sql"))),
        [] => Err(ScriptError::Unknown {
            name: stem.to_owned(),
            dir: dir.to_owned(),
            available: scripts,
        }),
        several => Err(ScriptError::Ambiguous {
            name: stem.to_owned(),
            files: several.iter().map(|s| format!("{s}.sql")).collect(),
        }),
    }
}

/// The names (file stems) of the `.sql` files in `dir`, sorted.
pub fn scripts(dir: &Path) -> Result<Vec<String>, ScriptError> {
    let to_error = |source| ScriptError::Directory {
        dir: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(to_error)? {
        let path = entry.map_err(to_error)?.path();
        if path.extension().is_some_and(|e| e == "sql")
            && path.is_file()
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The script's text.
pub fn read(path: &Path) -> Result<String, ScriptError> {
    std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pg-job-scripts-{}-{}",
            std::process::id(),
            files.join("+")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for file in files {
            std::fs::write(dir.join(file), "SELECT 1;\n").unwrap();
        }
        dir
    }

    #[test]
    fn hyphens_and_underscores_name_the_same_script() {
        let dir = dir_with(&["account_arr.sql", "opportunity-snapshot.sql", "notes.txt"]);
        for name in [
            "account-arr",
            "account_arr",
            "account_arr.sql",
            " account-arr ",
        ] {
            assert_eq!(
                resolve(&dir, name).unwrap(),
                dir.join("account_arr.sql"),
                "{name}"
            );
        }
        assert_eq!(
            resolve(&dir, "opportunity_snapshot").unwrap(),
            dir.join("opportunity-snapshot.sql")
        );
        let err = resolve(&dir, "arr").unwrap_err().to_string();
        assert!(
            err.ends_with(
                "has account_arr, opportunity-snapshot (hyphens and underscores are interchangeable)"
            ),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let dir = dir_with(&["a.sql"]);
        for name in ["../a", "/etc/passwd", ".hidden", "", "sub\\a"] {
            assert!(
                matches!(resolve(&dir, name), Err(ScriptError::InvalidName(_))),
                "{name}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn two_spellings_of_one_name_are_ambiguous() {
        let dir = dir_with(&["a_b.sql", "a-b.sql"]);
        let err = resolve(&dir, "a-b").unwrap_err().to_string();
        assert_eq!(
            err,
            "script name \"a-b\" matches more than one file: a-b.sql, a_b.sql"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = resolve(Path::new("/nonexistent/sql"), "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read the scripts directory /nonexistent/sql"),
            "{err}"
        );
    }
}
