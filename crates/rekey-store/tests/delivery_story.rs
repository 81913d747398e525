//! The store story for notifications: destinations, the outbox and its leases, rate-limit
//! buckets. Runs on SQLite, and on PostgreSQL when configured.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::collections::HashSet;
use std::sync::Arc;

use rekey_core::clock::Timestamp;
use rekey_core::crypto::ServerKey;
use rekey_core::model::*;
use rekey_core::notify::*;
use rekey_core::store::{Page, SecretChanges, Store};
use rekey_store::testing::TestDb;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

async fn app_in_new_org(s: &dyn Store) -> App {
    let org = Org {
        id: OrgId::new(),
        name: "o".into(),
        created_at: T0,
    };
    s.create_org(&org, &[]).await.unwrap();
    let app = App {
        id: AppId::new(),
        org_id: org.id,
        client_id: format!("rkc_{}", uuid::Uuid::new_v4().simple()),
        name: "a".into(),
        description: String::new(),
        grant_types: vec![GRANT_CLIENT_CREDENTIALS.into()],
        scopes: vec![],
        access_token_ttl_secs: 3600,
        secret_lifetime_secs: 0,
        rotation_grace_secs: 0,
        owner_only_secret_rotation: false,
        service_account: false,
        audiences: Vec::new(),
        rotation_policy: Default::default(),
        created_at: T0,
        updated_at: T0,
    };
    let secret = Secret {
        id: SecretId::new(),
        app_id: app.id,
        state: SecretState::Current,
        hash: rekey_core::crypto::SecretHash([1; 32]),
        hint: "abcd".into(),
        created_at: T0,
        expires_at: Some(T0.plus_secs(10)),
        last_used_at: None,
        created_by: "t".into(),
        revoked_at: None,
        revoked_reason: None,
    };
    s.create_app(&app, &secret, None, &[]).await.unwrap();
    app
}

