//! What only the SQLite store must prove: atomicity under failure, schema
//! versioning and the connection settings. (Behaviour every store shares is
//! in the conformance suite, `tests/conformance.rs`.)

use std::sync::atomic::Ordering;

use cpis_conformance::fixtures::{access, accessor, child, plan, COUNCIL_A, COUNCIL_B, NOW};
use cpis_domain::check::notifications_for;
use cpis_domain::ports::{
    AccessLog, AccessWrite, AuditTrail, CheckLedger, CheckWrite, NewAccess, NotificationInbox,
};
use cpis_domain::{AuditAction, AuditEvent, AuditOutcome, PlanType};
use std::time::Duration as StdDuration;
use time::macros::date;

use time::Duration;

use super::*;

fn two_council_plans() -> Vec<Plan> {
    vec![
        plan(
            COUNCIL_A,
            child(0),
            PlanType::ChildProtection,
            date!(2025 - 01 - 10),
        ),
        plan(
            COUNCIL_B,
            child(0),
            PlanType::LookedAfter,
            date!(2025 - 01 - 10),
        ),
    ]
}

fn count(store: &SqliteStore, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    store.with_writer(move |conn| conn.query_row(&sql, [], |r| r.get(0)).unwrap())
}

#[tokio::test]
async fn a_failure_between_access_and_asns_leaves_neither() {
    let store = SqliteStore::open_in_memory().unwrap();
    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let asns = notifications_for(&record, &two_council_plans());
    assert_eq!(asns.len(), 2);

    store
        .inner
        .fail_after_access_insert
        .store(true, Ordering::SeqCst);
    let failed = store.record_access(&record, &asns, NOW).await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(count(&store, "accesses"), 0, "no access without its ASNs");
    assert_eq!(count(&store, "asns"), 0, "no ASNs without their access");
    // Nothing half-written blocks the retry, which also must not collapse
    // into the access that was rolled back.
    store
        .inner
        .fail_after_access_insert
        .store(false, Ordering::SeqCst);
    assert_eq!(
        store.record_access(&record, &asns, NOW).await.unwrap(),
        AccessWrite::Recorded
    );
    assert_eq!((count(&store, "accesses"), count(&store, "asns")), (1, 2));
}

#[tokio::test]
async fn a_check_whose_access_fails_writes_neither_its_receipt_nor_its_audit_event() {
    let store = SqliteStore::open_in_memory().unwrap();
    let who = accessor("RJ1", "user-1");
    let record = access(child(0), NOW, who.clone());
    let asns = notifications_for(&record, &two_council_plans());
    let event = AuditEvent::check_allowed(&who, None, NOW, "t");
    let trust = who.organisation_ods.clone();
    let write = CheckWrite {
        receipt: (&record.nhs_number, &trust, NOW),
        access: Some(NewAccess {
            record: &record,
            asns: &asns,
            collapse_since: NOW - Duration::hours(24),
        }),
        audit: Some(&event),
    };
    store
        .inner
        .fail_after_access_insert
        .store(true, Ordering::SeqCst);
    let failed = store.record_check(&write).await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    for table in ["check_receipts", "accesses", "asns", "audit_events"] {
        assert_eq!(count(&store, table), 0, "{table}: all or nothing");
    }
    store
        .inner
        .fail_after_access_insert
        .store(false, Ordering::SeqCst);
    assert_eq!(
        store.record_check(&write).await.unwrap(),
        Some(AccessWrite::Recorded)
    );
    for (table, rows) in [
        ("check_receipts", 1),
        ("accesses", 1),
        ("asns", 2),
        ("audit_events", 1),
    ] {
        assert_eq!(count(&store, table), rows, "{table}");
    }
}

