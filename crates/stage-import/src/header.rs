//! What a file's first lines say before the warehouse reads it: whether it holds any data row,
//! how many header lines to skip, and the fields its header names. A file is known by its own
//! header, not by a fixed count: a CloudFront log without its `#` lines keeps its first rows,
//! and an older log with fewer `#Fields:` loads them with the rest NULL.

use std::io::Read;
use std::path::Path;

use crate::catalog::{Compression, Format, HeaderKind};
use crate::report::FileOutcome;

/// How much of a file's (decompressed) start is read: header lines longer than this are not
/// a header this job knows.
const PREFIX_BYTES: usize = 64 * 1024;

/// How a file with data rows is read: header lines skipped, and how many of the format's
/// columns (the first ones) it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadShape {
    pub skip_lines: u32,
    pub fields: usize,
}

impl ReadShape {
    /// What the format alone says: for a file whose start could not be read, so that the
    /// warehouse's own reader reports what is wrong with it.
    pub fn of_format(format: &Format) -> ReadShape {
        ReadShape {
            skip_lines: format.skip_header,
            fields: format.columns.len(),
        }
    }
}

/// What the start of a file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// No data row: 0 bytes, an empty gzip, or header lines only.
    Empty,
    /// Data rows follow the header.
    Data(ReadShape),
}

/// Why a file's header does not fit its format: the file fails with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

/// What a file's start decides before the warehouse reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Read it with this shape.
    Read(ReadShape),
    /// Not read: EMPTY, or LOAD_FAILED because its header is not the format's.
    Outcome(FileOutcome),
}

impl Decision {
    /// The decision for `file` from what inspecting its start gave.
    pub fn of(file: &str, inspected: Result<Option<Shape>, Mismatch>, format: &Format) -> Decision {
        match inspected {
            Ok(Some(Shape::Data(shape))) => Decision::Read(shape),
            Ok(Some(Shape::Empty)) => Decision::Outcome(FileOutcome::empty(file)),
            Ok(None) => Decision::Read(ReadShape::of_format(format)),
            Err(Mismatch(message)) => Decision::Outcome(FileOutcome::load_failed(file, &message)),
        }
    }
}

/// Reads the start of `path` and compares its header with `format`. An error reading the file
/// is `Ok(None)`: the warehouse's own reader then reports what is wrong with it.
pub fn inspect(path: &Path, format: &Format) -> Result<Option<Shape>, Mismatch> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let Ok(metadata) = file.metadata() else {
        return Ok(None);
    };
    inspect_raw(file, metadata.len() == 0, true, format)
}

/// How many bytes of a remote file's start to fetch: compressed logs need more than
/// [`PREFIX_BYTES`] of input for that much text.
pub const START_BYTES: u64 = 256 * 1024;

/// Like [`inspect`], for the first bytes of a file (`whole`: the file ends there), as a ranged
/// GET gives them: a compressed stream cut short is read up to the cut.
pub fn inspect_start(
    start: &[u8],
    whole: bool,
    format: &Format,
) -> Result<Option<Shape>, Mismatch> {
    inspect_raw(start, start.is_empty() && whole, whole, format)
}

fn inspect_raw(
    raw: impl Read,
    zero_bytes: bool,
    whole: bool,
    format: &Format,
) -> Result<Option<Shape>, Mismatch> {
    if zero_bytes {
        return Ok(Some(Shape::Empty));
    }
    let Ok(prefix) = read_prefix(raw, whole, format.compression) else {
        return Ok(None);
    };
    shape(&prefix.bytes, prefix.complete, format).map(Some)
}

struct Prefix {
    bytes: Vec<u8>,
    /// The whole file is in `bytes`.
    complete: bool,
}

