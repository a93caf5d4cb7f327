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
