//! Multi-item transactions over every backend: items of several tables with
//! large values, cancellation by one action, lost responses, bad input.
//! (Transactions racing another writer are in `schedules`.)

use vhs::{Condition, Error, Fault, Op, Precondition};

use crate::fixture::Fixture;
use crate::models::{Document, Note, VDoc};

fn vdoc(id: &str, version: u64, body: &str) -> VDoc {
    VDoc {
        id: id.into(),
        version,
        body: Some(body.into()),
        title: format!("title {version}"),
    }
}

fn transact_calls(fx: &Fixture) -> usize {
    fx.faults
        .calls()
        .iter()
        .filter(|o| **o == Op::TransactWriteItems)
        .count()
}

pub async fn transaction_commits_items_of_several_tables(fx: Fixture) {
    let store = &fx.store;
    store.create_large(&Note::new("A", "old a")).await.unwrap();
    store.create_large(&Note::new("C", "c")).await.unwrap();
    store.create_large(&vdoc("V", 1, "v1")).await.unwrap();
    store
        .create_large(&Document::sample("p", "s"))
        .await
        .unwrap();
    fx.faults.reset();

    let commit = store
        .transaction()
        .create(&Note::new("B", "new b"))
        .update(
            &Note::key("A"),
            Note::changes().set_html(Some("new a".into())),
        )
        .update(
            &VDoc::key("V"),
            VDoc::changes()
                .set_body(Some("v2".into()))
                .set_title("two")
                .if_version(1),
        )
        .delete(&Document::key("p", "s"), Precondition::new())
        .check(&Note::key("C"), Condition::exists("html"))
        .commit()
        .await
        .unwrap();
    assert_eq!(transact_calls(&fx), 1, "{:?}", fx.faults.calls());
    // The replaced and deleted objects: A's and V's old bodies, D's two values.
    assert_eq!(commit.cleanup.deleted.len(), 4, "{:?}", commit.cleanup);
    store.flush().await;

    assert_eq!(
        store.get_large(&Note::key("B")).await.unwrap(),
        Note::new("B", "new b")
    );
    assert_eq!(
        store.get_large(&Note::key("A")).await.unwrap(),
        Note::new("A", "new a")
    );
    let v = store.get_large(&VDoc::key("V")).await.unwrap();
    assert_eq!(
        (v.version, v.body.as_deref(), v.title.as_str()),
        (2, Some("v2"), "two")
    );
    assert!(store
        .get_large(&Document::key("p", "s"))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        store.get_large(&Note::key("C")).await.unwrap(),
        Note::new("C", "c")
    );
    // Exactly the objects the live items point to: nothing orphaned, nothing
    // referenced deleted (every get above resolved).
    assert_eq!(fx.objects().await.len(), 4, "{:?}", fx.objects().await);
}

pub async fn transaction_canceled_by_one_action_writes_nothing(fx: Fixture) {
    let store = &fx.store;
    store.create_large(&Note::new("A", "a1")).await.unwrap();
    store.create_large(&vdoc("V", 3, "v3")).await.unwrap();
    let objects = fx.objects().await;
    let cancel = |e: Error| match e {
        Error::TransactionCanceled { action, reason } => (action, *reason),
        other => panic!("expected TransactionCanceled, got {other}"),
    };

    // A stale version in the third action.
    let err = store
        .transaction()
        .create(&Note::new("B", "b"))
        .update(&Note::key("A"), Note::changes().set_html(Some("a2".into())))
        .update(
            &VDoc::key("V"),
            VDoc::changes().set_body(Some("v4".into())).if_version(2),
        )
        .commit()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("action 2"), "{err}");
    match cancel(err) {
        (
            2,
            Error::VersionConflict {
                expected: 2,
                found: Some(3),
                ..
            },
        ) => {}
        other => panic!("{other:?}"),
    }
    // An item that exists, created again.
    let (action, reason) = cancel(
        store
            .transaction()
            .update(&Note::key("A"), Note::changes().set_html(Some("a3".into())))
            .create(&Note::new("A2", "x"))
            .create(&vdoc("V", 1, "again"))
            .commit()
            .await
            .unwrap_err(),
    );
    assert!(
        action == 2 && matches!(reason, Error::AlreadyExists { .. }),
        "{action} {reason}"
    );
    // A check that does not hold, and an update of an absent item.
    let (action, reason) = cancel(
        store
            .transaction()
            .create(&Note::new("B", "b"))
            .check(&Note::key("A"), Condition::eq("html", "nope"))
            .commit()
            .await
            .unwrap_err(),
    );
    assert!(
        action == 1 && matches!(reason, Error::ConditionFailed { .. }),
        "{action} {reason}"
    );
    let (action, reason) = cancel(
        store
            .transaction()
            .update(&Note::key("Z"), Note::changes().set_html(Some("z".into())))
            .commit()
            .await
            .unwrap_err(),
    );
    assert!(action == 0 && reason.is_not_found(), "{action} {reason}");

    // Nothing was written, and every object the transactions uploaded is gone.
    store.flush().await;
    assert!(store
        .get_large(&Note::key("B"))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store
        .get_large(&Note::key("A2"))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        store.get_large(&Note::key("A")).await.unwrap(),
        Note::new("A", "a1")
    );
    assert_eq!(
        store.get_large(&VDoc::key("V")).await.unwrap(),
        vdoc("V", 3, "v3")
    );
    assert_eq!(fx.objects().await, objects);
    // The conditions were decided on the items read: nothing was sent.
    assert_eq!(transact_calls(&fx), 0);
}

