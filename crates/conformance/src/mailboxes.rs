//! `MailboxMap`: the operator's council <-> MESH mailbox map, one to one
//! both ways, sequentially and with links racing.

use cpis_domain::ports::LinkError;
use cpis_domain::{MailboxId, OdsCode};

use crate::fixtures::*;
use crate::Store;

/// Race trials: both orders met many times on every store, few enough for
/// DynamoDB on moto.
const TRIALS: usize = 16;

fn mailbox(id: &str) -> MailboxId {
    MailboxId::parse(id).expect("a valid test mailbox id")
}

/// Both directions agree for `council` and for every mailbox in `mailboxes`.
async fn assert_consistent<S: Store>(store: &S, council: &OdsCode, mailboxes: &[&MailboxId]) {
    let linked = store.mailbox_of(council).await.expect("mailbox_of");
    if let Some(m) = &linked {
        assert_eq!(
            store.council_of(m).await.expect("council_of").as_ref(),
            Some(council),
            "{council}'s mailbox {m} points back at it"
        );
    }
    for m in mailboxes {
        let holder = store.council_of(m).await.expect("council_of");
        if holder.as_ref() == Some(council) {
            assert_eq!(linked.as_ref(), Some(*m), "{m} points at {council}");
        }
    }
}

pub async fn mailbox_links_are_one_to_one_both_ways<S: Store>(store: &S) {
    let (a, b) = (la(COUNCIL_A), la(COUNCIL_B));
    let (m1, m2) = (mailbox("X26ABC1"), mailbox("X26ABC2"));
    assert_eq!(store.mailbox_of(&a).await.expect("read"), None);
    assert_eq!(store.council_of(&m1).await.expect("read"), None);

    assert_eq!(store.link_mailbox(&a, &m1).await.expect("link"), None);
    assert_eq!(store.mailbox_of(&a).await.expect("read"), Some(m1.clone()));
    assert_eq!(store.council_of(&m1).await.expect("read"), Some(a.clone()));
    // Linking the pair again changes nothing and says it was linked.
    assert_eq!(
        store.link_mailbox(&a, &m1).await.expect("relink"),
        Some(m1.clone())
    );

    // One council per mailbox: B is refused, naming the holder, and nothing moves.
    match store.link_mailbox(&b, &m1).await {
        Err(LinkError::MailboxTaken { mailbox, council }) => {
            assert_eq!((mailbox, council), (m1.clone(), a.clone()));
        }
        other => panic!("linking a held mailbox must be refused: {other:?}"),
    }
    assert_eq!(store.mailbox_of(&b).await.expect("read"), None);
    assert_eq!(store.council_of(&m1).await.expect("read"), Some(a.clone()));

    // One mailbox per council: a new link replaces the old, which is free again.
    assert_eq!(
        store.link_mailbox(&a, &m2).await.expect("replace"),
        Some(m1.clone())
    );
    assert_eq!(store.mailbox_of(&a).await.expect("read"), Some(m2.clone()));
    assert_eq!(store.council_of(&m1).await.expect("read"), None);
    assert_eq!(store.council_of(&m2).await.expect("read"), Some(a.clone()));
    assert_eq!(store.link_mailbox(&b, &m1).await.expect("link B"), None);

    // Unlinking frees both directions, once; the other council is untouched.
    assert_eq!(
        store.unlink_mailbox(&a).await.expect("unlink"),
        Some(m2.clone())
    );
    assert_eq!(store.mailbox_of(&a).await.expect("read"), None);
    assert_eq!(store.council_of(&m2).await.expect("read"), None);
    assert_eq!(store.unlink_mailbox(&a).await.expect("unlink again"), None);
    assert_eq!(store.mailbox_of(&b).await.expect("read"), Some(m1.clone()));
    assert_eq!(store.council_of(&m1).await.expect("read"), Some(b.clone()));
    // A council's mailbox may go to another council once it is free.
    assert_eq!(store.link_mailbox(&a, &m2).await.expect("link"), None);
    assert_consistent(store, &a, &[&m1, &m2]).await;
    assert_consistent(store, &b, &[&m1, &m2]).await;
}

pub async fn racing_mailbox_links_keep_the_map_one_to_one<S: Store>(store: &S) {
    let (a, b) = (la(COUNCIL_A), la(COUNCIL_B));
    for trial in 0..TRIALS {
        // Two councils race for one free mailbox: exactly one wins, and the
        // other is told who holds it.
        let contested = mailbox(&format!("RACE{trial}C"));
        let (left, right) = tokio::join!(
            store.link_mailbox(&a, &contested),
            store.link_mailbox(&b, &contested)
        );
        let holder = store
            .council_of(&contested)
            .await
            .expect("read")
            .expect("one link won");
        let (won, lost, loser) = if holder == a {
            (left, right, &b)
        } else {
            (right, left, &a)
        };
        assert!(won.is_ok(), "trial {trial}: the holder's link succeeded");
        match lost {
            Err(LinkError::MailboxTaken { council, .. }) => assert_eq!(council, holder),
            other => panic!("trial {trial}: the other link must be refused: {other:?}"),
        }
        assert_ne!(
            store.mailbox_of(loser).await.expect("read").as_ref(),
            Some(&contested),
            "trial {trial}"
        );

        // One council races to two mailboxes: it ends with one, the other is free.
        let (m1, m2) = (
            mailbox(&format!("RACE{trial}X")),
            mailbox(&format!("RACE{trial}Y")),
        );
        let (x, y) = tokio::join!(store.link_mailbox(&a, &m1), store.link_mailbox(&a, &m2));
        x.expect("link");
        y.expect("link");
        let kept = store.mailbox_of(&a).await.expect("read").expect("linked");
        let other = if kept == m1 { &m2 } else { &m1 };
        assert!(kept == m1 || kept == m2, "trial {trial}");
        assert_eq!(
            store.council_of(other).await.expect("read"),
            None,
            "trial {trial}: the mailbox replaced in the race is free"
        );

        // A link racing an unlink: either both directions or neither.
        let (linked, _) = tokio::join!(store.link_mailbox(&b, &m1), store.unlink_mailbox(&b));
        if !matches!(linked, Err(LinkError::MailboxTaken { .. })) {
            linked.expect("link");
        }
        assert_consistent(store, &a, &[&contested, &m1, &m2]).await;
        assert_consistent(store, &b, &[&contested, &m1, &m2]).await;
        store.unlink_mailbox(&a).await.expect("unlink");
        store.unlink_mailbox(&b).await.expect("unlink");
    }
}
