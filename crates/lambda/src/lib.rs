//! What every CP-IS Lambda function stands on, so that each `main.rs` is a
//! composition root and each `lib.rs` only says what the function serves:
//! - [`settings`]: one typed settings struct per function kind, parsed whole
//!   from the environment at init (a value exists only by parsing);
//! - [`clients`]: the one `SdkConfig` and the adapters built from it, once;
//! - [`emf`]: the operators' metrics as embedded-metric-format lines;
//! - [`gateway`]: the API Gateway JWT authorizer's claims, and the state of
//!   an HTTP function;
//! - [`portal`]: the portal function's settings and its OpenID Connect
//!   sign-in, built at init;
//! - [`start`]: the init, with any start-up failure written as one JSON
//!   error line naming the variable (never its value) and a non-zero exit;
//! - `testing` (feature `test-support`): API Gateway event fixtures.
//!
//! `cpis serve` never links this crate: the AWS SDK stays out of the local
//! binary.

pub mod clients;
pub mod emf;
pub mod gateway;
pub mod portal;
pub mod settings;
#[cfg(feature = "test-support")]
pub mod testing;

use std::future::Future;
use std::process::ExitCode;

use cpis_telemetry::{event, Style};

pub use clients::Clients;
pub use gateway::{gateway_app, gateway_state, NoQueue};
pub use portal::PortalSettings;
pub use settings::{
    ApiSettings, AsnFileSettings, CheckSettings, ConfigError, DispatchSettings, MeshSettings,
    PollSettings, RelaySettings, UploadSettings,
};

/// Why a function stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is missing or malformed, or the pseudonymisation key could
    /// not be read: the cold start fails.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Lambda runtime itself failed.
    #[error("{0}")]
    Runtime(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Box<dyn std::error::Error + Send + Sync>> for StartError {
    fn from(error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::Runtime(error)
    }
}

/// A function's `main`: installs the functions' log subscriber, runs `init`
/// (settings, clients, then the runtime), and turns a failure into exactly
/// one JSON line at error level with a stable `event` name (the error-log
/// alarm counts it) and a non-zero exit, which Lambda reports as an init
/// error. A setting's line names the variable, never its value (it may be a
/// key).
pub async fn start<F, Fut>(init: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), StartError>>,
{
    cpis_telemetry::init(Style::Lambda);
    // Boxed: a runtime's future is deep, and `main` need not hold it inline.
    match Box::pin(init()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(error)) => {
            tracing::error!(
                event = event::STARTUP_CONFIG_INVALID,
                variable = error.variable(),
                "the function cannot start: {error}"
            );
            ExitCode::FAILURE
        }
        Err(StartError::Runtime(error)) => {
            tracing::error!(event = event::RUNTIME_FAILED, %error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}