/// Every response lost: the first send applied, the resends find it (the same
/// client token, or the items' write history on a server that ignores the
/// token), and the unknown outcome is resolved by reading the items. The
/// version goes up once.
pub async fn transaction_lost_responses_apply_once(fx: Fixture) {
    let store = &fx.store;
    store.create_large(&vdoc("V", 1, "v1")).await.unwrap();
    for lost in [1usize, 4] {
        fx.faults.reset();
        for nth in 1..=lost {
            fx.faults
                .inject(Op::TransactWriteItems, nth, Fault::LoseResponse);
        }
        let v = store.get_large(&VDoc::key("V")).await.unwrap();
        store
            .transaction()
            .update(
                &VDoc::key("V"),
                VDoc::changes()
                    .set_body(Some(format!("after {lost}")))
                    .if_version(v.version),
            )
            .create(&Note::new(&format!("N{lost}"), "n"))
            .commit()
            .await
            .unwrap();
        // One lost: sent again, found applied. Four lost: the first send and
        // its three resends, then the items read.
        let calls = transact_calls(&fx);
        assert_eq!(calls, if lost == 1 { 2 } else { 4 }, "{lost} lost");
        let now = store.get_large(&VDoc::key("V")).await.unwrap();
        assert_eq!(now.version, v.version + 1, "applied once");
        assert_eq!(now.body, Some(format!("after {lost}")));
        assert_eq!(
            store
                .get_large(&Note::key(format!("N{lost}")))
                .await
                .unwrap(),
            Note::new(&format!("N{lost}"), "n")
        );
    }
    store.flush().await;
    // V's body and the two notes: the replaced bodies were deleted.
    assert_eq!(fx.objects().await.len(), 3, "{:?}", fx.objects().await);
}

pub async fn transaction_input_errors_send_nothing(fx: Fixture) {
    let store = &fx.store;
    let invalid = |r: vhs::Result<vhs::Commit>| match r {
        Err(Error::InvalidInput { message }) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let m = invalid(store.transaction().commit().await);
    assert!(m.contains("1 to 100"), "{m}");
    let mut big = store.transaction();
    for i in 0..101 {
        big = big.check(&Note::key(format!("n{i}")), Precondition::new());
    }
    assert_eq!(big.len(), 101);
    invalid(big.commit().await);
    let m = invalid(
        store
            .transaction()
            .create(&Note::new("A", "a"))
            .delete(&Note::key("A"), Precondition::new())
            .commit()
            .await,
    );
    assert!(m.contains("action 1") && m.contains("again"), "{m}");
    invalid(
        store
            .transaction()
            .update(&Note::key("A"), Note::changes())
            .commit()
            .await,
    );
    // A versioned model must say the version it read.
    invalid(
        store
            .transaction()
            .create(&Note::new("B", "b"))
            .update(&VDoc::key("V"), VDoc::changes().set_title("t"))
            .commit()
            .await,
    );
    invalid(
        store
            .transaction()
            .delete(&VDoc::key("V"), Precondition::new())
            .commit()
            .await,
    );
    assert!(fx.faults.calls().is_empty(), "{:?}", fx.faults.calls());
    assert!(fx.objects().await.is_empty());
}