fn read_prefix(raw: impl Read, whole: bool, compression: Compression) -> std::io::Result<Prefix> {
    let mut reader: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::None => Box::new(raw),
    };
    let mut bytes = Vec::with_capacity(PREFIX_BYTES + 1);
    let mut chunk = [0u8; 16 * 1024];
    let mut complete = whole;
    while bytes.len() <= PREFIX_BYTES {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The start of a compressed file ends inside its stream.
            Err(_) if !whole && !bytes.is_empty() => {
                complete = false;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if bytes.len() > PREFIX_BYTES {
        complete = false;
        bytes.truncate(PREFIX_BYTES);
    }
    Ok(Prefix { bytes, complete })
}

/// The shape of a file that starts with `prefix` (`complete`: the file ends there).
fn shape(prefix: &[u8], complete: bool, format: &Format) -> Result<Shape, Mismatch> {
    let text = String::from_utf8_lossy(prefix);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // Whole lines only: the last one may be cut by the prefix.
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if !complete && lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    let blank = |line: &&str| line.trim().is_empty();
    let columns = format.columns.len();
    let (skip_lines, fields) = match format.header {
        HeaderKind::None => (format.skip_header, columns),
        HeaderKind::Names => {
            let skip = format.skip_header.max(1);
            let Some(first) = lines.first() else {
                return Ok(Shape::Empty);
            };
            let named = split_names(first, format);
            let expected = field_names(format, columns);
            if !same_names(&named, &expected) {
                return Err(Mismatch(format!(
                    "its header names the columns [{}]; the catalog's format has [{}]",
                    named.join(", "),
                    expected.join(", ")
                )));
            }
            (skip, columns)
        }
        HeaderKind::W3c => {
            let directives = lines.iter().take_while(|l| l.starts_with('#')).count();
            if directives == lines.len() && !complete {
                return Err(Mismatch(format!(
                    "its `#` header lines run past the first {PREFIX_BYTES} bytes"
                )));
            }
            let declared = lines[..directives]
                .iter()
                .find_map(|l| l.trim_end().strip_prefix("#Fields:"));
            let fields = match declared {
                None => columns,
                Some(declared) => {
                    let named: Vec<String> =
                        declared.split_whitespace().map(str::to_owned).collect();
                    let expected = field_names(format, columns);
                    if named.is_empty()
                        || named.len() > columns
                        || !same_names(&named, &expected[..named.len()])
                    {
                        return Err(Mismatch(format!(
                            "its #Fields: header names [{}]; the catalog's format has [{}] (a \
                             file may leave out fields at the end, but not have others)",
                            named.join(" "),
                            expected.join(" ")
                        )));
                    }
                    named.len()
                }
            };
            (directives as u32, fields)
        }
    };
    let has_data = lines.iter().skip(skip_lines as usize).any(|l| !blank(l))
        || (!complete && lines.len() <= skip_lines as usize);
    if has_data {
        Ok(Shape::Data(ReadShape { skip_lines, fields }))
    } else {
        Ok(Shape::Empty)
    }
}

/// The header's name of each of the first `count` columns.
fn field_names(format: &Format, count: usize) -> Vec<String> {
    format.columns[..count]
        .iter()
        .map(|c| c.field.clone().unwrap_or_else(|| c.name.clone()))
        .collect()
}

/// A header line's names: split on the delimiter, quotes and spaces around each trimmed.
fn split_names(line: &str, format: &Format) -> Vec<String> {
    let quote = format.quote_char();
    line.trim_end_matches(['\n', '\r'])
        .split(format.delimiter.as_str())
        .map(|name| {
            let name = name.trim();
            match quote {
                Some(q) => name.trim_matches(q).to_owned(),
                None => name.to_owned(),
            }
        })
        .collect()
}

fn same_names(found: &[String], expected: &[String]) -> bool {
    found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn format(source: &str) -> Format {
        Catalog::load(None)
            .unwrap()
            .source(source)
            .unwrap()
            .format
            .clone()
    }

    const FIELDS: &str = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

    #[test]
    fn a_cloudfront_log_is_read_by_its_own_header() {
        let cloudfront = format("diagnostics");
        let full = format!("#Version: 1.0\n#Fields: {FIELDS}\n2026-11-26\t00:00:01\n");
        assert_eq!(
            shape(full.as_bytes(), true, &cloudfront),
            Ok(Shape::Data(ReadShape {
                skip_lines: 2,
                fields: 33
            }))
        );
        // An older log: fewer fields, the first ones.
        let older: Vec<&str> = FIELDS.split(' ').take(24).collect();
        let older = format!("#Version: 1.0\n#Fields: {}\nx\n", older.join(" "));
        assert_eq!(
            shape(older.as_bytes(), true, &cloudfront),
            Ok(Shape::Data(ReadShape {
                skip_lines: 2,
                fields: 24
            }))
        );
        // No `#` lines: nothing skipped.
        assert_eq!(
            shape(b"2026-11-26\t00:00:01\n", true, &cloudfront),
            Ok(Shape::Data(ReadShape {
                skip_lines: 0,
                fields: 33
            }))
        );
        let other = FIELDS.replace("c-ip", "client-ip");
        let error = shape(
            format!("#Fields: {other}\nx\n").as_bytes(),
            true,
            &cloudfront,
        )
        .unwrap_err()
        .0;
        assert!(
            error.contains("client-ip") && error.contains("c-ip"),
            "{error}"
        );
        let more = format!("#Fields: {FIELDS} x-new-field\nx\n");
        assert!(shape(more.as_bytes(), true, &cloudfront).is_err());
    }

    #[test]
    fn no_data_row_is_empty() {
        let cloudfront = format("diagnostics");
        let licenses = format("licenses");
        assert_eq!(shape(b"", true, &cloudfront), Ok(Shape::Empty));
        let header_only = format!("#Version: 1.0\n#Fields: {FIELDS}\n");
        assert_eq!(
            shape(header_only.as_bytes(), true, &cloudfront),
            Ok(Shape::Empty)
        );
        assert_eq!(shape(b"", true, &licenses), Ok(Shape::Empty));
        let header = "license_id,customer_id,company_name,contact_email,sku,edition,seats,\
                      is_trial,issued_at,starts_at,expires_at,features\n";
        assert_eq!(shape(header.as_bytes(), true, &licenses), Ok(Shape::Empty));
        assert_eq!(
            shape(format!("{header}\n\n").as_bytes(), true, &licenses),
            Ok(Shape::Empty)
        );
        assert_eq!(
            shape(format!("{header}L-1,C-1\n").as_bytes(), true, &licenses),
            Ok(Shape::Data(ReadShape {
                skip_lines: 1,
                fields: 12
            }))
        );
        // Cut by the prefix: data may follow.
        assert_eq!(
            shape(header.as_bytes(), false, &licenses),
            Ok(Shape::Data(ReadShape {
                skip_lines: 1,
                fields: 12
            }))
        );
    }

    #[test]
    fn a_csv_header_must_name_the_formats_columns() {
        let licenses = format("licenses");
        let quoted = "\"License_ID\",customer_id,company_name,contact_email,sku,edition,seats,\
                      is_trial,issued_at,starts_at,expires_at,features\r\nx\n";
        assert!(shape(quoted.as_bytes(), true, &licenses).is_ok());
        let other = "id,customer,seats\n1,2,3\n";
        let error = shape(other.as_bytes(), true, &licenses).unwrap_err().0;
        assert!(
            error.contains("[id, customer, seats]") && error.contains("license_id, customer_id"),
            "{error}"
        );
    }

    #[test]
    fn files_are_read_through_their_compression() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let cloudfront = format("diagnostics");
        let empty_gzip = dir.path().join("empty.gz");
        flate2::write::GzEncoder::new(
            std::fs::File::create(&empty_gzip).unwrap(),
            flate2::Compression::default(),
        )
        .finish()
        .unwrap();
        assert_eq!(inspect(&empty_gzip, &cloudfront), Ok(Some(Shape::Empty)));
        let zero = dir.path().join("zero.gz");
        std::fs::write(&zero, b"").unwrap();
        assert_eq!(inspect(&zero, &cloudfront), Ok(Some(Shape::Empty)));
        let log = dir.path().join("log.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&log).unwrap(),
            flate2::Compression::default(),
        );
        write!(gz, "#Version: 1.0\n#Fields: {FIELDS}\n").unwrap();
        for _ in 0..10_000 {
            writeln!(gz, "2026-11-26\t00:00:01\tIAD89-C1").unwrap();
        }
        gz.finish().unwrap();
        assert_eq!(
            inspect(&log, &cloudfront),
            Ok(Some(Shape::Data(ReadShape {
                skip_lines: 2,
                fields: 33
            })))
        );
        // The first bytes of it, as a ranged GET gives them: read up to the cut.
        let raw = std::fs::read(&log).unwrap();
        let cut = &raw[..raw.len() / 2];
        assert!(cut.len() > 400, "{} bytes", raw.len());
        assert_eq!(
            inspect_start(cut, false, &cloudfront),
            Ok(Some(Shape::Data(ReadShape {
                skip_lines: 2,
                fields: 33
            })))
        );
        assert_eq!(
            inspect_start(&raw, true, &cloudfront),
            inspect(&log, &cloudfront)
        );
        assert_eq!(
            inspect_start(b"", true, &cloudfront),
            Ok(Some(Shape::Empty))
        );
        // A whole file that is not gzip cannot be read; neither can a start too short for a
        // gzip header.
        assert_eq!(inspect_start(b"plain text", true, &cloudfront), Ok(None));
        assert_eq!(inspect_start(&raw[..5], false, &cloudfront), Ok(None));
        let not_gzip = dir.path().join("bad.gz");
        std::fs::write(&not_gzip, b"plain text").unwrap();
        assert_eq!(inspect(&not_gzip, &cloudfront), Ok(None));
    }
}
