fn main() -> std::process::ExitCode {
    job_kit::main::<webhook_alert::WebhookAlert>()
}
