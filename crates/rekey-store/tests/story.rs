//! The store story: one set of behaviours, run against every backend (SQLite always,
//! PostgreSQL when `REKEY_TEST_POSTGRES_URL` is set; in CI it must be).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rekey_core::clock::Timestamp;
use rekey_core::crypto::ServerKey;
use rekey_core::error::{CoreError, OpError};
use rekey_core::model::*;
use rekey_core::store::{
    AuditFilter, ClientRecord, LockedApp, MembershipChanges, Page, SecretChanges, Store,
};
use rekey_core::token::generate_signing_key;
use rekey_store::testing::TestDb;
use rekey_store::SqlStore;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn org() -> Org {
    Org {
        id: OrgId::new(),
        name: "acme".into(),
        created_at: T0,
    }
}

fn app(org: OrgId, n: usize) -> App {
    App {
        id: AppId::new(),
        org_id: org,
        client_id: format!("rkc_story_{n}_{}", uuid::Uuid::new_v4().simple()),
        name: format!("app {n}"),
        description: "d".into(),
        grant_types: vec![GRANT_CLIENT_CREDENTIALS.into()],
        scopes: vec!["a".into(), "sellingpartnerapi::notifications".into()],
        access_token_ttl_secs: 3600,
        secret_lifetime_secs: 0,
        rotation_grace_secs: 7 * 86400,
        owner_only_secret_rotation: false,
        service_account: false,
        audiences: Vec::new(),
        rotation_policy: Default::default(),
        created_at: T0.plus_secs(n as i64),
        updated_at: T0,
    }
}

fn secret(app: AppId, state: SecretState, hash: u8) -> Secret {
    Secret {
        id: SecretId::new(),
        app_id: app,
        state,
        hash: rekey_core::crypto::SecretHash([hash; 32]),
        hint: "abcd".into(),
        created_at: T0,
        expires_at: Some(T0.plus_secs(86400)),
        last_used_at: None,
        created_by: "story".into(),
        revoked_at: None,
        revoked_reason: None,
    }
}

async fn with_org(store: &dyn Store) -> Org {
    let o = org();
    store.create_org(&o, &[]).await.unwrap();
    o
}

