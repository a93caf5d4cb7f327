//! The shared conformance suite, run against the in-memory reference store.

use cpis_store_memory::MemoryStore;

cpis_conformance::conformance_suite!(memory, async { MemoryStore::new() });
