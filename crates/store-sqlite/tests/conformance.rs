//! The shared conformance suite, run against the SQLite store on a fresh
//! file per test (the temporary directory lives as long as the test).

use cpis_store_sqlite::SqliteStore;

async fn fresh_file_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("cpis.db")).expect("a fresh store");
    (store, dir)
}

cpis_conformance::conformance_suite!(sqlite, fresh_file_store());

// The in-memory database runs the same suite: it is what other crates' tests use.
cpis_conformance::conformance_suite!(sqlite_in_memory, async {
    SqliteStore::open_in_memory().expect("a fresh store")
});

// The portal's ports (sessions, sign-in tickets, check results, upload history).
cpis_conformance::portal_conformance_suite!(sqlite_portal, fresh_file_store());
