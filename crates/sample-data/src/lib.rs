//! Sample data in the layouts and formats the real sources have, so that the demo, the tests and
//! the benchmark load something that looks like production: gzipped CloudFront standard logs
//! whose query strings carry server telemetry, release-download CloudFront logs, ELB classic
//! access logs for the three push-proxy load balancers under `AWSLogs/<account>/
//! elasticloadbalancing/<region>/YYYY/MM/DD/`, and a nightly license CSV export. A few lines are
//! malformed on purpose, to show per-file error reporting.
//!
//! Deterministic: the same seed and dates give the same bytes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::civil::Date;

/// The values the built-in catalog's templates need, as the demo sets them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub release_location: String,
    pub diagnostic_locations: [String; 2],
    pub aws_account_id: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            release_location: "E1RELEASES".into(),
            diagnostic_locations: ["E1DIAGNOSTICS".into(), "E2DIAGNOSTICS".into()],
            aws_account_id: "123456789012".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub root: PathBuf,
    pub days: Vec<Date>,
    pub layout: Layout,
    pub seed: u64,
    /// Mattermost servers that ping the diagnostics endpoint.
    pub servers: usize,
    /// CloudFront log files per diagnostics location and day.
    pub files_per_day: usize,
    /// Rows per CloudFront file.
    pub rows_per_file: usize,
    /// Lines that fail to parse, on purpose.
    pub malformed: bool,
}

/// What was written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub files: usize,
    pub rows: usize,
    pub bytes_uncompressed: u64,
}

impl Written {
    fn add(&mut self, other: Written) {
        self.files += other.files;
        self.rows += other.rows;
        self.bytes_uncompressed += other.bytes_uncompressed;
    }
}

pub const CLOUDFRONT_FIELDS: &str = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

const VERSIONS: &[&str] = &["9.11.6", "10.2.1", "10.3.0", "10.4.2", "10.5.0"];
const EDGES: &[&str] = &[
    "IAD89-C1", "FRA56-P3", "NRT57-C2", "GRU3-C1", "SFO5-P1", "LHR61-P5",
];
const DATABASES: &[&str] = &["postgres", "postgres", "postgres", "mysql"];
const AGENTS: &[&str] = &[
    "Mattermost-Server/10.4.2",
    "Go-http-client/1.1",
    "Mozilla/5.0%20(X11;%20Linux%20x86_64)",
    "curl/8.5.0",
    "Wget/1.21.4",
];

pub fn write(plan: &Plan) -> io::Result<Written> {
    let mut total = Written::default();
    for (day_index, day) in plan.days.iter().enumerate() {
        let mut rng = fastrand::Rng::with_seed(plan.seed ^ ((day_index as u64 + 1) * 0x9E37_79B9));
        let malformed_today = plan.malformed && day_index % 3 == 1;
        total.add(licenses(plan, *day, &mut rng, malformed_today)?);
        total.add(releases(plan, *day, &mut rng)?);
        for (i, location) in plan.layout.diagnostic_locations.iter().enumerate() {
            total.add(diagnostics(
                plan,
                *day,
                location,
                i,
                &mut rng,
                malformed_today,
            )?);
        }
        for (stage, region, lb) in [
            ("push-proxy", "us-east-1", "push-proxy-us"),
            ("push-proxy-test", "us-east-1", "push-proxy-test"),
            ("push-proxy-de", "eu-central-1", "push-proxy-de"),
        ] {
            total.add(elb(
                plan,
                *day,
                stage,
                region,
                lb,
                &mut rng,
                malformed_today && stage == "push-proxy",
            )?);
        }
    }
    Ok(total)
}

fn create(path: &Path) -> io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::File::create(path)
}

/// Counts what goes through, for the summary.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn gzip_file(path: &Path) -> io::Result<Counting<io::BufWriter<GzEncoder<std::fs::File>>>> {
    // Level 1: CloudFront's own files compress better, but the benchmark writes gigabytes.
    let encoder = GzEncoder::new(create(path)?, Compression::fast());
    Ok(Counting {
        inner: io::BufWriter::with_capacity(1 << 20, encoder),
        bytes: 0,
    })
}

fn finish_gzip(writer: Counting<io::BufWriter<GzEncoder<std::fs::File>>>) -> io::Result<u64> {
    let bytes = writer.bytes;
    writer
        .inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .finish()?;
    Ok(bytes)
}

