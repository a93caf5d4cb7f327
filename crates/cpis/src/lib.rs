//! The parts of the `cpis` binary that tests drive directly: the embedded
//! dispatcher's local delivery (the fault harness runs it under faults).

pub mod delivery;
