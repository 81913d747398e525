//! The audit trail's hash chains on both stores: whatever is done to the rows directly in the
//! database (an edit, a deletion, a reordering, the newest events cut off) is found by
//! `verify_audit_chain`, which the API's `audit-events/verify`, `rekey audit verify` and
//! `rekey doctor` run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rekey_core::audit_chain::SERVER_CHAIN;
use rekey_core::clock::Timestamp;
use rekey_core::model::{AuditContext, Org, OrgId};
use rekey_core::store::Store;
use rekey_store::testing::TestDb;

/// An org with `n` audit events (and one of the server's), on a fresh database.
async fn org_with_events(db: &TestDb, n: usize) -> OrgId {
    let org = Org {
        id: OrgId::new(),
        name: "o".into(),
        created_at: Timestamp::from_millis(1),
    };
    db.store.create_org(&org, &[]).await.unwrap();
    let ctx = AuditContext {
        actor: "user:x".into(),
        ..Default::default()
    };
    for i in 0..n {
        let e = ctx
            .event(Timestamp::from_millis(1000 + i as i64), "secret.rotated")
            .org(org.id)
            .details(serde_json::json!({ "n": i }));
        db.store.append_audit(&[e]).await.unwrap();
    }
    let server_event = ctx.event(Timestamp::from_millis(5), "signing_key.rotated");
    db.store.append_audit(&[server_event]).await.unwrap();
    org.id
}

/// The seq of the org's `i`-th event (0-based, oldest first).
fn nth(org: OrgId, i: usize) -> String {
    format!("(SELECT seq FROM audit_events WHERE org_id = '{org}' ORDER BY seq LIMIT 1 OFFSET {i})")
}