#[tokio::test]
async fn orgs_users_and_memberships_round_trip() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        assert_eq!(s.get_org(o.id).await.unwrap(), Some(o.clone()));
        assert_eq!(s.count_orgs().await.unwrap(), 1);
        let u = User {
            id: UserId::new(),
            email: "a@example.com".into(),
            display_name: "A".into(),
            created_at: T0,
        };
        s.create_user(&u).await.unwrap();
        assert!(matches!(
            s.create_user(&User {
                id: UserId::new(),
                ..u.clone()
            })
            .await,
            Err(CoreError::Conflict(_))
        ));
        assert_eq!(
            s.find_user_by_email("a@example.com").await.unwrap(),
            Some(u.clone())
        );
        let m = Membership {
            org_id: o.id,
            principal: Principal::User(u.id),
            role: Role::Developer,
            created_at: T0,
        };
        s.put_membership(&m, &[]).await.unwrap();
        s.put_membership(
            &Membership {
                role: Role::OrgAdmin,
                ..m.clone()
            },
            &[],
        )
        .await
        .unwrap();
        let got = s.get_membership(o.id, m.principal).await.unwrap().unwrap();
        assert_eq!(got.role, Role::OrgAdmin, "{}", s.backend());
        assert_eq!(s.list_memberships(o.id).await.unwrap().len(), 1);
        assert_eq!(
            s.get_membership(OrgId::new(), m.principal).await.unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn an_app_is_created_with_its_first_secret_and_found_by_client_id() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let mut a = app(o.id, 1);
        a.service_account = true;
        let first = secret(a.id, SecretState::Current, 1);
        let m = Membership {
            org_id: o.id,
            principal: Principal::App(a.id),
            role: Role::Developer,
            created_at: T0,
        };
        s.create_app(&a, &first, Some(&m), &[]).await.unwrap();
        let rec = s.load_client(&a.client_id).await.unwrap().unwrap();
        assert_eq!(rec.app, a);
        assert_eq!(rec.secrets, vec![first.clone()]);
        assert!(s.load_client("rkc_nobody").await.unwrap().is_none());
        assert_eq!(s.get_secret(first.id).await.unwrap(), Some(first));
        assert!(s
            .get_membership(o.id, Principal::App(a.id))
            .await
            .unwrap()
            .is_some());

        // Same client id again is a conflict, and nothing of the second app remains.
        let dup = App {
            id: AppId::new(),
            ..a.clone()
        };
        let r = s
            .create_app(&dup, &secret(dup.id, SecretState::Current, 2), None, &[])
            .await;
        assert!(matches!(r, Err(CoreError::Conflict(_))), "{}", s.backend());
        assert!(s.get_app(dup.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn apps_are_listed_in_pages_updated_and_deleted_with_their_secrets() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let mut apps = Vec::new();
        for n in 0..5 {
            let a = app(o.id, n);
            s.create_app(&a, &secret(a.id, SecretState::Current, n as u8), None, &[])
                .await
                .unwrap();
            apps.push(a);
        }
        let page = s
            .list_apps(o.id, Page { start: 1, limit: 2 })
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![apps[1].id, apps[2].id]
        );
        assert!(s
            .list_apps(OrgId::new(), Page::default())
            .await
            .unwrap()
            .is_empty());

        let mut changed = apps[0].clone();
        changed.name = "renamed".into();
        changed.scopes = vec!["x".into()];
        changed.owner_only_secret_rotation = true;
        assert!(s.update_app(&changed, &[]).await.unwrap());
        assert_eq!(s.get_app(changed.id).await.unwrap(), Some(changed.clone()));

        assert!(s.delete_app(changed.id, &[]).await.unwrap());
        assert!(!s.delete_app(changed.id, &[]).await.unwrap());
        assert!(s.list_secrets(changed.id).await.unwrap().is_empty());
        assert!(s.load_client(&changed.client_id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn the_database_refuses_a_second_current_secret_and_applies_nothing() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let a = app(o.id, 1);
        s.create_app(&a, &secret(a.id, SecretState::Current, 1), None, &[])
            .await
            .unwrap();
        let second = secret(a.id, SecretState::Current, 2);
        let ev = AuditContext::default().event(T0, "test.should_not_persist");
        let r = s
            .change_secrets(a.id, &|_, _| {
                Ok(SecretChanges {
                    insert: vec![second.clone()],
                    update: vec![],
                    audit: vec![ev.clone()],
                    deliveries: vec![],
                })
            })
            .await;
        assert!(matches!(r, Err(OpError::Conflict(_))), "{}", s.backend());
        assert_eq!(s.list_secrets(a.id).await.unwrap().len(), 1);
        assert!(s
            .list_audit(&AuditFilter::default(), Page::default())
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn concurrent_secret_changes_on_one_app_are_serialized() {
    for db in TestDb::all().await {
        let s: Arc<dyn Store> = Arc::new(db.store.clone());
        let o = with_org(&*s).await;
        let a = app(o.id, 1);
        s.create_app(&a, &secret(a.id, SecretState::Current, 0), None, &[])
            .await
            .unwrap();
        // Each task replaces the current secret with a new one; if two planned over the
        // same snapshot, the unique index or a lost update would show.
        let mut tasks = Vec::new();
        for n in 1..=8u8 {
            let s = s.clone();
            let app_id = a.id;
            tasks.push(tokio::spawn(async move {
                let plan = replacing_current(secret(app_id, SecretState::Current, n));
                s.change_secrets(app_id, &plan).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let all = s.list_secrets(a.id).await.unwrap();
        assert_eq!(all.len(), 9, "{}", s.backend());
        assert_eq!(
            all.iter()
                .filter(|x| x.state == SecretState::Current)
                .count(),
            1
        );
        assert_eq!(
            all.iter()
                .filter(|x| x.state == SecretState::Revoked)
                .count(),
            8
        );
    }
}

#[tokio::test]
async fn a_change_to_a_missing_app_is_not_found() {
    for db in TestDb::all().await {
        let r = db
            .store
            .change_secrets(AppId::new(), &|_, _| Ok(SecretChanges::default()))
            .await;
        assert!(matches!(r, Err(OpError::NotFound)));
    }
}

#[tokio::test]
async fn last_use_times_never_move_backwards() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let a = app(o.id, 1);
        let sec = secret(a.id, SecretState::Current, 1);
        s.create_app(&a, &sec, None, &[]).await.unwrap();
        s.record_last_use(&[(sec.id, T0.plus_secs(10))])
            .await
            .unwrap();
        s.record_last_use(&[(sec.id, T0.plus_secs(5)), (SecretId::new(), T0)])
            .await
            .unwrap();
        let got = s.get_secret(sec.id).await.unwrap().unwrap();
        assert_eq!(got.last_used_at, Some(T0.plus_secs(10)));
    }
}

#[tokio::test]
async fn api_tokens_are_found_by_hash_only() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let u = User {
            id: UserId::new(),
            email: "t@example.com".into(),
            display_name: "T".into(),
            created_at: T0,
        };
        s.create_user(&u).await.unwrap();
        let h = ServerKey::generate().api_token_hasher();
        let t = ApiToken {
            id: ApiTokenId::new(),
            user_id: u.id,
            org_id: o.id,
            name: "cli".into(),
            hash: h.hash("token"),
            hint: "oken".into(),
            created_at: T0,
            expires_at: None,
            revoked_at: None,
        };
        s.create_api_token(&t, &[]).await.unwrap();
        assert_eq!(
            s.find_api_token_by_hash(&h.hash("token")).await.unwrap(),
            Some(t.clone())
        );
        assert_eq!(
            s.find_api_token_by_hash(&h.hash("other")).await.unwrap(),
            None
        );
        assert_eq!(s.get_api_token(t.id).await.unwrap(), Some(t));
    }
}

#[tokio::test]
async fn a_console_link_works_once_however_many_race_and_sessions_can_be_revoked() {
    for db in TestDb::all().await {
        let s = Arc::new(db.store.clone());
        let o = with_org(&*s).await;
        let u = User {
            id: UserId::new(),
            email: "c@example.com".into(),
            display_name: "C".into(),
            created_at: T0,
        };
        s.create_user(&u).await.unwrap();
        let h = ServerKey::generate().console_hasher();
        let link = ConsoleLink {
            hash: h.hash("link"),
            user_id: u.id,
            org_id: o.id,
            created_at: T0,
            expires_at: T0.plus_secs(900),
            used_at: None,
        };
        s.create_console_link(&link, &[]).await.unwrap();
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                let hash = link.hash;
                tokio::spawn(async move { s.use_console_link(&hash, T0.plus_secs(1)).await })
            })
            .collect();
        let mut used = 0;
        for r in racers {
            if let Some(got) = r.await.unwrap().unwrap() {
                assert_eq!((got.user_id, got.used_at), (u.id, Some(T0.plus_secs(1))));
                used += 1;
            }
        }
        assert_eq!(used, 1, "{}", db.url);
        // An expired link does not work at all.
        let late = ConsoleLink {
            hash: h.hash("late"),
            ..link.clone()
        };
        s.create_console_link(&late, &[]).await.unwrap();
        assert_eq!(
            s.use_console_link(&late.hash, T0.plus_secs(900))
                .await
                .unwrap(),
            None
        );

        let session = ConsoleSession {
            id: ConsoleSessionId::new(),
            hash: h.hash("cookie"),
            user_id: u.id,
            org_id: o.id,
            created_at: T0,
            last_seen_at: T0,
            expires_at: T0.plus_secs(3600),
            revoked_at: None,
            api_token_id: Some(ApiTokenId::new()),
        };
        s.create_console_session(&session, &[]).await.unwrap();
        assert_eq!(
            s.find_console_session(&session.hash).await.unwrap(),
            Some(session.clone())
        );
        s.touch_console_session(session.id, T0.plus_secs(60))
            .await
            .unwrap();
        let found = s
            .find_console_session(&session.hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.last_seen_at, T0.plus_secs(60));
        s.revoke_console_session(session.id, T0.plus_secs(61), &[])
            .await
            .unwrap();
        let found = s
            .find_console_session(&session.hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.revoked_at, Some(T0.plus_secs(61)));
        assert_eq!(
            s.find_console_session(&h.hash("other")).await.unwrap(),
            None
        );
        // Pruning keeps what ended after the cut-off: the revoked session (61 s) and the two
        // links (expired at 900 s) go only with a later cut-off.
        assert_eq!(s.prune_console(T0.plus_secs(61)).await.unwrap(), 0);
        assert_eq!(s.prune_console(T0.plus_secs(901)).await.unwrap(), 3);
        assert_eq!(s.find_console_session(&session.hash).await.unwrap(), None);
        let orgs = s.list_memberships_of(Principal::User(u.id)).await.unwrap();
        assert!(orgs.is_empty());
    }
}

#[tokio::test]
async fn an_orgs_expiring_and_previous_secrets_are_listed_for_it_alone() {
    for db in TestDb::all().await {
        let s = &db.store;
        let (mine, theirs) = (with_org(s).await, with_org(s).await);
        let soon = T0.plus_secs(10 * 86_400);
        let mut expected = Vec::new();
        for (org, n) in [(mine.id, 0), (theirs.id, 1)] {
            let a = app(org, n);
            let mut current = secret(a.id, SecretState::Current, 1);
            current.expires_at = Some(soon);
            s.create_app(&a, &current, None, &[]).await.unwrap();
            let previous = secret(a.id, SecretState::Previous, 2);
            s.change_secrets(a.id, &|_, _| {
                Ok(SecretChanges {
                    insert: vec![previous.clone()],
                    ..Default::default()
                })
            })
            .await
            .unwrap();
            if org == mine.id {
                expected = vec![current.id, previous.id];
            }
        }
        let expiring = s
            .secrets_expiring_in_org(mine.id, T0, T0.plus_secs(30 * 86_400), 10)
            .await
            .unwrap();
        assert_eq!(
            expiring.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![expected[0]]
        );
        let later = s
            .secrets_expiring_in_org(mine.id, T0, T0.plus_secs(86_400), 10)
            .await
            .unwrap();
        assert!(later.is_empty());
        let previous = s.previous_secrets_in_org(mine.id, T0, 10).await.unwrap();
        assert_eq!(
            previous.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![expected[1]]
        );
    }
}

#[tokio::test]
async fn a_new_signing_key_retires_the_others_at_the_given_time() {
    for db in TestDb::all().await {
        let s = &db.store;
        let sealer = ServerKey::generate().sealer("signing-keys");
        let k1 = generate_signing_key(&sealer, T0);
        s.add_signing_key(&k1, T0, &[]).await.unwrap();
        let k2 = generate_signing_key(&sealer, T0.plus_secs(1));
        s.add_signing_key(&k2, T0.plus_secs(3600), &[])
            .await
            .unwrap();
        let keys = s.list_signing_keys().await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid, k1.kid);
        assert_eq!(keys[0].publish_until, Some(T0.plus_secs(3600)));
        assert_eq!(keys[1], k2);
    }
}

#[tokio::test]
async fn audit_events_are_listed_newest_first_and_by_org() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o1 = with_org(s).await;
        let ctx = AuditContext {
            actor: "user:x".into(),
            request_id: Some("req-1".into()),
            source: Some("127.0.0.1".into()),
        };
        let e1 = ctx.event(T0, "org.created").org(o1.id);
        let e2 = ctx
            .event(T0.plus_secs(1), "app.created")
            .org(o1.id)
            .details(serde_json::json!({"name": "x"}));
        let e3 = ctx.event(T0.plus_secs(2), "other").failed();
        s.append_audit(&[e1.clone(), e2.clone(), e3.clone()])
            .await
            .unwrap();
        assert_eq!(
            s.list_audit(&AuditFilter::org(o1.id), Page::default())
                .await
                .unwrap(),
            vec![e2.clone(), e1]
        );
        assert_eq!(
            s.list_audit(&AuditFilter::default(), Page { start: 0, limit: 2 })
                .await
                .unwrap(),
            vec![e3, e2.clone()]
        );
        let by_action = AuditFilter {
            action: Some("app.created".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            s.list_audit(&by_action, Page::default()).await.unwrap(),
            vec![e2.clone()]
        );
        let window = AuditFilter {
            since: Some(T0.plus_secs(1)),
            until: Some(T0.plus_secs(2)),
            ..AuditFilter::default()
        };
        assert_eq!(
            s.list_audit(&window, Page::default()).await.unwrap(),
            vec![e2]
        );
    }
}

/// Reads until the read is served from the cache (within 5 s). On PostgreSQL another test's
/// write can invalidate while a fill is in flight (the fill is then dropped), and a cache
/// whose listener reconnects serves nothing meanwhile, so one try may miss.
async fn cached_read(s: &SqlStore, client_id: &str) -> Arc<ClientRecord> {
    for _ in 0..250 {
        let first = s.load_client(client_id).await.unwrap().unwrap();
        let again = s.load_client(client_id).await.unwrap().unwrap();
        if Arc::ptr_eq(&first, &again) {
            return again;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{client_id} is never served from the cache");
}

/// A plan that revokes the current secret and makes `new` current.
fn replacing_current(
    new: Secret,
) -> impl Fn(&LockedApp, &[Secret]) -> Result<SecretChanges, OpError> {
    move |_, secrets| {
        let mut old = secrets
            .iter()
            .find(|x| x.state == SecretState::Current)
            .cloned()
            .ok_or(CoreError::Conflict("no current".into()))?;
        old.state = SecretState::Revoked;
        old.revoked_at = Some(T0);
        Ok(SecretChanges {
            insert: vec![new.clone()],
            update: vec![old],
            audit: vec![],
            deliveries: vec![],
        })
    }
}

/// A rotation as the rules make it: the current secret revoked, a new one current.
async fn replace_current(s: &SqlStore, app_id: AppId, hash: u8) -> Secret {
    let new = secret(app_id, SecretState::Current, hash);
    s.change_secrets(app_id, &replacing_current(new.clone()))
        .await
        .unwrap();
    new
}

fn secret_ids(r: &ClientRecord) -> Vec<SecretId> {
    r.secrets.iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn a_cached_client_record_follows_every_change_on_its_node() {
    for db in TestDb::all().await {
        let s = db
            .store
            .clone()
            .with_client_cache(100, Duration::from_secs(3600))
            .await
            .unwrap();
        let o = with_org(&s).await;
        let a = app(o.id, 1);
        let first = secret(a.id, SecretState::Current, 1);
        s.create_app(&a, &first, None, &[]).await.unwrap();
        assert_eq!(
            secret_ids(&*cached_read(&s, &a.client_id).await),
            vec![first.id]
        );

        let second = replace_current(&s, a.id, 2).await;
        let rec = s.load_client(&a.client_id).await.unwrap().unwrap();
        assert_eq!(secret_ids(&rec), vec![second.id], "{}", s.backend());

        cached_read(&s, &a.client_id).await;
        let mut changed = a.clone();
        changed.scopes = vec!["x".into()];
        assert!(s.update_app(&changed, &[]).await.unwrap());
        let rec = s.load_client(&a.client_id).await.unwrap().unwrap();
        assert_eq!(rec.app.scopes, vec!["x".to_string()]);

        cached_read(&s, &a.client_id).await;
        let m = Membership {
            org_id: o.id,
            principal: Principal::App(a.id),
            role: Role::Developer,
            created_at: T0,
        };
        s.put_membership(&m, &[]).await.unwrap();
        assert!(
            s.load_client(&a.client_id)
                .await
                .unwrap()
                .unwrap()
                .app
                .service_account
        );
        cached_read(&s, &a.client_id).await;
        let removed = s
            .change_membership(o.id, &|_| {
                Ok(MembershipChanges {
                    remove: vec![Principal::App(a.id)],
                    ..Default::default()
                })
            })
            .await
            .unwrap();
        assert_eq!(removed.remove, [Principal::App(a.id)]);
        assert!(
            !s.load_client(&a.client_id)
                .await
                .unwrap()
                .unwrap()
                .app
                .service_account
        );

        cached_read(&s, &a.client_id).await;
        assert!(s.delete_app(a.id, &[]).await.unwrap());
        assert!(s.load_client(&a.client_id).await.unwrap().is_none());
    }
}

/// Waits up to 5 s for `node` to see `want` as the secrets of `client_id`.
async fn sees_secrets(node: &SqlStore, client_id: &str, want: &[SecretId]) -> bool {
    for _ in 0..100 {
        let rec = node.load_client(client_id).await.unwrap().unwrap();
        if secret_ids(&rec) == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn other_postgres_nodes_drop_a_changed_record_even_after_losing_their_listener() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Node A's connections carry a name of their own, so the test can cut its listener.
    let name = format!("rekey_cache_test_{}", uuid::Uuid::new_v4().simple());
    let a_url = format!("{}&application_name={name}", db.url);
    let age = Duration::from_secs(3600);
    let node_a = SqlStore::connect(&a_url, 2)
        .await
        .unwrap()
        .with_client_cache(100, age)
        .await
        .unwrap();
    let node_b = SqlStore::connect(&db.url, 2)
        .await
        .unwrap()
        .with_client_cache(100, age)
        .await
        .unwrap();
    let o = with_org(&node_b).await;
    let a = app(o.id, 1);
    s_create(&node_b, &a, 1).await;
    cached_read(&node_a, &a.client_id).await;

    let second = replace_current(&node_b, a.id, 2).await;
    assert!(
        sees_secrets(&node_a, &a.client_id, &[second.id]).await,
        "node A still serves the secret node B revoked"
    );

    cached_read(&node_a, &a.client_id).await;
    let cut: Vec<bool> = sqlx_terminate_listener(&db.store, &name).await;
    assert_eq!(cut, vec![true], "node A's listener was found and cut");
    let third = replace_current(&node_b, a.id, 3).await;
    assert!(
        sees_secrets(&node_a, &a.client_id, &[third.id]).await,
        "a change made while node A's listener was down was missed"
    );
    // Once the listener is back, the cache serves again and still hears changes.
    cached_read(&node_a, &a.client_id).await;
    let fourth = replace_current(&node_b, a.id, 4).await;
    assert!(sees_secrets(&node_a, &a.client_id, &[fourth.id]).await);
}

async fn s_create(s: &SqlStore, a: &App, hash: u8) {
    s.create_app(a, &secret(a.id, SecretState::Current, hash), None, &[])
        .await
        .unwrap();
}

/// Terminates the listening connections named `name`; one `true` per connection cut.
async fn sqlx_terminate_listener(admin: &SqlStore, name: &str) -> Vec<bool> {
    admin
        .terminate_backends(&format!(
            "application_name = '{name}' AND query ILIKE 'LISTEN%'"
        ))
        .await
        .unwrap()
}

/// A TCP proxy that can stop forwarding without closing anything: a connection that dies in
/// silence, as behind a NAT or a proxy that dropped it. Returns its port and the switch.
async fn freezable_proxy(target: String) -> (u16, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let frozen = Arc::new(AtomicBool::new(false));
    let switch = frozen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let (frozen, target) = (frozen.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                tokio::join!(
                    pump(&mut in_read, &mut out_write, &frozen),
                    pump(&mut out_read, &mut in_write, &frozen)
                );
            });
        }
    });
    (port, switch)
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    frozen: &AtomicBool,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Swallow everything from now on and keep both sockets open.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its host and port replaced by 127.0.0.1:`port`; also returns the old host:port.
fn via_port(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let target = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{user}127.0.0.1:{port}{path}"), target)
}

#[tokio::test]
async fn a_node_whose_listener_dies_in_silence_stops_serving_from_its_cache() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (_, target) = via_port(&db.url, 0);
    let (port, frozen) = freezable_proxy(target).await;
    let (a_url, _) = via_port(&db.url, port);
    let age = Duration::from_secs(3600);
    let node_a = SqlStore::connect(&a_url, 2)
        .await
        .unwrap()
        .with_client_cache(100, age)
        .await
        .unwrap();
    let node_b = &db.store;
    let o = with_org(node_b).await;
    let a = app(o.id, 1);
    let first = secret(a.id, SecretState::Current, 1);
    node_b.create_app(&a, &first, None, &[]).await.unwrap();
    cached_read(&node_a, &a.client_id).await;

    // Node A's connections now die without a word; node B revokes the first secret.
    frozen.store(true, Ordering::SeqCst);
    replace_current(node_b, a.id, 2).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let read =
            tokio::time::timeout(Duration::from_millis(500), node_a.load_client(&a.client_id));
        match read.await {
            Ok(Ok(Some(rec))) if secret_ids(&rec) == vec![first.id] => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "node A still serves a revoked secret from its cache 10 s later"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The cache is bypassed: the read goes to a database node A cannot reach now.
            _ => break,
        }
    }
}