/// A Mattermost-style 26-character id, one per server: the low 104 bits of an odd multiple, which
/// differ for every server (the high digits of a product do not).
fn server_id(i: usize) -> String {
    let mixed = (i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    format!("{:026x}", mixed & ((1 << 104) - 1))
}

fn ip(rng: &mut fastrand::Rng) -> String {
    // Documentation ranges only (RFC 5737).
    let nets = ["192.0.2", "198.51.100", "203.0.113"];
    format!("{}.{}", nets[rng.usize(..nets.len())], rng.u8(1..255))
}

fn request_id(rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..56)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect()
}

/// One CloudFront standard log line (33 fields, tab-separated, `-` for none).
#[allow(clippy::too_many_arguments)]
fn cloudfront_line(
    rng: &mut fastrand::Rng,
    day: Date,
    second: u32,
    host: &str,
    stem: &str,
    status: u16,
    query: &str,
    bytes: u64,
) -> String {
    let time = format!(
        "{:02}:{:02}:{:02}",
        second / 3600,
        second / 60 % 60,
        second % 60
    );
    let agent = AGENTS[rng.usize(..AGENTS.len())];
    let taken = rng.u32(1..900) as f64 / 1000.0;
    format!(
        "{day}\t{time}\t{edge}\t{bytes}\t{ip}\tGET\t{cf}.cloudfront.net\t{stem}\t{status}\t-\t{agent}\t{query}\t-\t{result}\t{rid}\t{host}\thttps\t{cs}\t{taken:.3}\t-\tTLSv1.3\tTLS_AES_128_GCM_SHA256\t{result}\tHTTP/2.0\t-\t-\t{port}\t{ttfb:.3}\t{result}\t{ctype}\t{bytes}\t-\t-\n",
        edge = EDGES[rng.usize(..EDGES.len())],
        ip = ip(rng),
        cf = "d1a2b3c4e5f6g7",
        result = if status < 400 { "Miss" } else { "Error" },
        rid = request_id(rng),
        cs = rng.u32(200..900),
        port = rng.u32(1024..65535),
        ttfb = taken * 0.8,
        ctype = if stem.ends_with(".gz") {
            "application/gzip"
        } else {
            "application/json"
        },
    )
}

fn diagnostics(
    plan: &Plan,
    day: Date,
    location: &str,
    location_index: usize,
    rng: &mut fastrand::Rng,
    malformed: bool,
) -> io::Result<Written> {
    let mut written = Written::default();
    let files = plan.files_per_day.max(1);
    for file_index in 0..files {
        let hour = (file_index * 24 / files) as u32;
        let name = format!(
            "diagnostics/{location}/{location}.{day}-{hour:02}.{:08x}.gz",
            rng.u32(..)
        );
        let mut out = gzip_file(&plan.root.join(&name))?;
        out.write_all(format!("#Version: 1.0\n#Fields: {CLOUDFRONT_FIELDS}\n").as_bytes())?;
        for row in 0..plan.rows_per_file {
            // Each server pings about once a day, through one of the two distributions: even
            // servers through the first, odd ones through the second.
            let server = ((row * files + file_index) * 2 + location_index) % plan.servers.max(1);
            let version = VERSIONS[server % VERSIONS.len()];
            let users = 5 + (server * 37 % 500) as u64;
            let active = users * rng.u64(40..95) / 100;
            let query = format!(
                "id={}&b={version}.{}&be=true&db={}&os=linux&v={version}&uc={users}&auc={active}&tc={}",
                server_id(server),
                rng.u32(1000..9999),
                DATABASES[server % DATABASES.len()],
                1 + server % 12,
            );
            let second = hour * 3600 + rng.u32(..3600);
            let line = cloudfront_line(
                rng,
                day,
                second,
                "securityupdatecheck.mattermost.com",
                "/security",
                200,
                &query,
                312,
            );
            out.write_all(line.as_bytes())?;
            written.rows += 1;
        }
        if malformed && file_index == 0 && location_index == 0 {
            // A status that is not a number: one rejected row, the rest of the file loads.
            out.write_all(format!("{day}\t12:00:00\tIAD89-C1\t312\t192.0.2.1\tGET\td1.cloudfront.net\t/security\tOK\t-\t-\tid=broken\t-\tMiss\tx\th\thttps\t1\t0.1\t-\t-\t-\tMiss\tHTTP/2.0\t-\t-\t1\t0.1\tMiss\t-\t1\t-\t-\n").as_bytes())?;
        }
        written.bytes_uncompressed += finish_gzip(out)?;
        written.files += 1;
    }
    Ok(written)
}

