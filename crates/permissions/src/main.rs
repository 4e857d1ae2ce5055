fn main() -> std::process::ExitCode {
    job_kit::main::<permissions::Permissions>()
}