#[tokio::test]
async fn a_failing_asn_insert_rolls_back_the_access_and_earlier_asns() {
    let store = SqliteStore::open_in_memory().unwrap();
    let earlier = access(child(1), NOW, accessor("RJ1", "user-9"));
    let earlier_asns = notifications_for(&earlier, &two_council_plans());
    store
        .record_access(&earlier, &earlier_asns, NOW)
        .await
        .unwrap();

    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let mut asns = notifications_for(&record, &two_council_plans());
    // The second ASN reuses an existing id: its insert fails after the
    // access and the first ASN were written in the same transaction.
    asns[1].id = earlier_asns[0].id.clone();
    let failed = store.record_access(&record, &asns, NOW).await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(store
        .recent_accesses(&child(0), 25)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .notification(&asns[0].authority, &asns[0].id)
            .await
            .unwrap(),
        None
    );
    assert_eq!((count(&store, "accesses"), count(&store, "asns")), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_by_one_author_record_once_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    // Two stores on one file: two connections, as two processes would have.
    let stores = [
        SqliteStore::open(&path).unwrap(),
        SqliteStore::open(&path).unwrap(),
    ];
    let plans = two_council_plans();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = stores[i % 2].clone();
        let record = access(
            child(0),
            NOW + Duration::seconds(i as i64),
            accessor("RJ1", "user-1"),
        );
        let asns = notifications_for(&record, &plans);
        tasks.push(tokio::spawn(async move {
            let since = record.accessed_at - cpis_domain::COLLAPSE_WINDOW;
            store.record_access(&record, &asns, since).await.unwrap()
        }));
    }
    let mut recorded = 0;
    for task in tasks {
        if task.await.unwrap() == AccessWrite::Recorded {
            recorded += 1;
        }
    }
    assert_eq!(
        recorded, 1,
        "the collapse check and the insert are one transaction"
    );
    assert_eq!(
        (count(&stores[0], "accesses"), count(&stores[1], "asns")),
        (1, 2)
    );
}

#[test]
fn opening_sets_wal_full_sync_foreign_keys_and_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("cpis.db")).unwrap();
    let (journal, synchronous, foreign_keys, version) = store.with_writer(|conn| {
        let pragma = |name: &str| -> rusqlite::types::Value {
            conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
        };
        (
            pragma("journal_mode"),
            pragma("synchronous"),
            pragma("foreign_keys"),
            pragma("user_version"),
        )
    });
    use rusqlite::types::Value;
    let (journal, synchronous, foreign_keys, version) =
        match (journal, synchronous, foreign_keys, version) {
            (Value::Text(j), Value::Integer(s), Value::Integer(f), Value::Integer(v)) => {
                (j, s, f, v)
            }
            other => panic!("unexpected pragma values {other:?}"),
        };
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 2, "FULL");
    assert_eq!(foreign_keys, 1);
    assert_eq!(version, SCHEMA_VERSION as i64);
}

#[test]
fn reopening_applies_no_migration_twice_and_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    drop(SqliteStore::open(&path).unwrap());
    // A second open finds the schema current (re-running migration 1 would
    // fail on CREATE TABLE).
    let store = SqliteStore::open(&path).unwrap();
    store.with_writer(|conn| {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION as i64 + 1)
            .unwrap()
    });
    drop(store);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn a_failed_migration_leaves_the_version_unchanged() {
    let mut conn = Connection::open_in_memory().unwrap();
    // A table in the way makes migration 1 fail part-way.
    conn.execute_batch("CREATE TABLE asns (x INTEGER);")
        .unwrap();
    assert!(migrate(&mut conn).is_err());
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 0);
    let plans: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'plans'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        plans, 0,
        "the tables created before the failure were rolled back"
    );
}

#[tokio::test]
async fn the_audit_trail_refuses_updates_and_deletes() {
    let store = SqliteStore::open_in_memory().unwrap();
    let event = AuditEvent::new(
        None,
        AuditAction::Check,
        None,
        AuditOutcome::Invalid,
        NOW,
        "t",
    );
    store.append(&event).await.unwrap();
    store.append(&event).await.unwrap();
    assert_eq!(
        count(&store, "audit_events"),
        1,
        "a retried append is one event"
    );
    let (updated, deleted) = store.with_writer(|conn| {
        (
            conn.execute("UPDATE audit_events SET event = '{}'", []),
            conn.execute("DELETE FROM audit_events", []),
        )
    });
    assert!(updated.is_err() && deleted.is_err());
    assert_eq!(count(&store, "audit_events"), 1);
}

