//! The privacy capture now lives in `cpis-telemetry` (feature `capture`), as
//! a sink of the one subscriber every process builds; this module only keeps
//! the fault harness's path to it until the suite's split removes it.

pub use cpis_telemetry::capture::{error_body, tracing};