fn destination(app: AppId, t: NotificationType, dir: &str) -> Destination {
    Destination {
        id: DestinationId::new(),
        app_id: app,
        notification_type: t,
        target: Target::File {
            directory: dir.into(),
        },
        sealed_signing_key: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn delivery(app: &App, dest: DestinationId, dedupe: Option<&str>) -> Delivery {
    let sealer = ServerKey::generate().sealer("outbox");
    Delivery::new(
        &sealer,
        NotificationId::new(),
        app.id,
        app.org_id,
        NotificationType::NewSecret,
        dest,
        &serde_json::json!({"x": 1}),
        dedupe.map(str::to_string),
        T0,
    )
}

#[tokio::test]
async fn one_destination_per_app_and_type_is_kept() {
    for db in TestDb::all().await {
        let s = &db.store;
        let app = app_in_new_org(s).await;
        let d1 = destination(app.id, NotificationType::NewSecret, "/a");
        s.put_destination(&d1, &[]).await.unwrap();
        let d2 = destination(app.id, NotificationType::NewSecret, "/b");
        s.put_destination(&d2, &[]).await.unwrap();
        s.put_destination(
            &destination(app.id, NotificationType::SecretExpiry, "/c"),
            &[],
        )
        .await
        .unwrap();
        let got = s
            .get_destination(app.id, NotificationType::NewSecret)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.target,
            Target::File {
                directory: "/b".into()
            }
        );
        assert_eq!(s.get_destination_by_id(got.id).await.unwrap(), Some(got));
        assert_eq!(s.list_destinations(app.id).await.unwrap().len(), 2);
        assert!(s
            .delete_destination(app.id, NotificationType::NewSecret, &[])
            .await
            .unwrap());
        assert!(!s
            .delete_destination(app.id, NotificationType::NewSecret, &[])
            .await
            .unwrap());
        assert!(s
            .get_destination(app.id, NotificationType::NewSecret)
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn a_delivery_written_with_a_secret_change_is_claimed_completed_and_wiped() {
    for db in TestDb::all().await {
        let s = &db.store;
        let app = app_in_new_org(s).await;
        let d = delivery(&app, DestinationId::new(), None);
        let d2 = d.clone();
        s.change_secrets(app.id, &move |_, _| {
            Ok(SecretChanges {
                deliveries: vec![d2.clone()],
                ..Default::default()
            })
        })
        .await
        .unwrap();
        let claimed = s
            .claim_deliveries("node-a", T0, T0.plus_secs(30), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{}", s.backend());
        assert_eq!(claimed[0].attempts, 1);
        assert_eq!(claimed[0].lease_owner.as_deref(), Some("node-a"));
        assert_eq!(claimed[0].sealed_payload, d.sealed_payload);
        // Leased: nobody else gets it until the lease ends.
        assert!(s
            .claim_deliveries("node-b", T0.plus_secs(29), T0.plus_secs(60), 10)
            .await
            .unwrap()
            .is_empty());
        // A dispatcher whose lease was taken over records nothing.
        s.complete_delivery(d.id, "node-b", T0.plus_secs(1), &[])
            .await
            .unwrap();
        assert_eq!(
            s.get_delivery(d.id).await.unwrap().unwrap().state,
            DeliveryState::Pending
        );
        s.complete_delivery(d.id, "node-a", T0.plus_secs(1), &[])
            .await
            .unwrap();
        let done = s.get_delivery(d.id).await.unwrap().unwrap();
        assert_eq!(done.state, DeliveryState::Delivered);
        assert_eq!(done.sealed_payload, None);
        assert_eq!(done.delivered_at, Some(T0.plus_secs(1)));
        assert!(s
            .claim_deliveries("node-b", T0.plus_secs(100), T0.plus_secs(130), 10)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_failures_retry_then_die() {
    for db in TestDb::all().await {
        let s = &db.store;
        let app = app_in_new_org(s).await;
        let d = delivery(&app, DestinationId::new(), None);
        s.enqueue_deliveries(std::slice::from_ref(&d), &[])
            .await
            .unwrap();
        assert_eq!(
            s.claim_deliveries("dies", T0, T0.plus_secs(30), 1)
                .await
                .unwrap()
                .len(),
            1
        );
        // The node died: at lease end another node takes over.
        let again = s
            .claim_deliveries("b", T0.plus_secs(30), T0.plus_secs(60), 1)
            .await
            .unwrap();
        assert_eq!(again[0].attempts, 2);
        s.fail_delivery(d.id, "dies", "stale", Some(T0.plus_secs(1)), &[])
            .await
            .unwrap();
        assert_eq!(
            s.get_delivery(d.id)
                .await
                .unwrap()
                .unwrap()
                .lease_owner
                .as_deref(),
            Some("b")
        );
        s.fail_delivery(d.id, "b", "queue down", Some(T0.plus_secs(90)), &[])
            .await
            .unwrap();
        let f = s.get_delivery(d.id).await.unwrap().unwrap();
        assert_eq!(
            (f.state, f.last_error.as_deref(), f.lease_owner.clone()),
            (DeliveryState::Pending, Some("queue down"), None)
        );
        assert!(s
            .claim_deliveries("b", T0.plus_secs(89), T0.plus_secs(120), 1)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.claim_deliveries("b", T0.plus_secs(90), T0.plus_secs(120), 1)
                .await
                .unwrap()
                .len(),
            1
        );
        s.fail_delivery(d.id, "b", "still down", None, &[])
            .await
            .unwrap();
        let dead = s.get_delivery(d.id).await.unwrap().unwrap();
        assert_eq!(dead.state, DeliveryState::Dead);
        assert!(
            dead.sealed_payload.is_some(),
            "a dead delivery keeps its payload for a retry"
        );
        let listed = s
            .list_deliveries(
                app.org_id,
                Some(app.id),
                Some(DeliveryState::Dead),
                Page::default(),
            )
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(s
            .retry_delivery(d.id, T0.plus_secs(200), &[])
            .await
            .unwrap());
        assert!(!s
            .retry_delivery(d.id, T0.plus_secs(200), &[])
            .await
            .unwrap());
        let r = s
            .claim_deliveries("c", T0.plus_secs(200), T0.plus_secs(230), 1)
            .await
            .unwrap();
        assert_eq!(r[0].attempts, 1);
    }
}

#[tokio::test]
async fn a_dedupe_key_enqueues_a_notification_once() {
    for db in TestDb::all().await {
        let s = &db.store;
        let app = app_in_new_org(s).await;
        let dest = DestinationId::new();
        assert_eq!(
            s.enqueue_deliveries(&[delivery(&app, dest, Some("expiry:x:90"))], &[])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.enqueue_deliveries(&[delivery(&app, dest, Some("expiry:x:90"))], &[])
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.list_deliveries(app.org_id, None, None, Page::default())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_delivery() {
    for db in TestDb::all().await {
        let s: Arc<dyn Store> = Arc::new(db.store.clone());
        let app = app_in_new_org(&*s).await;
        let items: Vec<Delivery> = (0..40)
            .map(|_| delivery(&app, DestinationId::new(), None))
            .collect();
        s.enqueue_deliveries(&items, &[]).await.unwrap();
        let mut tasks = Vec::new();
        for n in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s
                        .claim_deliveries(&format!("n{n}"), T0, T0.plus_secs(60), 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|d| d.id));
                }
            }));
        }
        let mut seen = HashSet::new();
        for t in tasks {
            for id in t.await.unwrap() {
                assert!(seen.insert(id), "claimed twice on {}", s.backend());
            }
        }
        assert_eq!(seen.len(), 40);
    }
}

#[tokio::test]
async fn a_rate_bucket_allows_the_burst_then_refills_at_the_rate() {
    for db in TestDb::all().await {
        let s = &db.store;
        let rate = 1.0 / 60.0;
        assert!(s.take_rate_token("k", rate, 1.0, T0).await.unwrap());
        assert!(!s
            .take_rate_token("k", rate, 1.0, T0.plus_secs(30))
            .await
            .unwrap());
        assert!(s.take_rate_token("other", rate, 1.0, T0).await.unwrap());
        assert!(!s
            .take_rate_token("k", rate, 1.0, T0.plus_secs(59))
            .await
            .unwrap());
        assert!(
            s.take_rate_token("k", rate, 1.0, T0.plus_secs(60))
                .await
                .unwrap(),
            "{}",
            s.backend()
        );
        // A clock going backwards does not refill.
        assert!(!s.take_rate_token("k", rate, 1.0, T0).await.unwrap());
    }
}

#[tokio::test]
async fn secrets_expiring_before_a_time_are_listed() {
    for db in TestDb::all().await {
        let s = &db.store;
        let app = app_in_new_org(s).await;
        assert!(s
            .secrets_expiring_before(T0.plus_secs(10), None, 10)
            .await
            .unwrap()
            .is_empty());
        let found = s
            .secrets_expiring_before(T0.plus_secs(11), None, 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].app_id, app.id);
        let cursor = found[0].expires_at.map(|t| (t, found[0].id));
        assert!(s
            .secrets_expiring_before(T0.plus_secs(11), cursor, 10)
            .await
            .unwrap()
            .is_empty());
    }
}