#[tokio::test]
async fn a_membership_change_writes_users_members_tokens_and_audit_together_or_nothing() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let user = User {
            id: UserId::new(),
            email: format!("{}@example.com", uuid::Uuid::new_v4().simple()),
            display_name: "new".into(),
            created_at: T0,
        };
        let token = ApiToken {
            id: ApiTokenId::new(),
            user_id: user.id,
            org_id: o.id,
            name: "initial".into(),
            hash: rekey_core::crypto::SecretHash([7; 32]),
            hint: String::new(),
            created_at: T0,
            expires_at: None,
            revoked_at: None,
        };
        let changes = MembershipChanges {
            new_users: vec![user.clone()],
            put: vec![Membership {
                org_id: o.id,
                principal: Principal::User(user.id),
                role: Role::Developer,
                created_at: T0,
            }],
            new_api_tokens: vec![token.clone()],
            audit: vec![AuditContext::default()
                .event(T0, "member.role_set")
                .org(o.id)],
            ..Default::default()
        };
        // A refusal of the plan writes nothing, and comes back unchanged.
        let refused = s
            .change_membership(o.id, &|_| Err(OpError::LastOwner))
            .await;
        assert!(
            matches!(refused, Err(OpError::LastOwner)),
            "{}",
            s.backend()
        );
        // A plan whose second write fails (a token for a user that does not exist) leaves
        // nothing behind either.
        let broken = MembershipChanges {
            new_api_tokens: vec![ApiToken {
                user_id: UserId::new(),
                ..token.clone()
            }],
            ..changes.clone()
        };
        assert!(s
            .change_membership(o.id, &|_| Ok(broken.clone()))
            .await
            .is_err());
        assert!(
            s.get_user(user.id).await.unwrap().is_none(),
            "{}",
            s.backend()
        );
        assert!(s.list_memberships(o.id).await.unwrap().is_empty());

        s.change_membership(o.id, &|members| {
            assert!(members.is_empty());
            Ok(changes.clone())
        })
        .await
        .unwrap();
        assert_eq!(
            s.get_user(user.id).await.unwrap().unwrap().email,
            user.email
        );
        let m = s
            .get_membership(o.id, Principal::User(user.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.role, Role::Developer);
        assert!(s.get_api_token(token.id).await.unwrap().is_some());
        let audit = s
            .list_audit(&AuditFilter::org(o.id), Page::default())
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert!(matches!(
            s.change_membership(OrgId::new(), &|_| Ok(MembershipChanges::default()))
                .await,
            Err(OpError::NotFound)
        ));
    }
}

