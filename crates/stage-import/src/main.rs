fn main() -> std::process::ExitCode {
    job_kit::main::<stage_import::StageImport>()
}
