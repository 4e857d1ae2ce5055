//! `sample-data`: writes a stage directory for the demo, the tests and the benchmark.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sample_data::{Layout, Plan, cloudfront_bulk, write};

#[derive(Parser)]
#[command(
    version,
    about = "Writes realistic, deterministic sample files in the layouts stage-import loads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every built-in source, for a run of days (the stage root is STAGE_ROOT for stage-import)
    Stage {
        #[arg(long)]
        out: PathBuf,
        /// How many days, ending with --end
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// The last day; default: yesterday (UTC)
        #[arg(long)]
        end: Option<jiff::civil::Date>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Mattermost servers pinging the diagnostics endpoint
        #[arg(long, default_value_t = 300)]
        servers: usize,
        /// CloudFront files per diagnostics location and day
        #[arg(long, default_value_t = 4)]
        files_per_day: usize,
        #[arg(long, default_value_t = 400)]
        rows_per_file: usize,
        /// Write no malformed lines
        #[arg(long)]
        clean: bool,
    },
    /// Only CloudFront diagnostics logs, many rows, for the load benchmark
    Cloudfront {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        date: jiff::civil::Date,
        #[arg(long, default_value = "E1DIAGNOSTICS")]
        location: String,
        #[arg(long)]
        files: usize,
        #[arg(long)]
        rows_per_file: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Stage {
            out,
            days,
            end,
            seed,
            servers,
            files_per_day,
            rows_per_file,
            clean,
        } => {
            let end = end.unwrap_or_else(|| {
                let today = jiff::Timestamp::now()
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date();
                today.yesterday().expect("a day before today")
            });
            let days = (0..days)
                .rev()
                .filter_map(|back| end.checked_sub(jiff::Span::new().days(back)).ok())
                .collect();
            write(&Plan {
                root: out.clone(),
                days,
                layout: Layout::default(),
                seed,
                servers,
                files_per_day,
                rows_per_file,
                malformed: !clean,
            })
            .map(|w| (out, w))
        }
        Command::Cloudfront {
            out,
            date,
            location,
            files,
            rows_per_file,
            seed,
        } => cloudfront_bulk(&out, &location, date, files, rows_per_file, seed).map(|w| (out, w)),
    };
    match result {
        Ok((out, written)) => {
            let _ = writeln!(
                std::io::stdout(),
                "wrote {} files, {} rows, {:.1} MB uncompressed under {}",
                written.files,
                written.rows,
                written.bytes_uncompressed as f64 / 1e6,
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "sample-data: {e}");
            ExitCode::FAILURE
        }
    }
}
