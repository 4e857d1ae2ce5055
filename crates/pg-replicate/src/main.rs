fn main() -> std::process::ExitCode {
    job_kit::main::<pg_replicate::PgReplicate>()
}
