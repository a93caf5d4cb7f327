//! Logging for the Lambda functions: JSON lines (Lambda adds the time), at
//! the level `RUST_LOG` asks for (the stack's `LogLevel` parameter), with the
//! libraries that can see request and response content capped at INFO.
//!
//! Why the cap: at DEBUG and TRACE the Lambda runtime can log the invocation
//! event (an HTTP body naming a child), and the AWS SDK and HTTP stack can
//! log what they send and receive (DynamoDB items hold NHS numbers). An
//! operator turning the level up to chase a fault must not turn on a leak.

use tracing_subscriber::filter::{Directive, EnvFilter};

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
    for target in CONTENT_SEEING_LIBRARIES {
        // Later directives for the same target win, so these override RUST_LOG.
        if let Ok(cap) = format!("{target}=info").parse::<Directive>() {
            filter = filter.add_directive(cap);
        }
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

    #[test]
    fn no_or_an_invalid_level_means_info() {
        for requested in [None, Some("not a level=")] {
            let text = logged_with(requested);
            assert!(text.contains("library info"));
            assert!(!text.contains("our debug"));
        }
    }
}
