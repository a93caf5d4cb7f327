//! Logging for every CP-IS process, set up in one place: the Lambda
//! functions, `cpis serve` and its one-shot commands, and the privacy
//! capture of the test suites all build their subscriber with [`subscriber`]
//! and the one [`filter`].
//!
//! Why the library caps: at DEBUG and TRACE the Lambda runtime can log the
//! invocation event (an HTTP body naming a child), the AWS SDK and HTTP stack
//! what they send and receive (DynamoDB items hold NHS numbers), and hyper and
//! h2 connection and frame detail. An operator turning the level up to chase
//! a fault must not turn on a leak, on AWS or on one machine.
//!
//! And one floor, on AWS only: the enumeration watch's record (hazard H6) is
//! written at every level, since a detection control must not switch off when
//! an operator turns the logs down (see [`ENUMERATION_WATCH_TARGET`]).

#[cfg(feature = "capture")]
pub mod capture;
pub mod event;

use tracing::Subscriber;
use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;

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

/// `requested` (a `RUST_LOG` value; `default` when absent or invalid) with
/// the content-seeing libraries capped at INFO, or at the most verbose level
/// asked for anywhere when that is quieter (a cap never turns a library up:
/// at WARN they stay at WARN).
pub fn capped(requested: Option<&str>, default: &str) -> EnvFilter {
    let filter = requested
        .and_then(|r| EnvFilter::try_new(r).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let cap = filter
        .max_level_hint()
        .map_or(LevelFilter::INFO, |asked| asked.min(LevelFilter::INFO));
    CONTENT_SEEING_LIBRARIES
        .iter()
        .fold(filter, |filter, target| {
            // Later directives for the same target win, so these override RUST_LOG.
            match format!("{target}={cap}").parse::<Directive>() {
                Ok(cap) => filter.add_directive(cap),
                Err(_) => filter,
            }
        })
}

/// The functions' filter for `requested` (INFO when absent or invalid): the
/// library caps, and the enumeration watch's floor.
pub fn filter(requested: Option<&str>) -> EnvFilter {
    let filter = capped(requested, "info");
    // The floor takes the most verbose level asked for anywhere, so that at
    // TRACE or DEBUG the module is not held back to INFO either.
    let floor = filter
        .max_level_hint()
        .map_or(LevelFilter::INFO, |asked| asked.max(LevelFilter::INFO));
    match format!("{ENUMERATION_WATCH_TARGET}={floor}").parse::<Directive>() {
        Ok(watch) => filter.add_directive(watch),
        Err(_) => filter,
    }
}

/// How a process writes its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A Lambda function: JSON lines on stdout without a time (Lambda adds
    /// it), with target and span; the library caps and the watch's floor.
    Lambda,
    /// `cpis serve`: JSON lines on stdout with the time, without target or
    /// span; the library caps.
    Server,
    /// The one-shot commands (`cpis token`, `cpis demo`): warnings and errors
    /// as plain text on stderr, so that stdout keeps only the command's
    /// output (`TOKEN=$(cpis token ...)`); the library caps.
    Console,
}

impl Style {
    /// This style's filter for a `RUST_LOG` value.
    pub fn filter(self, requested: Option<&str>) -> EnvFilter {
        match self {
            Self::Lambda => filter(requested),
            Self::Server => capped(requested, "info"),
            Self::Console => capped(requested, "warn"),
        }
    }
}

/// The one subscriber builder: `style`'s format and `filter`, writing to `sink`.
pub fn subscriber<W>(style: Style, filter: EnvFilter, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt().with_writer(sink);
    match style {
        Style::Lambda => Box::new(fmt.json().without_time().with_env_filter(filter).finish()),
        Style::Server => Box::new(
            fmt.json()
                .with_current_span(false)
                .with_target(false)
                .with_env_filter(filter)
                .finish(),
        ),
        Style::Console => Box::new(fmt.with_target(false).with_env_filter(filter).finish()),
    }
}

/// Installs `style`'s subscriber for the process at the level `RUST_LOG`
/// asks for; call once, first thing in `main`. A second call (or one after a
/// test installed its own) keeps the first subscriber and answers false.
pub fn init(style: Style) -> bool {
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = style.filter(std::env::var("RUST_LOG").ok().as_deref());
    // `try_init` also routes the `log` crate's records through the subscriber.
    let installed = match style {
        Style::Lambda | Style::Server => subscriber(style, filter, std::io::stdout).try_init(),
        Style::Console => subscriber(style, filter, std::io::stderr).try_init(),
    };
    installed.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Lines;

    fn written(style: Style, filter: EnvFilter, emit: impl FnOnce()) -> String {
        let lines = Lines::default();
        tracing::subscriber::with_default(subscriber(style, filter, lines.clone()), emit);
        lines.text()
    }

    fn logged_with(requested: Option<&str>) -> String {
        written(Style::Lambda, filter(requested), || {
            tracing::trace!(target: "lambda_runtime", "library trace");
            tracing::debug!(target: "aws_smithy_runtime::client", "library debug");
            tracing::info!(target: "aws_smithy_runtime::client", "library info");
            tracing::trace!(target: "cpis_aws::dynamo", "our trace");
            tracing::debug!(target: "plan_upload", "our debug");
        })
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
        written(Style::Lambda, filter(Some(requested)), || {
            tracing::info!(target: "cpis_http::care", caller = "dr-a", organisation = "RXX", "care-setting check");
            tracing::debug!(target: "cpis_http::care", "watch debug");
            tracing::info!(target: "cpis_http::uploads", "other info");
            tracing::info!(target: "attendance_check", "function info");
        })
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

    fn server_and_console_with(style: Style, requested: Option<&str>) -> String {
        written(style, style.filter(requested), || {
            tracing::debug!(target: "hyper::proto::h1::conn", "frame detail");
            tracing::trace!(target: "h2::codec", "frame trace");
            tracing::info!(target: "hyper::server", "library info");
            tracing::debug!(target: "cpis::listener", "our debug");
            tracing::warn!(target: "cpis::listener", "our warning");
        })
    }

    #[test]
    fn cpis_serve_and_its_commands_have_the_same_library_caps() {
        for style in [Style::Server, Style::Console] {
            let text = server_and_console_with(style, Some("trace"));
            assert!(
                text.contains("our debug") && text.contains("library info"),
                "{style:?}"
            );
            assert!(
                !text.contains("frame detail") && !text.contains("frame trace"),
                "{style:?}"
            );
        }
    }

    #[test]
    fn the_defaults_are_info_for_the_server_and_warn_for_the_commands() {
        let server = server_and_console_with(Style::Server, None);
        assert!(server.contains("library info") && !server.contains("our debug"));
        let console = server_and_console_with(Style::Console, None);
        assert!(console.contains("our warning") && !console.contains("library info"));
    }

    #[test]
    fn the_server_writes_json_with_time_but_no_target_and_the_functions_no_time() {
        let keys = |text: &str| -> Vec<String> {
            let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            line.as_object().unwrap().keys().cloned().collect()
        };
        let server = written(Style::Server, Style::Server.filter(None), || {
            tracing::info!(target: "cpis::main", "line");
        });
        let server = keys(&server);
        assert!(server.contains(&"timestamp".to_owned()) && !server.contains(&"target".to_owned()));
        let lambda = written(Style::Lambda, filter(None), || {
            tracing::info!(target: "plan_upload", "line");
        });
        let lambda = keys(&lambda);
        assert!(!lambda.contains(&"timestamp".to_owned()) && lambda.contains(&"target".to_owned()));
    }
}
