//! What the stage-import tests of both backends share: reading the JSON report (stdout), and
//! a user catalog fixture.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Run;

pub fn parse_report(out: &Run) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: stdout {:?}", out.stdout))
}

/// Every file outcome of `source`'s loads, in report order.
pub fn files<'a>(report: &'a Value, source: &str) -> Vec<&'a Value> {
    report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["source"] == source)
        .flat_map(|l| l["files"].as_array().unwrap())
        .collect()
}

/// The distinct file statuses of the whole run, sorted.
pub fn statuses(report: &Value) -> Vec<String> {
    let mut all: Vec<String> = report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["files"].as_array().unwrap())
        .map(|f| f["status"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// A user catalog adding source `plans` (a TSV of plan and integer price, under
/// `<dir>/exports/YYYY/MM/DD/`) with `rows` as 2026-11-26's file. Returns the catalog's path.
pub fn plans_catalog(dir: &Path, rows: &str) -> PathBuf {
    let exports = dir.join("exports/2026/11/26");
    std::fs::create_dir_all(&exports).unwrap();
    std::fs::write(exports.join("plans.tsv"), rows).unwrap();
    let catalog = dir.join("catalog.yml");
    std::fs::write(
        &catalog,
        format!(
            "stages:\n  exports: \"file://{}\"\n\
             formats:\n  plans_tsv:\n    delimiter: \"\\t\"\n    skip_header: 1\n    columns:\n      \
             - {{ name: plan, type: text }}\n      - {{ name: price, type: integer }}\n\
             sources:\n  plans:\n    schema: billing\n    table: plans\n    stage: exports\n    \
             path: \"{{yyyy}}/{{mm}}/{{dd}}\"\n    pattern: '.*\\.tsv'\n    format: plans_tsv\n",
            dir.join("exports").display()
        ),
    )
    .unwrap();
    catalog
}

/// The header line and the first `records` records of a quoted CSV text (a quoted field may
/// hold newlines, so records are not lines).
pub fn first_records(csv: &str, records: usize) -> String {
    let mut in_quotes = false;
    let mut ends = 0;
    for (at, c) in csv.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\n' if !in_quotes => {
                ends += 1;
                if ends == records + 1 {
                    return csv[..=at].to_owned();
                }
            }
            _ => {}
        }
    }
    panic!("the text has fewer than {records} records");
}

/// A gzip file's text.
pub fn gunzip(path: &Path) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Writes `text` to `path`, gzipped.
pub fn gzip(path: &Path, text: &str) {
    use std::io::Write;
    let mut out = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    out.write_all(text.as_bytes()).unwrap();
    out.finish().unwrap();
}

/// The day's CloudFront logs of the diagnostics source below `stage`, sorted.
pub fn diagnostics_logs(stage: &Path, day: &str) -> Vec<PathBuf> {
    walk_files(stage)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.contains("DIAGNOSTICS.") && name.contains(day)
        })
        .collect()
}

/// Every file below `dir`, sorted.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A CloudFront log's lines that are not `#` header lines.
fn data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Rewrites a CloudFront log without its `#` lines; its data lines.
pub fn strip_log_header(log: &Path) -> Vec<String> {
    let lines = data_lines(&gunzip(log));
    gzip(log, &(lines.join("\n") + "\n"));
    lines
}

/// Rewrites a CloudFront log as an older one, whose `#Fields:` names only the first `fields`;
/// with `short_last`, its last line has only 10 fields. Its data lines, and its original
/// `#Fields:` line.
pub fn make_older_log(log: &Path, fields: usize, short_last: bool) -> (Vec<String>, String) {
    let text = gunzip(log);
    let fields_line = text
        .lines()
        .find(|l| l.starts_with("#Fields:"))
        .unwrap()
        .to_owned();
    let older_fields: Vec<&str> = fields_line["#Fields:".len()..]
        .split_whitespace()
        .take(fields)
        .collect();
    let mut older: Vec<String> = data_lines(&text)
        .iter()
        .map(|l| l.split('\t').take(fields).collect::<Vec<_>>().join("\t"))
        .collect();
    if short_last {
        let last = older.len() - 1;
        older[last] = older[last]
            .split('\t')
            .take(10)
            .collect::<Vec<_>>()
            .join("\t");
    }
    gzip(
        log,
        &format!(
            "#Version: 1.0\n#Fields: {}\n{}\n",
            older_fields.join(" "),
            older.join("\n")
        ),
    );
    (older, fields_line)
}

/// Writes an empty gzip, and a log of header lines only.
pub fn write_empty_logs(empty_gzip: &Path, header_only: &Path, fields_line: &str) {
    gzip(empty_gzip, "");
    gzip(header_only, &format!("#Version: 1.0\n{fields_line}\n"));
}

/// Swaps two names in the header of the day's license export below `stage`; its path.
pub fn swap_license_header(stage: &Path, day: &str) -> PathBuf {
    let export = walk_files(stage)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&format!("licenses-{day}")))
        .expect("the day's license export");
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(
        &export,
        text.replacen("seats,is_trial", "is_trial,seats", 1),
    )
    .unwrap();
    export
}

/// The report's outcome of the file named as `path` is.
pub fn outcome_of(report: &Value, path: &Path) -> Value {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["files"].as_array().unwrap())
        .find(|f| f["file"].as_str().unwrap().ends_with(&name))
        .unwrap_or_else(|| panic!("{name} not in {report}"))
        .clone()
}