#[tokio::test]
async fn errors_never_quote_stored_values() {
    let store = SqliteStore::open_in_memory().unwrap();
    let record = access(child(0), NOW, accessor("RJ1", "user-1"));
    let mut asns = notifications_for(&record, &two_council_plans());
    asns[1].id = asns[0].id.clone();
    let message = store
        .record_access(&record, &asns, NOW)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        cpis_domain::find_nhs_numbers(&message).is_empty(),
        "{message}"
    );
    assert!(!message.contains(&asns[0].id), "{message}");
}

#[tokio::test]
async fn an_unreadable_outbox_row_never_holds_up_the_asns_claimed_with_it() {
    // A row this build cannot read (written by another version, or edited
    // by hand) is the embedded outbox's poison message.
    let store = SqliteStore::open_in_memory().unwrap();
    let mut expected = Vec::new();
    for user in 0..3 {
        let record = access(child(0), NOW, accessor("RJ1", &format!("user-{user}")));
        let asns = notifications_for(&record, &two_council_plans());
        expected.extend(asns.iter().map(|a| a.id.clone()));
        store.record_access(&record, &asns, NOW).await.unwrap();
    }
    let poison = expected.remove(2);
    let target = poison.clone();
    store.with_writer(move |conn| {
        conn.execute("UPDATE asns SET asn = '{\"id\":' WHERE id = ?1", [&target])
            .unwrap()
    });

    let claimed = store
        .claim_undelivered(NOW, Duration::seconds(60), 50)
        .await
        .expect("one unreadable row must not fail the sweep");
    let mut ids: Vec<String> = claimed.into_iter().map(|a| a.id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected, "every readable ASN is claimed");
    // The unreadable row is claimed too, so it cannot fill the sweep's
    // window; it stays undelivered (never purged, never lost) for a later
    // sweep or an operator.
    let later = store
        .claim_undelivered(NOW + Duration::seconds(1), Duration::seconds(60), 50)
        .await
        .unwrap();
    assert!(later.is_empty());
    assert_eq!(count(&store, "asns"), 6);

    // Nor does it hide the council's other notifications, page by page.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for authority in [COUNCIL_A, COUNCIL_B] {
        let authority = OdsCode::parse(authority).unwrap();
        loop {
            let page = store
                .notifications(&authority, cursor.as_deref(), 1)
                .await
                .expect("one unreadable row must not fail the listing");
            listed.extend(page.items.into_iter().map(|a| a.id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
    }
    listed.sort();
    assert_eq!(listed, expected, "every readable ASN is listed");
}

/// Polls a store write once and returns it still pending: `submit` hands
/// the job to the writer's queue on its first poll, so once this returns the
/// job is queued, in call order, with no waiting on the scheduler.
async fn enqueued<F: std::future::Future>(write: F) -> std::pin::Pin<Box<F>> {
    let mut write = Box::pin(write);
    std::future::poll_fn(|cx| {
        assert!(
            write.as_mut().poll(cx).is_pending(),
            "the writer is held, so no write can finish yet"
        );
        std::task::Poll::Ready(())
    })
    .await;
    write
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_committed_together_fail_and_panic_alone() {
    let store = SqliteStore::open_in_memory().unwrap();
    // Hold the writer, so that the writes below queue up and share a batch.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let holder = enqueued(store.run_solo(move |_| {
        held.recv().ok();
        Ok(())
    }))
    .await;
    let write = |code: &'static str, outcome: &'static str| {
        let store = store.clone();
        async move {
            store
                .run(move |conn| {
                    let savepoint = conn.savepoint().map_err(failed("savepoint"))?;
                    savepoint
                        .execute(
                            "INSERT INTO authorities (ods_code, entry) VALUES (?1, '{}')",
                            [code],
                        )
                        .map_err(failed("insert"))?;
                    match outcome {
                        "commit" => savepoint.commit().map_err(failed("release")),
                        "fail" => Err(StoreError::Unavailable("refused".to_owned())),
                        _ => panic!("injected panic inside a batch"),
                    }
                })
                .await
        }
    };
    // Each is queued behind the holder before it lets go, so the writer
    // takes all four into one batch.
    let writes = [
        enqueued(write("E00000001", "commit")).await,
        enqueued(write("E00000002", "fail")).await,
        enqueued(write("E00000003", "panic")).await,
        enqueued(write("E00000004", "commit")).await,
    ];
    release.send(()).unwrap();
    holder.await.unwrap();
    let mut results = Vec::new();
    for w in writes {
        results.push(w.await);
    }
    assert!(results[0].is_ok() && results[3].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(StoreError::Unavailable(m)) if m == "refused"),
        "{results:?}"
    );
    assert!(
        matches!(&results[2], Err(StoreError::Unavailable(_))),
        "{results:?}"
    );
    let kept: Vec<String> = store.with_writer(|conn| {
        conn.prepare("SELECT ods_code FROM authorities ORDER BY ods_code")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    });
    assert_eq!(kept, ["E00000001", "E00000004"]);
    // The writer survived the panic.
    store.append(&audit_event("after")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_and_reads_on_a_file_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("cpis.db")).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append(&audit_event(&format!("e{i}"))).await.unwrap();
                // Read-your-writes: once answered, a read connection sees it.
                let seen = store.audit_events(1_000).await.unwrap();
                assert!(seen.iter().any(|e| e.trace_id == format!("e{i}")));
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    drop(store);
    let reopened = SqliteStore::open(dir.path().join("cpis.db")).unwrap();
    assert_eq!(reopened.audit_events(1_000).await.unwrap().len(), 200);
}