#[tokio::test]
async fn a_secret_plan_sees_the_apps_service_account_role_as_it_is_under_the_lock() {
    for db in TestDb::all().await {
        let s = &db.store;
        let o = with_org(s).await;
        let a = app(o.id, 1);
        s.create_app(&a, &secret(a.id, SecretState::Current, 1), None, &[])
            .await
            .unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |locked: &LockedApp, _: &[Secret]| {
            seen.lock().unwrap().push(locked.service_account_role);
            Ok(SecretChanges::default())
        };
        s.change_secrets(a.id, &record).await.unwrap();
        s.put_membership(
            &Membership {
                org_id: o.id,
                principal: Principal::App(a.id),
                role: Role::OrgAdmin,
                created_at: T0,
            },
            &[],
        )
        .await
        .unwrap();
        s.change_secrets(a.id, &record).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [None, Some(Role::OrgAdmin)],
            "{}",
            s.backend()
        );
        // A membership for an app that is not there is refused, not left behind.
        let ghost = s
            .change_membership(o.id, &|_| {
                Ok(MembershipChanges {
                    put: vec![Membership {
                        org_id: o.id,
                        principal: Principal::App(AppId::new()),
                        role: Role::Developer,
                        created_at: T0,
                    }],
                    ..Default::default()
                })
            })
            .await;
        assert!(matches!(ghost, Err(OpError::NotFound)), "{}", s.backend());
        assert_eq!(s.list_memberships(o.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_as_refused_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let e = SqlStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/test"), 2)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(chain.to_lowercase().contains("refused"), "{chain}");
}
