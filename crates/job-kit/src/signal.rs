//! SIGTERM and SIGINT become a cancellation the job observes. Kubernetes sends SIGTERM and, after
//! the pod's grace period, SIGKILL: a job that notices the token can stop cleanly in between
//! (cancel its query, roll back). A second signal ends the process at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::exit::Exit;

/// Registers for SIGTERM and SIGINT now, then listens until the process ends. Registration
/// must not wait for the listener task to be first polled: on a current-thread runtime that is
/// only when the job first yields, and a signal before then would kill the process outright.
/// Call it inside the runtime, before the job starts.
pub fn cancel_on_signal(cancel: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT; the job cannot stop cleanly");
        return;
    };
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if cancel.is_cancelled() {
                tracing::error!(signal = name, "second signal: exiting now");
                crate::status::record(
                    Exit::Interrupted.code(),
                    Some(&format!("{name} received twice: exited at once")),
                );
                #[allow(clippy::disallowed_methods)]
                std::process::exit(Exit::Interrupted.code().into());
            }
            tracing::warn!(signal = name, "received {name}: stopping");
            cancel.cancel();
        }
    });
}