fn audit_event(trace_id: &str) -> AuditEvent {
    AuditEvent::new(
        None,
        AuditAction::Purge,
        None,
        AuditOutcome::Allowed,
        NOW,
        trace_id,
    )
}

// ------------------------------------------------- faults that are never silent

fn a_plan(index: usize) -> Vec<StoredPlan> {
    vec![cpis_conformance::fixtures::stored(&plan(
        COUNCIL_A,
        child(index),
        PlanType::ChildProtection,
        date!(2025 - 01 - 10),
    ))]
}

fn la_a() -> OdsCode {
    cpis_conformance::fixtures::la(COUNCIL_A)
}

const PROBE: StdDuration = StdDuration::from_secs(5);

#[tokio::test]
async fn a_deleted_database_file_fails_every_read_and_write_and_readiness_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let store = SqliteStore::open(&path).unwrap();
    store.apply_changes(&la_a(), &a_plan(0), &[]).await.unwrap();
    assert!(store.readiness(PROBE).await.is_ready());

    std::fs::remove_file(&path).unwrap();
    // Without the check both would succeed, on a file nobody will open again.
    let write = store.apply_changes(&la_a(), &a_plan(1), &[]).await;
    assert!(
        matches!(&write, Err(StoreError::Unavailable(why)) if why == health::FILE_LOST),
        "{write:?}"
    );
    let audit = store.append(&audit_event("after-delete")).await;
    assert!(
        matches!(audit, Err(StoreError::Unavailable(_))),
        "{audit:?}"
    );
    let read = store.plans_for_child(&child(0)).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert!(!path.exists(), "no reader or writer made a new empty file");

    let readiness = store.readiness(PROBE).await;
    assert!(!readiness.is_ready());
    assert_eq!(
        readiness.database,
        Component::Failing(health::FILE_LOST.to_owned())
    );
    assert!(!readiness.writes.is_ok());
    assert!(!readiness.audit.is_ok());
    // Nothing personal or local in what readiness says.
    let said = format!("{readiness:?}");
    assert!(!said.contains(dir.path().to_str().unwrap()), "{said}");
}

#[tokio::test]
async fn a_database_file_replaced_by_another_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let other = dir.path().join("other.db");
    let store = SqliteStore::open(&path).unwrap();
    store.apply_changes(&la_a(), &a_plan(0), &[]).await.unwrap();
    {
        let conn = Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE x (y INTEGER);").unwrap();
    }
    std::fs::rename(&other, &path).unwrap();
    let write = store.apply_changes(&la_a(), &a_plan(1), &[]).await;
    assert!(
        matches!(write, Err(StoreError::Unavailable(_))),
        "{write:?}"
    );
    assert!(!store.readiness(PROBE).await.database.is_ok());
}

