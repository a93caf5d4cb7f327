//! Suite 1 on the embedded path: the fault harness (`cpis_conformance::faults`)
//! against the SQLite store on a file and the dispatcher code `cpis serve`
//! runs (`dispatch` for each message, `deliver_pending` as the sweep that
//! picks up what the queue could not deliver) writing through the local
//! outbox (`FileChannel`). What reached the duty teams is read back from the
//! outbox file itself.
//!
//! CI runs 1,000 accesses; `CPIS_ASSURANCE_FULL=1` runs 10,000;
//! `CPIS_FAULT_SEED=<n>` replays another seed.

use std::collections::BTreeMap;
use std::path::Path;

use cpis::delivery::FileChannel;
use cpis_conformance::faults::{
    self, Dispatcher, FaultConfig, MemoryTransport, Received, VIEW_URL,
};
use cpis_domain::ports::{AuthorityDirectory, NotificationChannel, StoreError};
use cpis_domain::{deliver_pending, dispatch, DispatchOutcome, OdsCode};
use cpis_store_sqlite::SqliteStore;
use time::OffsetDateTime;

/// The embedded dispatcher's sweep size (`background::SWEEP_BATCH`).
const SWEEP_BATCH: usize = 50;

struct Embedded {
    store: SqliteStore,
}

impl Dispatcher for Embedded {
    async fn handle_batch<C: NotificationChannel>(
        &self,
        channel: &C,
        batch: &[Received],
        now: OffsetDateTime,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for message in batch {
            // The body is the ASN id; anything the store does not know is
            // poison and stays failed until it is dead-lettered.
            match dispatch(&self.store, channel, &message.body, now, VIEW_URL).await {
                Ok(
                    DispatchOutcome::Delivered
                    | DispatchOutcome::AlreadyDelivered
                    | DispatchOutcome::NoChannels,
                ) => {}
                Ok(DispatchOutcome::InProgress | DispatchOutcome::Unknown) | Err(_) => {
                    failed.push(message.message_id.clone());
                }
            }
        }
        failed
    }

    async fn relay<C: NotificationChannel>(
        &self,
        channel: &C,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut taken = 0;
        loop {
            let report = deliver_pending(&self.store, channel, now, SWEEP_BATCH, VIEW_URL).await?;
            taken += report.claimed;
            if report.claimed < SWEEP_BATCH {
                return Ok(taken);
            }
        }
    }
}

/// How many times each ASN reached a duty team, from the outbox file: every
/// delivery is one email and one SMS line carrying the reference.
fn outbox_deliveries(path: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut emails: BTreeMap<String, usize> = BTreeMap::new();
    let mut sms: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let line: serde_json::Value = serde_json::from_str(line).expect("an outbox line is JSON");
        let reference = line["reference"].as_str().expect("a reference").to_owned();
        match line["channel"].as_str() {
            Some("email") => *emails.entry(reference).or_default() += 1,
            Some("sms") => *sms.entry(reference).or_default() += 1,
            other => panic!("unexpected channel {other:?}"),
        }
    }
    assert_eq!(emails, sms, "an ASN's email and SMS went out unequally");
    sms
}

#[tokio::test(flavor = "multi_thread")]
async fn no_asn_is_lost_or_sent_twice_outside_the_window_on_the_embedded_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("cpis.db")).unwrap();
    let councils: Vec<OdsCode> = (0..12)
        .map(|i| OdsCode::parse(&format!("E0900{i:04}")).unwrap())
        .collect();
    for (i, ods) in councils.iter().enumerate() {
        store.put_authority(&faults::council(ods, i)).await.unwrap();
    }
    let channel = FileChannel::new(&dir.path().join("outbox")).unwrap();
    let outbox = channel.path().to_owned();
    let config = FaultConfig::from_env(1_000);
    let report = faults::run(
        config,
        &store,
        &councils,
        &MemoryTransport::default(),
        &Embedded {
            store: store.clone(),
        },
        channel,
        || async { outbox_deliveries(&outbox) },
    )
    .await;
    println!("embedded fault harness: {report}");
    assert_eq!(report.accesses, config.accesses);
    assert!(
        report.generated > 0 && report.dead_lettered > 0 && report.duplicated > 0,
        "this seed exercised no poison or no duplicate window: {report}"
    );
    if let Ok(dir) = std::env::var("CPIS_PRIVACY_CAPTURE_DIR") {
        let target = Path::new(&dir).join("fault-harness-embedded-outbox.jsonl");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&outbox, target).unwrap();
    }
}
