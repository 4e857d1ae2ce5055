"""COPY INTO <table> for the compatibility proxy: what fakesnow 0.12 cannot run.

fakesnow fails on a transforming COPY (`FROM (SELECT $1, ... FROM @stage)`), rejects
ON_ERROR = 'CONTINUE' and knows no METADATA$FILENAME, so the proxy answers every
`COPY INTO <table>` itself, the way Snowflake documents it, and lets fakesnow store the rows:

- the stage and file format come from the CREATE STAGE / CREATE FILE FORMAT statements that
  passed through the proxy (after fakesnow accepted them), per database and schema;
- files are read from the stage's `file://` location, or from an `s3://` one in the local S3
  server the tests set with `POST /__compat/s3` (moto): the objects below the stage's URL are
  listed and fetched with boto3, with the stage's CREDENTIALS, as Snowflake reads a bucket; an
  object's load-metadata identity is its size and LastModified (Snowflake's docs: "the ETag and
  last modified"); an `s3://` stage without that server, or without CREDENTIALS or
  STORAGE_INTEGRATION, is an error that says so;
  FILES = (...) names files below the stage (and sub-path), PATTERN = '...' must match a
  file's whole path below the stage, gzip by COMPRESSION (AUTO: a `.gz` name);
- CSV is parsed with the file format's FIELD_DELIMITER, RECORD_DELIMITER (newline),
  SKIP_HEADER (lines), FIELD_OPTIONALLY_ENCLOSED_BY (a doubled quote is a quote; a closing
  quote followed by anything but a delimiter is "Found character ... instead of field
  delimiter"), ESCAPE_UNENCLOSED_FIELD (default backslash), NULL_IF (default ('\\N')),
  EMPTY_FIELD_AS_NULL (default TRUE), ERROR_ON_COLUMN_COUNT_MISMATCH (default TRUE; ignored by
  a transforming COPY, as documented under "Transforming data during a load");
- each field is converted to its target column's type (NUMBER, FLOAT, DATE, TIME, TIMESTAMP_*,
  BOOLEAN, text), so a bad number, date, time or timestamp rejects its row with Snowflake's
  message ("Numeric value 'many' is not recognized", ...);
- ON_ERROR: CONTINUE (bad rows counted per file), SKIP_FILE, ABORT_STATEMENT (the default:
  the statement fails with the first error, code 100038);
- good rows are inserted into fakesnow on the caller's own session (so inside its transaction:
  BEGIN / DELETE / COPY / ROLLBACK stays atomic), in batches, through an
  `INSERT ... SELECT <the COPY's select list> FROM (VALUES ...)`, so that the select list's
  expressions (METADATA$FILENAME, IFF(...)) are fakesnow's to evaluate; METADATA$START_SCAN_TIME
  is the COPY's start, one TIMESTAMP_LTZ for the statement; the time functions evaluated at run
  time (CURRENT_TIMESTAMP, SYSDATE, GETDATE, CURRENT_DATE, CURRENT_TIME, LOCALTIMESTAMP), which
  are not among the functions Snowflake documents for COPY transformations ("Transforming data
  during a load", Supported functions), are refused with a compilation error (the message is
  the emulator's own);
- load metadata per table: a file loaded before (same location, same size and mtime: the
  emulator's ETag) is left out unless FORCE = TRUE; a COPY inside a transaction records its
  files only when the transaction commits;
- the result is Snowflake's documented one ("COPY INTO <table>", Output): file, status,
  rows_parsed, rows_loaded, error_limit, errors_seen, first_error, first_error_line,
  first_error_character, first_error_column_name; status LOADED, PARTIALLY_LOADED or
  LOAD_FAILED; a COPY that processes no file answers one `status` column,
  "Copy executed with 0 files processed.". The result is a real fakesnow query, so it reaches
  the client in Arrow or JSON like any other. Choices where the docs say little: files skipped
  by load metadata are left out of the result (fakesnow itself lists them as LOAD_SKIPPED);
  rows_parsed counts rejected rows too; error_limit is rows_parsed under CONTINUE and 1
  otherwise; first_error_line is the physical line where the bad record starts (header lines
  and newlines inside quotes counted), first_error_character the record's character where the
  bad field (or unexpected character) starts, first_error_column_name `"TABLE"["COLUMN":n]`;
  a LOAD_FAILED file is not recorded as loaded (a later COPY tries it again).

Names, as Snowflake gives them for an external stage (the docs are not exact here; what the
emulator chose is marked):
- `file` in COPY's result: the file's full URL, `s3://bucket/prefix/path` for an S3 stage
  (the Snowflake connector docs show this form); here `file:///dir/path`.
- METADATA$FILENAME: "Name of the staged data file the current row belongs to. Includes the
  full path to the data file." (Querying Metadata for Staged Files; older versions of the page
  said "the path to the data file in the stage"). Ambiguous: the emulator takes the current
  wording and gives the object's key, the full path after the bucket (`prefix/path` for
  `s3://bucket/prefix/path`, `dir/path` for `file:///dir/path`), the less convenient reading,
  so that a client must not assume the path below the stage.

Not emulated: other file types than CSV, RECORD_DELIMITER other than newline, ESCAPE for
enclosed fields, TRIM_SPACE, SKIP_BLANK_LINES, DATE_FORMAT/TIME_FORMAT/TIMESTAMP_FORMAT other
than AUTO (ISO forms), VALIDATION_MODE, PURGE, RETURN_FAILED_ONLY, SIZE_LIMIT, the 64-day
expiry of load metadata, ENFORCE_LENGTH, column lengths and NOT NULL checks (fakesnow's insert
fails the whole statement instead), row-level error details beyond the first error.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import os
import re
import threading
import zlib
from urllib.parse import unquote, urlsplit

BATCH_ROWS = 500

# (database, schema, name), upper-cased unless quoted -> definition
STAGES: dict[tuple[str, str, str], dict] = {}
FORMATS: dict[tuple[str, str, str], dict] = {}
# (database, schema, table) -> {file url: tag}
LOADED: dict[tuple[str, str, str], dict[str, tuple]] = {}
# (database, schema, table) -> COPY_HISTORY rows, committed loads only
HISTORY: dict[tuple[str, str, str], list[dict]] = {}
LOCK = threading.Lock()
# The S3-compatible endpoint s3:// stages are read from (POST /__compat/s3), and where their
# objects are kept once fetched.
S3 = {"endpoint": None, "cache": None}


class SqlError(Exception):
    """A statement failure with Snowflake's code, SQL state and message."""

    def __init__(self, code: str, sql_state: str, message: str) -> None:
        super().__init__(message)
        self.code, self.sql_state, self.message = code, sql_state, message


