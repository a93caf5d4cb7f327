//! Feed freshness (`cpis_domain::FeedLog`): each council's last accepted full
//! snapshot, on every store.

use time::Duration;

use crate::fixtures::*;
use crate::Store;

pub async fn feeds_move_only_forward_and_list_every_council<S: Store>(store: &S) {
    assert!(store.tracks_feeds());
    let (a, b) = (la(COUNCIL_A), la(COUNCIL_B));
    assert_eq!(store.last_full_snapshot(&a).await.expect("read"), None);
    store.record_full_snapshot(&a, NOW).await.expect("record");
    // A slow upload recorded after a later one keeps the later time.
    store
        .record_full_snapshot(&a, NOW - Duration::hours(1))
        .await
        .expect("record");
    assert_eq!(store.last_full_snapshot(&a).await.expect("read"), Some(NOW));
    let later = NOW + Duration::days(2);
    store.record_full_snapshot(&a, later).await.expect("record");
    store.record_full_snapshot(&b, NOW).await.expect("record");
    let mut all = store.last_full_snapshots().await.expect("list");
    all.sort();
    assert_eq!(all, vec![(b, NOW), (a, later)]);
}
