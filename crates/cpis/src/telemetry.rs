//! Structured JSON logs. Nothing logged anywhere carries an NHS number:
//! `NhsNumber` prints redacted, and no handler logs bodies or query strings.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_writer(std::io::stdout)
        .try_init();
}

/// For the one-shot commands (`token`, `demo`): warnings and errors (a data
/// directory tightened, say) as plain text on stderr, so that stdout keeps
/// only the command's output (`TOKEN=$(cpis token ...)`).
pub fn init_stderr() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