#[tokio::test]
async fn an_intact_chain_verifies_and_every_direct_change_to_its_rows_is_found() {
    // What is done, the statements that do it, and the event (by age) where the chain
    // breaks (`None`: at its end).
    type Tampering = (&'static str, fn(OrgId) -> Vec<String>, Option<usize>);
    let tamperings: [Tampering; 8] = [
        (
            "edit",
            |o| {
                vec![format!(
                    "UPDATE audit_events SET details = '{{\"n\":99}}' WHERE seq = {}",
                    nth(o, 2)
                )]
            },
            Some(2),
        ),
        (
            "edit the actor",
            |o| {
                vec![format!(
                    "UPDATE audit_events SET actor = 'user:y' WHERE seq = {}",
                    nth(o, 0)
                )]
            },
            Some(0),
        ),
        (
            "delete",
            |o| {
                vec![format!(
                    "DELETE FROM audit_events WHERE seq = {}",
                    nth(o, 1)
                )]
            },
            // The chain breaks at the event after the deleted one.
            Some(2),
        ),
        // The newest event deleted and the head rewritten to match, without the key.
        (
            "cut off and rewrite the head",
            |o| {
                vec![
                    format!("DELETE FROM audit_events WHERE seq = {}", nth(o, 3)),
                    format!(
                        "UPDATE audit_chain_heads SET events = 3, last_link = (SELECT link FROM \
                         audit_events WHERE seq = {}) WHERE chain = '{o}'",
                        nth(o, 2)
                    ),
                ]
            },
            None,
        ),
        // Every link removed and the head deleted: the events look older than the chains.
        (
            "unlink everything",
            |o| {
                vec![
                    format!("UPDATE audit_events SET chain = NULL, prev_link = NULL, link = NULL WHERE org_id = '{o}'"),
                    format!("DELETE FROM audit_chain_heads WHERE chain = '{o}'"),
                ]
            },
            Some(0),
        ),
        // The whole chain, events and head, moved to another org.
        (
            "move the chain",
            |o| {
                let other = OrgId::new();
                vec![
                    format!("INSERT INTO orgs (id, name, created_at) VALUES ('{other}', 'x', 0)"),
                    format!("UPDATE audit_events SET org_id = '{other}', chain = '{other}' WHERE org_id = '{o}'"),
                    format!("UPDATE audit_chain_heads SET chain = '{other}' WHERE chain = '{o}'"),
                ]
            },
            // The links name the chain they were made in.
            Some(0),
        ),
        // The oldest event moved to the end: content and links kept, position not.
        (
            "reorder",
            |o| {
                vec![format!(
                    "UPDATE audit_events SET seq = (SELECT MAX(seq) FROM audit_events) + 1 \
                     WHERE seq = {}",
                    nth(o, 0)
                )]
            },
            Some(1),
        ),
        (
            "cut off the newest",
            |o| {
                vec![format!(
                    "DELETE FROM audit_events WHERE seq = {}",
                    nth(o, 3)
                )]
            },
            None,
        ),
    ];
    for (what, tamper, breaks_at) in tamperings {
        for db in TestDb::all().await {
            let org = org_with_events(&db, 4).await;
            let report = db.store.verify_audit_chain(&org.to_string()).await.unwrap();
            assert_eq!(
                (report.events, report.unlinked, report.broken.clone()),
                (4, 0, None),
                "{what}"
            );
            let server = db.store.verify_audit_chain(SERVER_CHAIN).await.unwrap();
            assert_eq!((server.events, server.broken), (1, None));
            let mut ids: Vec<String> = db
                .store
                .list_audit(
                    &rekey_core::store::AuditFilter::org(org),
                    rekey_core::store::Page::default(),
                )
                .await
                .unwrap()
                .iter()
                .map(|e| e.id.to_string())
                .collect();
            ids.reverse();
            for sql in tamper(org) {
                db.store.execute_raw(&sql).await.unwrap();
            }
            // Every chain doctor would check; the break shows in one of them.
            let mut broken = Vec::new();
            for chain in db.store.list_audit_chains().await.unwrap() {
                if let Some(b) = db.store.verify_audit_chain(&chain).await.unwrap().broken {
                    broken.push(b);
                }
            }
            let expected = breaks_at.map(|i| ids[i].clone());
            assert!(
                broken.iter().any(|b| b.event_id == expected),
                "{what} on {}: expected a break at {expected:?}, found {broken:?}",
                db.url
            );
            // Other chains are untouched.
            assert_eq!(
                db.store
                    .verify_audit_chain(SERVER_CHAIN)
                    .await
                    .unwrap()
                    .broken,
                None,
                "{what}"
            );
        }
    }
}

/// A link recomputed without the server key's audit key does not verify: rewriting an event
/// and its link by hand (with another key, or a plain hash) is found too.
#[tokio::test]
async fn rewriting_an_event_with_a_link_made_without_the_key_is_found() {
    for db in TestDb::all().await {
        let org = org_with_events(&db, 2).await;
        let row = &db
            .store
            .query_texts(&format!(
                "SELECT id, CAST(time AS TEXT), details, prev_link FROM audit_events \
                 WHERE seq = {}",
                nth(org, 1)
            ))
            .await
            .unwrap()[0];
        let text = |i: usize| row[i].clone().unwrap();
        let org_text = org.to_string();
        let (id, time, details, prev) = (text(0), text(1), text(2), text(3));
        // The newest event, its actor changed, relinked over exactly what is stored now,
        // and the chain's head rewritten to match: only the key tells a forgery.
        let forge = |key: &rekey_core::crypto::KeyedHasher| {
            let content = rekey_core::audit_chain::LinkContent {
                chain: &org_text,
                id: &id,
                time_ms: time.parse().unwrap(),
                action: "secret.rotated",
                actor: "user:y",
                org_id: Some(&org_text),
                app_id: None,
                secret_id: None,
                request_id: None,
                source: None,
                outcome: "success",
                details: &details,
            };
            let link = rekey_core::audit_chain::link(key, &prev, &content);
            let mac = rekey_core::audit_chain::head_mac(key, &org_text, 2, &link);
            vec![
                format!(
                    "UPDATE audit_events SET actor = 'user:y', link = '{link}' WHERE seq = {}",
                    nth(org, 1)
                ),
                format!(
                    "UPDATE audit_chain_heads SET last_link = '{link}', mac = '{mac}' \
                     WHERE chain = '{org}'"
                ),
            ]
        };
        // With the server's key the forgery would pass: the content above is exact...
        for sql in forge(&rekey_store::testing::test_audit_key()) {
            db.store.execute_raw(&sql).await.unwrap();
        }
        let report = db.store.verify_audit_chain(&org_text).await.unwrap();
        assert!(report.broken.is_none(), "{}: {report:?}", db.url);
        // ...and with any other key it is found.
        for sql in forge(&rekey_core::crypto::KeyedHasher::new(&[1; 32])) {
            db.store.execute_raw(&sql).await.unwrap();
        }
        let report = db.store.verify_audit_chain(&org_text).await.unwrap();
        assert!(report.broken.is_some(), "{}", db.url);
    }
}