fn releases(plan: &Plan, day: Date, rng: &mut fastrand::Rng) -> io::Result<Written> {
    let location = &plan.layout.release_location;
    let name = format!(
        "releases/releases.mattermost.com-cloudfront/{location}/{location}.{day}-00.{:08x}.gz",
        rng.u32(..)
    );
    let mut out = gzip_file(&plan.root.join(name))?;
    out.write_all(format!("#Version: 1.0\n#Fields: {CLOUDFRONT_FIELDS}\n").as_bytes())?;
    let mut written = Written {
        files: 1,
        ..Written::default()
    };
    for _ in 0..(plan.rows_per_file / 4).max(10) {
        let version = VERSIONS[rng.usize(..VERSIONS.len())];
        let (stem, status) = match rng.u8(..20) {
            0 => (
                format!("/{version}/mattermost-{version}-linux-arm64.tar.gz"),
                404,
            ),
            1..=3 => (
                format!("/{version}/mattermost-{version}-linux-amd64.tar.gz"),
                304,
            ),
            _ => (
                format!("/{version}/mattermost-{version}-linux-amd64.tar.gz"),
                200,
            ),
        };
        let second = rng.u32(..86_400);
        let line = cloudfront_line(
            rng,
            day,
            second,
            "releases.mattermost.com",
            &stem,
            status,
            "-",
            412_000_000,
        );
        out.write_all(line.as_bytes())?;
        written.rows += 1;
    }
    written.bytes_uncompressed = finish_gzip(out)?;
    Ok(written)
}

fn elb(
    plan: &Plan,
    day: Date,
    stage: &str,
    region: &str,
    lb: &str,
    rng: &mut fastrand::Rng,
    malformed: bool,
) -> io::Result<Written> {
    let account = &plan.layout.aws_account_id;
    let mut written = Written::default();
    for hour in [0u32, 12] {
        let name = format!(
            "{stage}/AWSLogs/{account}/elasticloadbalancing/{region}/{}/{account}_elasticloadbalancing_{region}_{lb}_{}T{hour:02}00Z_{}_{:08x}.log",
            day.strftime("%Y/%m/%d"),
            day.strftime("%Y%m%d"),
            "10.0.1.20",
            rng.u32(..)
        );
        let mut out = io::BufWriter::new(create(&plan.root.join(name))?);
        for _ in 0..(plan.rows_per_file / 8).max(10) {
            let second = hour * 3600 + rng.u32(..43_200);
            let status = if rng.u8(..50) == 0 { 502 } else { 200 };
            let (platform, path) = if rng.bool() {
                ("apple", "send_push")
            } else {
                ("android", "send_push")
            };
            let line = format!(
                "{day}T{:02}:{:02}:{:02}.{:06}Z {lb} {}:{} 10.0.1.{}:8066 0.000{:03} 0.0{:02} 0.000{:03} {status} {status} {} 64 \"POST https://push.mattermost.com:443/api/v1/{path} HTTP/1.1\" \"Go-http-client/1.1 ({platform})\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2\n",
                second / 3600,
                second / 60 % 60,
                second % 60,
                rng.u32(..1_000_000),
                ip(rng),
                rng.u32(1024..65535),
                rng.u8(10..30),
                rng.u32(..999),
                rng.u32(..99),
                rng.u32(..999),
                rng.u32(300..2000),
            );
            written.bytes_uncompressed += line.len() as u64;
            out.write_all(line.as_bytes())?;
            written.rows += 1;
        }
        if malformed && hour == 12 {
            // A request field whose closing quote is missing.
            out.write_all(format!("{day}T13:00:00.000000Z {lb} 192.0.2.7:1 10.0.1.9:8066 0.1 0.1 0.1 200 200 1 1 \"POST https://push.mattermost.com:443/api/v1/send_push HTTP/1.1 \"-\" - -\n").as_bytes())?;
        }
        out.flush()?;
        written.files += 1;
    }
    Ok(written)
}

