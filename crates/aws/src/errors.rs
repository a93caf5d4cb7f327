//! Turning SDK errors into port errors. Only the service's error code goes
//! into the message: SDK messages can echo request content, which may carry
//! an NHS number.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use cpis_domain::ports::StoreError;

pub(crate) fn unavailable<E: ProvideErrorMetadata>(what: &str, err: &E) -> StoreError {
    StoreError::Unavailable(failure(what, err))
}

/// `<what> failed (<service error code>)`.
pub(crate) fn failure<E: ProvideErrorMetadata>(what: &str, err: &E) -> String {
    format!(
        "{what} failed ({})",
        err.code().unwrap_or("no response from the service")
    )
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}
