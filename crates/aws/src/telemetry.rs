//! Logging for the Lambda functions: JSON lines (Lambda adds the time), at
//! the level `RUST_LOG` asks for (the stack's `LogLevel` parameter), with the
//! libraries that can see request and response content capped at INFO.
//!
//! Why the cap: at DEBUG and TRACE the Lambda runtime can log the invocation
//! event (an HTTP body naming a child), and the AWS SDK and HTTP stack can
//! log what they send and receive (DynamoDB items hold NHS numbers). An
//! operator turning the level up to chase a fault must not turn on a leak.
//!
//! And one floor: the enumeration watch's record (hazard H6) is written at
//! every level, since a detection control must not switch off when an operator
//! turns the logs down (see `ENUMERATION_WATCH_TARGET`).

use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// Where `cpis-http` writes one INFO line per answered care-setting check
/// (`crates/http/src/usecase.rs`, caller and organisation, never the child): the
/// line the stack's Contributor Insights rule ranks callers by. Kept at INFO
/// at least whatever `RUST_LOG` says (the infra tests check both ends).
pub const ENUMERATION_WATCH_TARGET: &str = "cpis_http::care";

/// Library targets held at INFO or quieter whatever `RUST_LOG` says.
const CONTENT_SEEING_LIBRARIES: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_lambda_events",
    "aws_config",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sdk_dynamodb",
    "aws_sdk_sqs",
    "aws_sdk_sns",
    "aws_sdk_secretsmanager",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// The filter for `requested` (a `RUST_LOG` value; INFO when absent or invalid).
pub fn filter(requested: Option<&str>) -> EnvFilter {
    let mut filter = requested
        .and_then(|r| EnvFilter::try_new(r).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // The floor takes the most verbose level asked for anywhere, so that at
    // TRACE or DEBUG the module is not held back to INFO either.
    let floor = filter
        .max_level_hint()
        .map_or(LevelFilter::INFO, |asked| asked.max(LevelFilter::INFO));
    for target in CONTENT_SEEING_LIBRARIES {
        // Later directives for the same target win, so these override RUST_LOG.
        if let Ok(cap) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(cap);
        }
    }
    if let Ok(watch) = format!("{ENUMERATION_WATCH_TARGET}={floor}").parse::<Directive>() {
        filter = filter.add_directive(watch);
    }
    filter
}

/// Installs the functions' subscriber; call once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .json()
        .without_time()
        .with_env_filter(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged_with(requested: Option<&str>) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter(requested))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime", "library trace");
            tracing::debug!(target: "aws_smithy_runtime::client", "library debug");
            tracing::info!(target: "aws_smithy_runtime::client", "library info");
            tracing::trace!(target: "cpis_aws::dynamo", "our trace");
            tracing::debug!(target: "plan_upload", "our debug");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn trace_everywhere_still_keeps_the_libraries_at_info() {
        let text = logged_with(Some("trace"));
        assert!(text.contains("our trace") && text.contains("our debug"));
        assert!(text.contains("library info"));
        assert!(!text.contains("library trace") && !text.contains("library debug"));
    }

    #[test]
    fn a_library_asked_for_by_name_is_capped_too() {
        let text = logged_with(Some("warn,aws_smithy_runtime=trace,lambda_runtime=trace"));
        assert!(text.contains("library info"));
        assert!(!text.contains("library trace") && !text.contains("library debug"));
        assert!(!text.contains("our debug"), "warn elsewhere");
    }

    fn watch_and_others_with(requested: &str) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter(Some(requested)))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "cpis_http::care", caller = "dr-a", organisation = "RXX", "care-setting check");
            tracing::debug!(target: "cpis_http::care", "watch debug");
            tracing::info!(target: "cpis_http::uploads", "other info");
            tracing::info!(target: "attendance_check", "function info");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn the_enumeration_watch_record_is_written_at_every_log_level() {
        // The values of the stack's LogLevel parameter, as RUST_LOG receives them.
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
            let text = watch_and_others_with(level);
            assert_eq!(
                text.matches("care-setting check").count(),
                1,
                "RUST_LOG={level}: {text}"
            );
            let verbose = matches!(level, "TRACE" | "DEBUG" | "INFO");
            assert_eq!(text.contains("other info"), verbose, "RUST_LOG={level}");
            assert_eq!(text.contains("function info"), verbose, "RUST_LOG={level}");
        }
    }

    #[test]
    fn the_floor_never_holds_the_watch_module_below_what_was_asked() {
        assert!(watch_and_others_with("TRACE").contains("watch debug"));
        assert!(watch_and_others_with("warn,plan_upload=debug").contains("watch debug"));
        assert!(!watch_and_others_with("WARN").contains("watch debug"));
        assert!(!watch_and_others_with("INFO").contains("watch debug"));
    }

    #[test]
    fn no_or_an_invalid_level_means_info() {
        for requested in [None, Some("not a level=")] {
            let text = logged_with(requested);
            assert!(text.contains("library info"));
            assert!(!text.contains("our debug"));
        }
    }
}
