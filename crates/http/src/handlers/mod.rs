//! The route handlers, one module per capability. Handlers read the
//! request with [`crate::extract`] and the typed callers, run a use case,
//! and answer; they never import one another.

pub(crate) mod check;
pub(crate) mod directory;
pub(crate) mod fhir;
pub(crate) mod history;
pub(crate) mod inbox;
pub(crate) mod upload;