fn licenses(
    plan: &Plan,
    day: Date,
    rng: &mut fastrand::Rng,
    malformed: bool,
) -> io::Result<Written> {
    let path = plan.root.join(format!("licenses/{day}/licenses-{day}.csv"));
    let mut out = io::BufWriter::new(create(&path)?);
    out.write_all(b"license_id,customer_id,company_name,contact_email,sku,edition,seats,is_trial,issued_at,starts_at,expires_at,features\n")?;
    let mut written = Written {
        files: 1,
        ..Written::default()
    };
    let companies = [
        "Acme Corp",
        "Globex, Inc.",
        "Initech",
        "Umbrella \"Labs\"",
        "Stark Industries",
        "Wayne Enterprises",
    ];
    for i in 0..plan.servers.max(6) {
        let company = companies[i % companies.len()];
        let trial = i % 7 == 0;
        let sku = if trial {
            "trial"
        } else if i % 3 == 0 {
            "enterprise"
        } else {
            "professional"
        };
        let seats = if trial { 50 } else { 100 + (i * 97 % 4900) };
        let issued = day
            .checked_sub(jiff::Span::new().days((i % 300) as i64 + 1))
            .unwrap_or(day);
        let expires = issued
            .checked_add(jiff::Span::new().years(1))
            .unwrap_or(issued);
        let features = format!(
            "{{\"\"users\"\": {seats},\n\"\"ldap\"\": {},\n\"\"saml\"\": {}}}",
            i % 2 == 0,
            i % 3 == 0
        );
        let line = format!(
            "lic-{i:06},cus-{:06},\"{}\",admin{i}@example.com,{sku},{},{seats},{trial},{issued}T{:02}:00:00,{issued},{expires},\"{features}\"\n",
            i * 7 % 100_000,
            company.replace('"', "\"\""),
            if sku == "enterprise" { "E20" } else { "E10" },
            rng.u8(..24),
        );
        written.bytes_uncompressed += line.len() as u64;
        out.write_all(line.as_bytes())?;
        written.rows += 1;
    }
    if malformed {
        // Seats that are not a number.
        out.write_all(format!("lic-bad,cus-bad,Bad Row Ltd,bad@example.com,professional,E10,many,false,{day}T00:00:00,{day},{day},\"{{}}\"\n").as_bytes())?;
    }
    out.flush()?;
    Ok(written)
}

/// CloudFront logs only, for the load benchmark: `files` files of `rows_per_file` rows.
pub fn cloudfront_bulk(
    root: &Path,
    location: &str,
    day: Date,
    files: usize,
    rows_per_file: usize,
    seed: u64,
) -> io::Result<Written> {
    let plan = Plan {
        root: root.to_owned(),
        days: vec![day],
        layout: Layout::default(),
        seed,
        servers: rows_per_file * files,
        files_per_day: files,
        rows_per_file,
        malformed: false,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    diagnostics(&plan, day, location, 0, &mut rng, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_has_an_id_of_its_own() {
        let ids: std::collections::BTreeSet<String> = (0..100_000).map(server_id).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| id.len() == 26));
    }

    #[test]
    fn writes_every_source_in_its_layout_deterministically() {
        let run = |dir: &Path| {
            let plan = Plan {
                root: dir.to_owned(),
                days: vec![
                    jiff::civil::date(2026, 11, 25),
                    jiff::civil::date(2026, 11, 26),
                ],
                layout: Layout::default(),
                seed: 7,
                servers: 20,
                files_per_day: 2,
                rows_per_file: 40,
                malformed: true,
            };
            write(&plan).unwrap()
        };
        let a = tempfile_dir();
        let b = tempfile_dir();
        let written = run(&a);
        run(&b);
        let list = |dir: &Path| {
            let mut out = Vec::new();
            let mut stack = vec![dir.to_owned()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p)
                    } else {
                        out.push((
                            p.strip_prefix(dir).unwrap().to_owned(),
                            std::fs::read(&p).unwrap(),
                        ))
                    }
                }
            }
            out.sort();
            out
        };
        let (la, lb) = (list(&a), list(&b));
        assert_eq!(la, lb, "same seed, same bytes");
        assert_eq!(written.files, la.len());
        let names: Vec<String> = la.iter().map(|(p, _)| p.display().to_string()).collect();
        for expected in [
            "licenses/2026-11-26/licenses-2026-11-26.csv",
            "push-proxy-de/AWSLogs/123456789012/elasticloadbalancing/eu-central-1/2026/11/26/",
            "diagnostics/E1DIAGNOSTICS/E1DIAGNOSTICS.2026-11-26-00.",
            "releases/releases.mattermost.com-cloudfront/E1RELEASES/E1RELEASES.2026-11-25-00.",
        ] {
            assert!(
                names.iter().any(|n| n.starts_with(expected)),
                "{expected} missing from {names:#?}"
            );
        }
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sample-data-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