def compilation_error(message: str, code: str = "002003", sql_state: str = "02000") -> SqlError:
    return SqlError(code, sql_state, "SQL compilation error:\n" + message)


# --- tokens --------------------------------------------------------------------------------------

TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<str>'(?:[^'\\]|\\.|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<stage>@[A-Za-z0-9_$."~%/=-]+)
  | (?P<param>\$\d+)
  | (?P<num>\d+(?:\.\d*)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<punct>::|[(),.;=*+\-/<>!|])
    """,
    re.VERBOSE | re.DOTALL,
)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def unescape_string(text: str) -> str:
    body = text[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif c == "'" and body[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Tok:
    __slots__ = ("kind", "text", "start", "end")

    def __init__(self, kind: str, text: str, start: int, end: int) -> None:
        self.kind, self.text, self.start, self.end = kind, text, start, end

    @property
    def upper(self) -> str:
        return self.text.upper()

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}"


def tokenize(sql: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(sql):
        match = TOKEN.match(sql, pos)
        if not match:
            raise SqlError("001003", "42000", f"SQL compilation error:\nsyntax error line 1 at position {pos} unexpected '{sql[pos]}'.")
        kind = match.lastgroup
        if kind != "space":
            out.append(Tok(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return out


def ident_value(tok: Tok) -> str:
    if tok.kind == "qident":
        return tok.text[1:-1].replace('""', '"')
    return tok.text.upper()


def split_name(text: str) -> list[str]:
    """`a.b."c"` -> ['A', 'B', 'c'] (as a FORMAT_NAME string holds it)."""
    toks = [t for t in tokenize(text) if t.text != "."]
    return [ident_value(t) for t in toks]


class Parser:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.toks = [t for t in tokenize(sql) if t.text != ";"]
        self.i = 0

    def peek(self, offset: int = 0) -> Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            tok = self.peek(offset)
            if tok is None or tok.upper != word:
                return False
        return True

    def take(self, *words: str) -> bool:
        if self.at(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, word: str) -> Tok:
        tok = self.next()
        if tok.upper != word:
            raise SqlError("001003", "42000", f"SQL compilation error:\nsyntax error line 1 at position {tok.start} unexpected '{tok.text}'.")
        return tok

    def next(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise SqlError("001003", "42000", "SQL compilation error:\nsyntax error: unexpected end of statement.")
        self.i += 1
        return tok

    def name(self) -> list[str]:
        parts = [ident_value(self.next())]
        while self.peek() is not None and self.peek().text == ".":
            self.i += 1
            parts.append(ident_value(self.next()))
        return parts

    def value(self):
        """An option's value: a string, a number, a word, or a parenthesised list of them."""
        tok = self.next()
        if tok.text == "(":
            items = []
            while not self.take(")"):
                if self.peek() is not None and self.peek().text == ",":
                    self.i += 1
                    continue
                # a nested option list (FILE_FORMAT = (FORMAT_NAME = 'x'), CREDENTIALS = (...))
                if self.peek(1) is not None and self.peek(1).text == "=":
                    key = self.next().upper
                    self.i += 1
                    items.append((key, self.value()))
                else:
                    items.append(self.value())
            return items
        if tok.kind == "str":
            return unescape_string(tok.text)
        if tok.kind == "num":
            return int(tok.text) if tok.text.isdigit() else float(tok.text)
        if tok.kind in ("ident", "qident"):
            parts = [ident_value(tok)]
            while self.peek() is not None and self.peek().text == ".":
                self.i += 1
                parts.append(ident_value(self.next()))
            return parts if len(parts) > 1 else (tok.upper if tok.kind == "ident" else parts[0])
        return tok.text

    def options(self) -> dict:
        out = {}
        while self.peek() is not None:
            key = self.next().upper
            self.take("=")
            out[key] = self.value()
        return out


# --- the session's context -----------------------------------------------------------------------


def qualify(parts: list[str], context: tuple[str, str]) -> tuple[str, str, str]:
    database, schema = context
    if len(parts) == 1:
        return (database, schema, parts[0])
    if len(parts) == 2:
        return (database, parts[0], parts[1])
    return (parts[-3], parts[-2], parts[-1])


def dotted(key: tuple[str, ...]) -> str:
    return ".".join(key)


# --- CREATE STAGE / CREATE FILE FORMAT -----------------------------------------------------------

CREATE = re.compile(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(TEMP(ORARY)?\s+)?(STAGE|FILE\s+FORMAT)\b", re.IGNORECASE)


def is_create(sql: str) -> bool:
    return bool(CREATE.match(sql))


def remember_create(sql: str, context: tuple[str, str]) -> None:
    """Called after fakesnow accepted a CREATE STAGE / FILE FORMAT: remembers its definition."""
    p = Parser(sql)
    p.expect("CREATE")
    replace = p.take("OR", "REPLACE")
    p.take("TEMPORARY") or p.take("TEMP")
    kind = "STAGE" if p.take("STAGE") else (p.take("FILE", "FORMAT") and "FORMAT")
    if_not_exists = p.take("IF", "NOT", "EXISTS")
    key = qualify(p.name(), context)
    options = p.options()
    store = STAGES if kind == "STAGE" else FORMATS
    with LOCK:
        if key in store and if_not_exists and not replace:
            return
        if kind == "STAGE":
            fmt = options.get("FILE_FORMAT")
            if isinstance(fmt, list) and fmt and isinstance(fmt[0], tuple):
                inline = dict(fmt)
                fmt = {"name": qualify(split_name(inline["FORMAT_NAME"]), context)} if "FORMAT_NAME" in inline else {"inline": inline}
            elif fmt is not None:
                fmt = {"name": qualify(fmt if isinstance(fmt, list) else [fmt], context)}
            store[key] = {
                "url": options.get("URL", ""), "format": fmt, "credentials": options.get("CREDENTIALS"),
                "integration": options.get("STORAGE_INTEGRATION"),
            }
        else:
            store[key] = options


ALTER_STAGE = re.compile(r"^\s*ALTER\s+STAGE\s+(?:IF\s+EXISTS\s+)?", re.IGNORECASE)


def is_alter_stage(sql: str) -> bool:
    return bool(ALTER_STAGE.match(sql))


def alter_stage(sql: str, context: tuple[str, str]) -> str:
    """ALTER STAGE … SET CREDENTIALS = (…) (fakesnow has no ALTER STAGE): replaces the stage's
    credentials; returns the SQL of Snowflake's answer."""
    p = Parser(sql)
    p.expect("ALTER")
    p.expect("STAGE")
    if_exists = p.take("IF", "EXISTS")
    key = qualify(p.name(), context)
    p.expect("SET")
    options = p.options()
    with LOCK:
        stage = STAGES.get(key)
        if stage is None:
            if if_exists:
                return "SELECT 'Statement executed successfully.' AS \"status\""
            raise compilation_error(f"Stage '{dotted(key)}' does not exist or not authorized.")
        unknown = set(options) - {"CREDENTIALS", "STORAGE_INTEGRATION", "URL", "FILE_FORMAT"}
        if unknown:
            raise SqlError("0A000", "0A000", f"the emulator does not know ALTER STAGE SET {sorted(unknown)}")
        if "CREDENTIALS" in options:
            stage["credentials"] = options["CREDENTIALS"]
        if "STORAGE_INTEGRATION" in options:
            stage["integration"] = options["STORAGE_INTEGRATION"]
    return "SELECT 'Statement executed successfully.' AS \"status\""


# --- COPY INTO: parsing --------------------------------------------------------------------------

COPY = re.compile(r"^\s*COPY\s+INTO\s+(?!@)", re.IGNORECASE)


def is_copy_into_table(sql: str) -> bool:
    return bool(COPY.match(sql))


def parse_copy(sql: str) -> dict:
    p = Parser(sql)
    p.expect("COPY")
    p.expect("INTO")
    copy = {"table": p.name(), "columns": None, "exprs": None}
    if p.take("("):
        columns = []
        while not p.take(")"):
            tok = p.next()
            if tok.text != ",":
                columns.append(ident_value(tok))
        copy["columns"] = columns
    p.expect("FROM")
    if p.take("("):
        p.expect("SELECT")
        exprs, depth, start = [], 0, p.peek().start
        while True:
            tok = p.next()
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
            elif depth == 0 and tok.text == ",":
                exprs.append(sql[start : tok.start].strip())
                start = p.peek().start
            elif depth == 0 and tok.upper == "FROM":
                exprs.append(sql[start : tok.start].strip())
                break
        copy["exprs"] = exprs
        copy["stage"] = p.next()
        while not p.take(")"):
            p.next()  # an alias
    else:
        copy["stage"] = p.next()
    if copy["stage"].kind != "stage":
        raise SqlError("001003", "42000", "SQL compilation error:\nthe emulator loads from a named stage (@stage) only")
    copy["options"] = p.options()
    return copy


def stage_ref(text: str) -> tuple[list[str], str]:
    """`@db.schema.stage/sub/path` -> (name parts, sub-path)."""
    body = text[1:]
    name, _, sub = body.partition("/")
    return split_name(name), unquote(sub)


# --- reading files -------------------------------------------------------------------------------


def option(options: dict, key: str, default):
    value = options.get(key, default)
    return default if value is None else value


def read_file(path: str, fmt: dict) -> str:
    with open(path, "rb") as f:
        data = f.read()
    compression = str(option(fmt, "COMPRESSION", "AUTO")).upper()
    gz = compression in ("GZIP", "AUTO") and (compression == "GZIP" or path.endswith(".gz"))
    if gz:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(
                f"Invalid data encountered during decompression for file: '{os.path.basename(path)}',"
                f"compression type used: 'GZIP', cause: '{e}'"
            ) from e
    return data.decode("utf-8", errors="replace")


class RowError(Exception):
    def __init__(self, message: str, character: int, column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.character, self.column = message, character, column


def char_option(fmt: dict, key: str, default: str | None) -> str | None:
    value = fmt.get(key, default)
    if value is None or (isinstance(value, str) and value.upper() == "NONE"):
        return None
    return str(value)


def records(text: str, fmt: dict):
    """Yields (line number, fields or RowError) for each record of a CSV file, after the header.

    A field is (value, enclosed, character position)."""
    delimiter = char_option(fmt, "FIELD_DELIMITER", ",") or ","
    quote = char_option(fmt, "FIELD_OPTIONALLY_ENCLOSED_BY", None)
    escape = char_option(fmt, "ESCAPE_UNENCLOSED_FIELD", "\\")
    skip = int(option(fmt, "SKIP_HEADER", 0))
    i, line, n = 0, 1, len(text)
    while skip > 0 and i < n:
        nl = text.find("\n", i)
        i = n if nl < 0 else nl + 1
        line += 1
        skip -= 1
    while i < n:
        start_line, record_start = line, i
        fields, error = [], None
        while True:
            field_start = i - record_start + 1
            if quote and i < n and text[i] == quote:
                i += 1
                value = []
                while True:
                    if i >= n:
                        error = RowError("End of record reached while expected to parse a closing quote", field_start, len(fields) + 1)
                        break
                    c = text[i]
                    if c == quote:
                        if i + 1 < n and text[i + 1] == quote:
                            value.append(quote)
                            i += 2
                            continue
                        i += 1
                        break
                    if c == "\n":
                        line += 1
                    value.append(c)
                    i += 1
                if error is None and i < n and text[i] not in (delimiter[0], "\n", "\r"):
                    error = RowError(
                        f"Found character '{text[i]}' instead of field delimiter '{delimiter}'",
                        i - record_start + 1,
                        len(fields) + 1,
                    )
                fields.append(("".join(value), True, field_start))
            else:
                value = []
                while i < n and text[i] != "\n" and not text.startswith(delimiter, i):
                    if escape and text[i] == escape and i + 1 < n and text[i + 1] != "\n":
                        value.append(text[i + 1])
                        i += 2
                        continue
                    value.append(text[i])
                    i += 1
                text_value = "".join(value)
                if (i >= n or text[i] == "\n") and text_value.endswith("\r"):
                    text_value = text_value[:-1]
                fields.append((text_value, False, field_start))
            if error is not None:
                # the rest of the record is skipped, as Snowflake skips to the next record
                nl = text.find("\n", i)
                i = n if nl < 0 else nl + 1
                line += 1
                break
            if i < n and text.startswith(delimiter, i):
                i += len(delimiter)
                continue
            if i < n and text[i] == "\r":
                i += 1
            if i < n and text[i] == "\n":
                i += 1
            line += 1
            break
        yield start_line, (error if error is not None else fields)


# --- typing fields -------------------------------------------------------------------------------

NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")
TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
TRUE_WORDS = {"TRUE", "T", "YES", "Y", "ON", "1"}
FALSE_WORDS = {"FALSE", "F", "NO", "N", "OFF", "0"}


def fraction(text: str | None) -> str:
    return (text or "").ljust(9, "0")[:9]


def convert(value: str, column: dict) -> str:
    """The field as canonical text for the column's type; ValueError with Snowflake's message."""
    kind = column["type"]
    if kind in ("NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "FIXED"):
        text = value.strip()
        if not NUMBER.match(text):
            raise ValueError(f"Numeric value '{value}' is not recognized")
        scale = column.get("scale") or 0
        number = decimal.Decimal(text).quantize(decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP)
        if column.get("precision") and len(number.as_tuple().digits) > column["precision"]:
            raise ValueError(f"Numeric value '{value}' is out of range")
        return str(number)
    if kind in ("FLOAT", "DOUBLE", "REAL"):
        text = value.strip()
        if not NUMBER.match(text) and text.lower() not in ("nan", "inf", "-inf"):
            raise ValueError(f"Numeric value '{value}' is not recognized")
        return repr(float(text))
    if kind == "DATE":
        try:
            return datetime.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ValueError(f"Date '{value}' is not recognized") from None
    if kind == "TIME":
        match = TIME.match(value.strip())
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59 or int(match.group(3) or 0) > 59:
            raise ValueError(f"Time '{value}' is not recognized")
        return f"{int(match.group(1)):02}:{match.group(2)}:{match.group(3) or '00'}.{fraction(match.group(4))}"
    if kind.startswith("TIMESTAMP") or kind == "DATETIME":
        match = TIMESTAMP.match(value.strip())
        try:
            if not match:
                raise ValueError
            date = datetime.date.fromisoformat(match.group(1))
            hour, minute, second = int(match.group(2) or 0), int(match.group(3) or 0), int(match.group(4) or 0)
            datetime.time(hour, minute, second)
        except ValueError:
            raise ValueError(f"Timestamp '{value}' is not recognized") from None
        text = f"{date.isoformat()} {hour:02}:{minute:02}:{second:02}.{fraction(match.group(5))}"
        zone = match.group(6)
        if zone and kind != "TIMESTAMP_NTZ":
            text += " +00:00" if zone == "Z" else f" {zone[:3]}:{zone[-2:]}"
        return text
    if kind == "BOOLEAN":
        word = value.strip().upper()
        if word in TRUE_WORDS:
            return "TRUE"
        if word in FALSE_WORDS:
            return "FALSE"
        raise ValueError(f"Boolean value '{value}' is not recognized")
    return value


def sql_literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# --- running a COPY ------------------------------------------------------------------------------


class Session:
    """What a COPY needs from the proxy: statements on the caller's session, as rows."""

    def __init__(self, query, state: dict) -> None:
        # query(sql) -> list of rows (lists of text), raising SqlError on failure
        self.query = query
        self.state = state

    def context(self) -> tuple[str, str]:
        row = self.query("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")[0]
        return (row[0] or "", row[1] or "")


def table_columns(session: Session, key: tuple[str, str, str]) -> list[dict]:
    rows = session.query(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        f"WHERE table_catalog = {sql_literal(key[0])} AND table_schema = {sql_literal(key[1])} "
        f"AND table_name = {sql_literal(key[2])} ORDER BY ordinal_position"
    )
    return [
        {"name": r[0], "type": (r[1] or "TEXT").upper().split("(")[0], "precision": int(r[2]) if r[2] else None, "scale": int(r[3]) if r[3] else 0}
        for r in rows
    ]


def resolve_format(copy_options: dict, stage: dict, context: tuple[str, str]) -> dict:
    spec = copy_options.get("FILE_FORMAT")
    if isinstance(spec, list) and spec and isinstance(spec[0], tuple):
        inline = dict(spec)
        if "FORMAT_NAME" in inline:
            return named_format(split_name(inline["FORMAT_NAME"]) if isinstance(inline["FORMAT_NAME"], str) else inline["FORMAT_NAME"], context)
        return inline
    if spec is not None:
        return named_format(spec if isinstance(spec, list) else [spec], context)
    staged = stage.get("format")
    if staged and "name" in staged:
        return named_format(list(staged["name"]), context)
    if staged and "inline" in staged:
        return staged["inline"]
    return {"TYPE": "CSV"}


def named_format(parts: list[str], context: tuple[str, str]) -> dict:
    key = qualify(parts, context)
    with LOCK:
        fmt = FORMATS.get(key)
    if fmt is None:
        raise compilation_error(f"File format '{dotted(key)}' does not exist or not authorized.")
    return fmt


def configure_s3(endpoint: str) -> None:
    """Reads s3:// stages from this S3-compatible endpoint (the tests' moto)."""
    import tempfile

    with LOCK:
        S3["endpoint"] = endpoint
        if S3["cache"] is None:
            S3["cache"] = tempfile.mkdtemp(prefix="copy-emulator-s3-")


def stage_files(stage: dict, sub: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The stage's location and its files: (path below the stage, full URL, local path)."""
    url = stage["url"]
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return s3_stage_files(stage, parts)
    if parts.scheme != "file":
        raise SqlError(
            "091003", "22000",
            f"Failure using stage area. Cause: [the emulator reads file:// and s3:// stages only, not {parts.scheme}://]",
        )
    root = unquote(parts.path).rstrip("/")
    base = os.path.join(root, sub) if sub else root
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            local = os.path.join(directory, name)
            relative = os.path.relpath(local, root).replace(os.sep, "/")
            if sub and not relative.startswith(sub.strip("/") + "/") and relative != sub.strip("/"):
                continue
            found.append((relative, "file://" + root + "/" + relative, local))
    found.sort()
    return base, found


def s3_stage_files(stage: dict, parts) -> tuple[str, list[tuple[str, str, str]]]:
    """An s3:// stage's objects, fetched into the cache: each cached file's size and mtime are
    the object's, so that load metadata sees a rewritten object as a new file."""
    import boto3
    import botocore.exceptions

    with LOCK:
        endpoint, cache = S3["endpoint"], S3["cache"]
    if endpoint is None:
        raise SqlError(
            "091003", "22000",
            "Failure using stage area. Cause: [the emulator has no S3 server: POST /__compat/s3 first]",
        )
    credentials = stage.get("credentials")
    credentials = dict(credentials) if isinstance(credentials, list) else {}
    if not credentials and not stage.get("integration"):
        raise SqlError(
            "091003", "22000",
            "Failure using stage area. Cause: [Access Denied (Status Code: 403; Error Code: AccessDenied)]",
        )
    bucket, prefix = parts.netloc, unquote(parts.path).lstrip("/")
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=credentials.get("AWS_KEY_ID", "integration"),
        aws_secret_access_key=credentials.get("AWS_SECRET_KEY", "integration"),
        aws_session_token=credentials.get("AWS_TOKEN"),
    )
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                relative = key[len(prefix):].lstrip("/")
                stamp = int(obj["LastModified"].timestamp() * 1_000_000_000)
                local = os.path.join(cache, bucket, key + f".{obj['ETag'].strip(chr(34))}")
                if not os.path.exists(local):
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    client.download_file(bucket, key, local)
                    os.utime(local, ns=(stamp, stamp))
                found.append((relative, f"s3://{bucket}/{key}", local))
    except botocore.exceptions.ClientError as e:
        raise SqlError("091003", "22000", f"Failure using stage area. Cause: [{e}]") from None
    found.sort()
    return url_base(parts), found


def url_base(parts) -> str:
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def metadata_filename(full_url: str) -> str:
    """METADATA$FILENAME: the object's key, the full path after the bucket (see the module doc)."""
    parts = urlsplit(full_url)
    return unquote(parts.path).lstrip("/")


def copy_into(session: Session, sql: str, vanished: str | None = None) -> tuple[list[str], list[list]]:
    """Runs one COPY INTO <table>; returns the result's column names and rows."""
    copy = parse_copy(sql)
    context = session.context()
    table_key = qualify(copy["table"], context)
    columns = table_columns(session, table_key)
    if not columns:
        raise SqlError("002003", "42S02", f"SQL compilation error:\nTable '{dotted(table_key[1:] if len(copy['table']) < 3 else table_key)}' does not exist or not authorized.")
    by_name = {c["name"]: c for c in columns}
    targets = []
    for name in copy["columns"] or [c["name"] for c in columns]:
        if name not in by_name:
            raise SqlError("000904", "42000", f"SQL compilation error: error line 1 at position 0\ninvalid identifier '{name}'")
        targets.append(by_name[name])
    exprs = copy["exprs"]
    if exprs is not None and len(exprs) != len(targets):
        raise SqlError(
            "002020", "21S01",
            f"SQL compilation error:\nInsert value list does not match column list expecting {len(targets)} but got {len(exprs)}",
        )
    stage_parts, sub = stage_ref(copy["stage"].text)
    stage_key = qualify(stage_parts, context)
    with LOCK:
        stage = STAGES.get(stage_key)
    if stage is None:
        raise compilation_error(f"Stage '{dotted(stage_key)}' does not exist or not authorized.")
    fmt = resolve_format(copy["options"], stage, context)
    if str(fmt.get("TYPE", "CSV")).upper() != "CSV":
        raise SqlError("0A000", "0A000", f"the emulator reads CSV files only, not {fmt.get('TYPE')}")
    options = copy["options"]
    on_error = str(option(options, "ON_ERROR", "ABORT_STATEMENT")).upper()
    if on_error not in ("CONTINUE", "SKIP_FILE", "ABORT_STATEMENT"):
        raise SqlError("0A000", "0A000", f"the emulator does not know ON_ERROR = {on_error}")
    force = str(option(options, "FORCE", "FALSE")).upper() == "TRUE"
    _, available = stage_files(stage, sub)
    prefix = sub.strip("/") + "/" if sub.strip("/") else ""
    if "FILES" in options:
        wanted = options["FILES"] if isinstance(options["FILES"], list) else [options["FILES"]]
        chosen = []
        by_relative = {relative: (relative, url, local) for relative, url, local in available}
        for name in wanted:
            entry = by_relative.get(prefix + name.lstrip("/"))
            if entry is None:
                raise SqlError(
                    "091016", "22000",
                    f"Remote file '{stage['url'].rstrip('/')}/{prefix}{name}' was not found. There are several "
                    "potential causes. The file might not exist. The required credentials may be missing or invalid.",
                )
            chosen.append(entry)
    else:
        chosen = [e for e in available if e[0].startswith(prefix)]
    if "PATTERN" in options:
        pattern = re.compile(options["PATTERN"], re.DOTALL)
        chosen = [e for e in chosen if pattern.fullmatch(e[0])]
    # Referenced fields: $n in the select list, or every column in order.
    if exprs is None:
        exprs = [f"${i + 1}" for i in range(len(targets))]
        transforming = False
    else:
        check_transform(exprs)
        transforming = True
    scan_start = datetime.datetime.now(datetime.timezone.utc).isoformat()
    direct = {}  # field number -> column, for a select item that is just $n
    width = 0
    for expr, column in zip(exprs, targets):
        match = re.fullmatch(r"\$(\d+)", expr.strip())
        if match:
            direct.setdefault(int(match.group(1)), column)
        for number in re.findall(r"\$(\d+)", expr):
            width = max(width, int(number))
    check_count = not transforming and str(option(fmt, "ERROR_ON_COLUMN_COUNT_MISMATCH", "TRUE")).upper() == "TRUE"
    null_if = option(fmt, "NULL_IF", ["\\N"])
    null_if = set(null_if if isinstance(null_if, list) else [null_if])
    empty_as_null = str(option(fmt, "EMPTY_FIELD_AS_NULL", "TRUE")).upper() == "TRUE"
    table_name = table_key[2]

    loaded = LOADED.setdefault(table_key, {})
    results, pending, inserts = [], [], []
    for relative, url, local in chosen:
        if vanished and vanished in relative:
            continue
        stat = os.stat(local)
        tag = (stat.st_size, stat.st_mtime_ns)
        with LOCK:
            seen = loaded.get(url) == tag or any(p[:3] == (table_key, url, tag) for p in session.state.get("pending_loads", []))
        if seen and not force:
            continue
        parsed, good, errors, first = 0, [], 0, None
        try:
            text = read_file(local, fmt)
        except ValueError as e:
            errors, first = 1, (str(e), None, None, None)
            text = None
        if text is not None:
            for line, record in records(text, fmt):
                parsed += 1
                try:
                    if isinstance(record, RowError):
                        raise record
                    if check_count and len(record) != len(targets):
                        raise RowError(
                            f"Number of columns in file ({len(record)}) does not match that of the corresponding "
                            f"table ({len(targets)}), use file format option error_on_column_count_mismatch=false "
                            "to ignore this error",
                            record[-1][2] if record else 1,
                            None,
                        )
                    values = []
                    for number in range(1, width + 1):
                        if number > len(record):
                            values.append(None)
                            continue
                        raw, enclosed, position = record[number - 1]
                        if raw in null_if or (raw == "" and not enclosed and empty_as_null):
                            values.append(None)
                            continue
                        column = direct.get(number)
                        if column is None:
                            values.append(raw)
                            continue
                        try:
                            values.append(convert(raw, column))
                        except ValueError as e:
                            raise RowError(str(e), position, number) from None
                    good.append(values)
                except RowError as e:
                    errors += 1
                    if first is None:
                        column = direct.get(e.column) if e.column else None
                        name = f'"{table_name}"["{column["name"]}":{e.column}]' if column else (f'"{table_name}"[{e.column}]' if e.column else None)
                        first = (e.message, line, e.character, name)
                    if on_error == "ABORT_STATEMENT":
                        raise SqlError(
                            "100038", "22018",
                            f"{e.message}\n  File '{relative}', line {line}, character {e.character}\n"
                            f"  Row {parsed} starts at line {line}, column {first[3] or ''}\n"
                            "  If you would like to continue loading when an error is encountered, use other values "
                            "such as 'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option.",
                        ) from None
        if on_error == "ABORT_STATEMENT" and text is None:
            raise SqlError("100069", "22000", first[0])
        if on_error == "SKIP_FILE" and errors:
            good = []
        loaded_rows = len(good)
        if errors == 0:
            status = "LOADED"
        elif loaded_rows == 0:
            status = "LOAD_FAILED"
        else:
            status = "PARTIALLY_LOADED"
        inserts.append((metadata_filename(url), good))
        record = {
            "FILE_NAME": relative, "STAGE_LOCATION": stage["url"], "ROW_COUNT": loaded_rows, "ROW_PARSED": parsed,
            "STATUS": {"LOADED": "Loaded", "PARTIALLY_LOADED": "Partially loaded", "LOAD_FAILED": "Load failed"}[status],
            "FIRST_ERROR_MESSAGE": first[0] if first else None,
        }
        # failed files are in the history too, but not in the load metadata
        pending.append((table_key, url if status != "LOAD_FAILED" else None, tag, record))
        error_limit = parsed if on_error == "CONTINUE" else 1
        results.append(
            [url, status, parsed, loaded_rows, max(error_limit, 1), errors]
            + (list(first) if first else [None, None, None, None])
        )
    # Only once every file is read: an aborted COPY (ABORT_STATEMENT) loads nothing.
    for filename, good in inserts:
        for start in range(0, len(good), BATCH_ROWS):
            insert(session, table_key, targets, exprs, width, good[start : start + BATCH_ROWS], filename, start, scan_start)
    with LOCK:
        if session.state.get("in_transaction"):
            session.state.setdefault("pending_loads", []).extend(pending)
        else:
            commit_loads(pending)
    return results


def commit_loads(pending: list) -> None:
    """Load metadata and history of committed COPYs (under LOCK)."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    for key, url, tag, record in pending:
        if url is not None:
            LOADED.setdefault(key, {})[url] = tag
        HISTORY.setdefault(key, []).append(dict(record, LAST_LOAD_TIME=now, TABLE_NAME=key[2], SCHEMA_NAME=key[1]))


COPY_HISTORY_CALL = re.compile(
    r"TABLE\s*\(\s*(?:(?:\w+|\"[^\"]+\")\.)?INFORMATION_SCHEMA\.COPY_HISTORY\s*\((?P<args>[^()]*(?:\([^()]*(?:\([^()]*\)[^()]*)*\)[^()]*)*)\)\s*\)",
    re.IGNORECASE,
)
HISTORY_COLUMNS = [("FILE_NAME", "VARCHAR"), ("STAGE_LOCATION", "VARCHAR"), ("LAST_LOAD_TIME", "TIMESTAMP_LTZ"),
                   ("ROW_COUNT", "NUMBER"), ("ROW_PARSED", "NUMBER"), ("FIRST_ERROR_MESSAGE", "VARCHAR"),
                   ("STATUS", "VARCHAR"), ("TABLE_NAME", "VARCHAR"), ("SCHEMA_NAME", "VARCHAR")]


def is_copy_history(sql: str) -> bool:
    return COPY_HISTORY_CALL.search(sql) is not None


# INFORMATION_SCHEMA.COPY_HISTORY "returns load activity ... within the last 14 days"
# (Snowflake docs, COPY_HISTORY table function); the load metadata COPY skips by lasts 64 days.
COPY_HISTORY_DAYS = 14


def age_loads(database: str, days: int) -> int:
    """Test control: the database's committed loads as if made `days` earlier (their load
    metadata stays, as Snowflake's does for 64 days). Returns how many were aged."""
    aged = 0
    with LOCK:
        for key, records in HISTORY.items():
            if key[0].upper() != database.upper():
                continue
            for record in records:
                when = datetime.datetime.fromisoformat(record["LAST_LOAD_TIME"])
                record["LAST_LOAD_TIME"] = (when - datetime.timedelta(days=days)).isoformat()
                aged += 1
    return aged


def copy_history_sql(sql: str, context: tuple[str, str]) -> str:
    """The statement with its TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => '…', …)) as
    a VALUES list of the table's committed loads of the last 14 days (the function's
    retention), for fakesnow to evaluate the rest. A START_TIME argument within those days is
    not applied (the emulator keeps one test run's history)."""
    match = COPY_HISTORY_CALL.search(sql)
    name = re.search(r"TABLE_NAME\s*=>\s*'((?:[^']|'')*)'", match["args"], re.IGNORECASE)
    if name is None:
        raise SqlError("001044", "42P13", "SQL compilation error:\nCOPY_HISTORY needs TABLE_NAME => '<table>'.")
    key = qualify(split_name(name[1].replace("''", "'")), context)
    oldest = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=COPY_HISTORY_DAYS)
    with LOCK:
        rows = [dict(r) for r in HISTORY.get(key, [])
                if datetime.datetime.fromisoformat(r["LAST_LOAD_TIME"]) >= oldest]
    names = [n for n, _ in HISTORY_COLUMNS]
    if rows:
        values = ",\n".join(
            "(" + ", ".join("NULL" if r.get(n) is None else (str(r[n]) if isinstance(r[n], int) else sql_literal(str(r[n]))) for n in names) + ")"
            for r in rows
        )
        select = ", ".join(f'CAST(h.c{i} AS {kind}) AS "{n}"' for i, (n, kind) in enumerate(HISTORY_COLUMNS, 1))
        table = f"(SELECT {select} FROM (VALUES {values}) AS h({', '.join(f'c{i}' for i in range(1, len(names) + 1))}))"
    else:
        table = "(SELECT " + ", ".join(f'CAST(NULL AS {kind}) AS "{n}"' for n, kind in HISTORY_COLUMNS) + " WHERE 1 = 0)"
    return sql[: match.start()] + table + " AS copy_history" + sql[match.end() :]


UNSUPPORTED_IN_TRANSFORM = re.compile(
    r"\b(CURRENT_TIMESTAMP|SYSDATE|GETDATE|CURRENT_DATE|CURRENT_TIME|LOCALTIMESTAMP|LOCALTIME|SYSTIMESTAMP)\b", re.IGNORECASE
)


def check_transform(exprs: list[str]) -> None:
    for expr in exprs:
        if match := UNSUPPORTED_IN_TRANSFORM.search(expr):
            raise compilation_error(
                f"SQL compilation error:\n{match[1].upper()} is not supported in a COPY transformation "
                "(not among the documented functions for transforming data during a load)",
                code="002016",
                sql_state="22000",
            )


def insert(session: Session, table_key, targets, exprs, width, rows, filename, offset, scan_start: str) -> None:
    def field(expr: str) -> str:
        expr = re.sub(r"\$(\d+)", lambda m: f"v.c{m.group(1)}", expr)
        expr = re.sub(r"\bMETADATA\$START_SCAN_TIME\b", f"CAST('{scan_start}' AS TIMESTAMP_LTZ)", expr, flags=re.IGNORECASE)
        expr = re.sub(r"\bMETADATA\$FILENAME\b", "v.meta_filename", expr, flags=re.IGNORECASE)
        return re.sub(r"\bMETADATA\$FILE_ROW_NUMBER\b", "v.meta_row", expr, flags=re.IGNORECASE)

    names = ", ".join(f"c{i}" for i in range(1, width + 1))
    values = ",\n".join(
        "(" + ", ".join([sql_literal(v) for v in row] + [sql_literal(filename), str(offset + n + 1)]) + ")"
        for n, row in enumerate(rows)
    )
    table = ".".join(quote(part) for part in table_key)
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c['name']) for c in targets)})\n"
        f"SELECT {', '.join(field(e) for e in exprs)}\n"
        f"FROM (VALUES {values}) AS v({names + ', ' if names else ''}meta_filename, meta_row)"
    )
    session.query(sql)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def transaction_statement(sql: str) -> str | None:
    """BEGIN / COMMIT / ROLLBACK, as the load metadata must follow them."""
    word = sql.strip().rstrip(";").strip().upper()
    if word in ("BEGIN", "BEGIN TRANSACTION", "BEGIN WORK", "START TRANSACTION"):
        return "begin"
    if word in ("COMMIT", "COMMIT WORK"):
        return "commit"
    if word in ("ROLLBACK", "ROLLBACK WORK"):
        return "rollback"
    return None


