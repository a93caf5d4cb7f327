//! The schema: numbered migrations, applied in order, and the integrity check run at open.

use cpis_domain::ports::StoreError;
use rusqlite::{Connection, TransactionBehavior};

use crate::{corrupt, failed};

/// Numbered schema migrations. Migration `n` (1-based) moves the file from
/// `user_version = n - 1` to `n`; each runs in its own transaction with its
/// version bump. Append new migrations; never edit a released one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: every port.
    r#"
    CREATE TABLE plans (
        authority   TEXT NOT NULL,
        nhs_number  TEXT NOT NULL,
        plan_type   TEXT NOT NULL CHECK (plan_type IN ('CPP', 'LAC', 'UCPP')),
        start_date  TEXT NOT NULL,
        end_date    TEXT,
        delete_date TEXT,
        due_date    TEXT,
        local_id    TEXT,
        purge_from  TEXT,
        PRIMARY KEY (authority, nhs_number, plan_type, start_date)
    ) WITHOUT ROWID;
    -- plans_for_child and the purge's "does the child still have a plan".
    CREATE INDEX plans_by_child ON plans (nhs_number);
    CREATE INDEX plans_by_purge_day ON plans (purge_from) WHERE purge_from IS NOT NULL;

    CREATE TABLE upload_receipts (
        authority       TEXT NOT NULL,
        sequence        TEXT NOT NULL,
        digest          TEXT NOT NULL,
        acknowledgement TEXT NOT NULL,
        PRIMARY KEY (authority, sequence)
    ) WITHOUT ROWID;

    CREATE TABLE authorities (
        ods_code TEXT PRIMARY KEY NOT NULL,
        entry    TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE accesses (
        id          TEXT PRIMARY KEY NOT NULL,
        nhs_number  TEXT NOT NULL,
        accessed_at INTEGER NOT NULL,
        author_key  TEXT NOT NULL,
        accessor    TEXT NOT NULL
    );
    -- History (newest first) and the 24-hour collapse check.
    CREATE INDEX accesses_by_child ON accesses (nhs_number, accessed_at);
    CREATE INDEX accesses_by_author ON accesses (nhs_number, author_key, accessed_at);

    CREATE TABLE check_receipts (
        nhs_number   TEXT NOT NULL,
        organisation TEXT NOT NULL,
        checked_at   INTEGER NOT NULL,
        PRIMARY KEY (nhs_number, organisation)
    ) WITHOUT ROWID;

    -- No foreign key to accesses: an undelivered ASN outlives a purged history.
    CREATE TABLE asns (
        id              TEXT PRIMARY KEY NOT NULL,
        authority       TEXT NOT NULL,
        nhs_number      TEXT NOT NULL,
        access_id       TEXT NOT NULL,
        accessed_at     INTEGER NOT NULL,
        asn             TEXT NOT NULL,
        acknowledged_at INTEGER,
        claimed_until   INTEGER,
        lease_until     INTEGER,
        delivered_at    INTEGER
    );
    CREATE INDEX asns_inbox ON asns (authority, accessed_at, id);
    CREATE INDEX asns_by_child ON asns (nhs_number);
    CREATE INDEX asns_pending ON asns (accessed_at) WHERE delivered_at IS NULL;

    CREATE TABLE audit_events (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        id    TEXT NOT NULL UNIQUE,
        at    INTEGER NOT NULL,
        event TEXT NOT NULL
    );
    -- The audit trail is append-only, whatever connects to the file.
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    "#,
    // 2: each council's upload ledger head (linearizable uploads), seeded as
    // done at each council's highest receipt.
    r#"
    CREATE TABLE upload_ledger (
        authority   TEXT PRIMARY KEY NOT NULL,
        sequence    TEXT NOT NULL,
        digest      TEXT NOT NULL,
        lease_until INTEGER,
        version     INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO upload_ledger (authority, sequence, digest, lease_until, version)
    SELECT authority, MAX(sequence), '', NULL, 1 FROM upload_receipts GROUP BY authority;
    "#,
    // 3: each council's last accepted full snapshot (feed freshness).
    r#"
    CREATE TABLE feeds (
        authority     TEXT PRIMARY KEY NOT NULL,
        last_full_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: the operator's council <-> MESH mailbox map: one mailbox per
    // council (the key) and one council per mailbox (UNIQUE), whichever
    // process writes.
    r#"
    CREATE TABLE mesh_mailboxes (
        authority TEXT PRIMARY KEY NOT NULL,
        mailbox   TEXT NOT NULL UNIQUE
    ) WITHOUT ROWID;
    "#,
    // 5: the upload (sequence, 20 digits) that last stored each plan: an ASN
    // file names it. NULL for plans stored before.
    r#"
    ALTER TABLE plans ADD COLUMN upload_sequence TEXT;
    "#,
    // 6: the portal (issue 14): when each upload was received (NULL for
    // receipts written before), the note given with an acknowledgement, and the portal's sessions, redeemed
    // one-time sign-in tickets and check results. Ids and handles are
    // stored as SHA-256 digests only.
    r#"
    ALTER TABLE upload_receipts ADD COLUMN received_at INTEGER;
    ALTER TABLE asns ADD COLUMN acknowledgement_note TEXT;

    CREATE TABLE portal_sessions (
        id          TEXT PRIMARY KEY NOT NULL,
        session     TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX portal_sessions_by_expiry ON portal_sessions (expires_at);

    CREATE TABLE portal_tickets (
        ticket_id   TEXT PRIMARY KEY NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX portal_tickets_by_expiry ON portal_tickets (expires_at);

    CREATE TABLE portal_check_results (
        handle      TEXT PRIMARY KEY NOT NULL,
        session     TEXT NOT NULL,
        payload     TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX portal_check_results_by_expiry ON portal_check_results (expires_at);
    "#,
    // 7: OpenID Connect sign-ins under way (issue 14), by the digest of
    // their `state`; taken once by the callback.
    r#"
    CREATE TABLE portal_sign_in_attempts (
        state          TEXT PRIMARY KEY NOT NULL,
        browser        TEXT NOT NULL,
        nonce          TEXT NOT NULL,
        pkce_verifier  TEXT NOT NULL,
        next           TEXT,
        expires_at     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX portal_sign_in_attempts_by_expiry ON portal_sign_in_attempts (expires_at);
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// SQLite's quick integrity check (b-tree structure, page and record
/// formats; not index contents, which `integrity_check` also compares at a
/// cost proportional to the whole file). Its messages are not repeated: they
/// can quote the damaged content.
pub(crate) fn quick_check(conn: &Connection) -> Result<(), StoreError> {
    let findings: Vec<String> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| match e.sqlite_error_code() {
            Some(code) => StoreError::Corrupt(format!(
                "it failed SQLite's integrity check (PRAGMA quick_check: {code:?}); restore it from a backup"
            )),
            None => StoreError::Corrupt(
                "it failed SQLite's integrity check (PRAGMA quick_check); restore it from a backup"
                    .to_owned(),
            ),
        })?;
    if findings.len() == 1 && findings[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "it failed SQLite's integrity check (PRAGMA quick_check found {} problems); restore it from a backup",
        findings.len()
    )))
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(failed("reading the schema version"))?;
    let current = usize::try_from(current).map_err(|_| corrupt("a negative schema version"))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}; this build knows up to {}",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(failed("starting a migration"))?;
        tx.execute_batch(migration)
            .map_err(failed("applying a migration"))?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(failed("recording the schema version"))?;
        tx.commit().map_err(failed("committing a migration"))?;
    }
    Ok(())
}
