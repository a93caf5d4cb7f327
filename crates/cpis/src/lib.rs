//! The parts of the `cpis` binary that tests drive directly: the embedded
//! dispatcher's local delivery (the fault harness runs it under faults), and
//! MESH (the poll loop and the operator's link commands).

pub mod delivery;
pub mod mesh;
