//! The shared conformance suite, run against the in-memory reference store.

use cpis_store_memory::MemoryStore;

cpis_conformance::conformance_suite!(memory, async { MemoryStore::new() });
cpis_conformance::portal_conformance_suite!(memory_portal, async { MemoryStore::new() });
