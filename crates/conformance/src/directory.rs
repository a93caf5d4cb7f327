//! `AuthorityDirectory`.

use crate::fixtures::*;
use crate::Store;

pub async fn directory_put_and_get<S: Store>(store: &S) {
    assert_eq!(store.authority(&la(COUNCIL_A)).await.expect("read"), None);
    let entry = authority(COUNCIL_A, "Example Borough Council");
    store.put_authority(&entry).await.expect("put");
    assert_eq!(
        store.authority(&la(COUNCIL_A)).await.expect("read"),
        Some(entry.clone())
    );
    let renamed = cpis_domain::Authority {
        name: "Example Borough Council (Children's Services)".to_owned(),
        notify_emails: vec![],
        notify_sms: vec!["+447700900124".to_owned(), "+447700900125".to_owned()],
        ..entry
    };
    store.put_authority(&renamed).await.expect("put again");
    assert_eq!(
        store.authority(&la(COUNCIL_A)).await.expect("read"),
        Some(renamed),
        "the council's latest entry replaces the old one"
    );
    assert_eq!(store.authority(&la(COUNCIL_B)).await.expect("read"), None);
}

/// A dispatcher's batch reads its councils' entries at once: those that
/// have one, each as `authority` reads it.
pub async fn directory_reads_many_councils_at_once<S: Store>(store: &S) {
    assert_eq!(
        store
            .authorities(&[la(COUNCIL_A), la(COUNCIL_B)])
            .await
            .expect("read"),
        vec![]
    );
    let a = authority(COUNCIL_A, "Example Borough Council");
    let b = authority(COUNCIL_B, "Example Unitary Council");
    store.put_authority(&a).await.expect("put");
    let only_a = store
        .authorities(&[la(COUNCIL_B), la(COUNCIL_A), la(COUNCIL_A)])
        .await
        .expect("read");
    assert_eq!(
        only_a,
        vec![a.clone()],
        "a council without an entry is left out"
    );
    store.put_authority(&b).await.expect("put");
    let mut both = store
        .authorities(&[la(COUNCIL_A), la(COUNCIL_B)])
        .await
        .expect("read");
    both.sort_by(|x, y| x.ods_code.as_str().cmp(y.ods_code.as_str()));
    let mut expected = vec![a, b];
    expected.sort_by(|x, y| x.ods_code.as_str().cmp(y.ods_code.as_str()));
    assert_eq!(both, expected);
    assert_eq!(store.authorities(&[]).await.expect("read"), vec![]);
}