def after_transaction_statement(state: dict, what: str) -> None:
    with LOCK:
        if what == "begin":
            state["in_transaction"] = True
            state["pending_loads"] = []
            return
        if what == "commit":
            commit_loads(state.get("pending_loads", []))
        state["in_transaction"] = False
        state["pending_loads"] = []


RESULT_COLUMNS = [
    ("file", "VARCHAR"),
    ("status", "VARCHAR"),
    ("rows_parsed", "NUMBER"),
    ("rows_loaded", "NUMBER"),
    ("error_limit", "NUMBER"),
    ("errors_seen", "NUMBER"),
    ("first_error", "VARCHAR"),
    ("first_error_line", "NUMBER"),
    ("first_error_character", "NUMBER"),
    ("first_error_column_name", "VARCHAR"),
]


def result_sql(rows: list[list]) -> str:
    """A query whose result is COPY's: fakesnow then encodes it as it encodes any other."""
    if not rows:
        return "SELECT 'Copy executed with 0 files processed.' AS \"status\""
    values = ",\n".join(
        "(" + ", ".join("NULL" if v is None else (str(v) if isinstance(v, int) else sql_literal(str(v))) for v in row) + ")"
        for row in rows
    )
    select = ", ".join(f'CAST(r.c{i} AS {kind}) AS "{name}"' for i, (name, kind) in enumerate(RESULT_COLUMNS, 1))
    names = ", ".join(f"c{i}" for i in range(1, len(RESULT_COLUMNS) + 1))
    return f"SELECT {select} FROM (VALUES {values}) AS r({names})"