#[test]
fn a_damaged_file_is_refused_at_open_and_the_error_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO t SELECT randomblob(500) FROM n;",
        )
        .unwrap();
    }
    let pages: i64 = {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap()
    };
    assert!(pages > 3, "enough pages to damage one in the middle");
    // Page 2's b-tree header: 0xFF is no page type.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096..4096 + 64].fill(0xFF);
    std::fs::write(&path, bytes).unwrap();

    let error = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    assert!(message.contains("quick_check"), "{message}");
}

#[test]
fn open_existing_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let error = SqliteStore::open_existing(&path).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains(path.to_str().unwrap()));
    assert!(!path.exists());
    drop(SqliteStore::open(&path).unwrap());
    assert!(SqliteStore::open_existing(&path).is_ok());

    // Emptied (or swapped for another program's database): refused, not migrated.
    let emptied = dir.path().join("emptied.db");
    std::fs::write(&emptied, b"").unwrap();
    let error = SqliteStore::open_existing(&emptied).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert!(error.to_string().contains("no cpis database"), "{error}");
    assert_eq!(
        std::fs::metadata(&emptied).unwrap().len(),
        0,
        "nothing written"
    );
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE x (y INTEGER);")
        .unwrap();
    let error = SqliteStore::open_existing(&other).unwrap_err();
    assert!(error.to_string().contains("no cpis database"), "{error}");
}

#[tokio::test]
async fn a_full_disk_is_reported_by_readiness_until_writes_succeed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("cpis.db")).unwrap();
    store.apply_changes(&la_a(), &a_plan(0), &[]).await.unwrap();
    // SQLITE_FULL, as on a full disk: no page may be added any more.
    store.with_writer(|conn| {
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
    });
    let mut refused = None;
    for i in 0..1_000 {
        if let Err(error) = store.append(&audit_event(&format!("full-{i}"))).await {
            refused = Some(error);
            break;
        }
    }
    assert!(
        matches!(refused, Some(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    let readiness = store.readiness(PROBE).await;
    assert!(readiness.database.is_ok());
    assert!(!readiness.audit.is_ok(), "{readiness:?}");
    assert!(!readiness.writes.is_ok(), "{readiness:?}");
    // Reads are still served (H11): the flag is shown while audit fails.
    assert_eq!(store.plans_for_child(&child(0)).await.unwrap().len(), 1);

    store.with_writer(|conn| {
        conn.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))
            .unwrap();
    });
    store.append(&audit_event("room-again")).await.unwrap();
    assert!(store.readiness(PROBE).await.is_ready());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_wal_and_shm_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let store = SqliteStore::open(&path).unwrap();
    store.apply_changes(&la_a(), &a_plan(0), &[]).await.unwrap();
    let files = health::database_files(&path);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    drop(store);

    // A file left readable (an older build, a restored copy) is tightened.
    let loose = dir.path().join("loose.db");
    drop(Connection::open(&loose).unwrap());
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&loose).unwrap();
    store.apply_changes(&la_a(), &a_plan(0), &[]).await.unwrap();
    for file in health::database_files(&loose) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn each_councils_last_full_snapshot_is_kept_across_a_reopen_and_never_moves_back() {
    use cpis_domain::FeedLog;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpis.db");
    let a = la_a();
    let b = cpis_conformance::fixtures::la(COUNCIL_B);
    {
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.tracks_feeds());
        assert_eq!(store.last_full_snapshot(&a).await.unwrap(), None);
        store.record_full_snapshot(&a, NOW).await.unwrap();
        store
            .record_full_snapshot(&a, NOW - Duration::hours(1))
            .await
            .unwrap();
        store
            .record_full_snapshot(&b, NOW - Duration::days(3))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.last_full_snapshot(&a).await.unwrap(), Some(NOW));
    let mut all = store.last_full_snapshots().await.unwrap();
    all.sort();
    let mut expected = vec![(a, NOW), (b, NOW - Duration::days(3))];
    expected.sort();
    assert_eq!(all, expected);
}
