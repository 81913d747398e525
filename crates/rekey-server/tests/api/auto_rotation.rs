//! Rotation policies on a manual clock: the sweeper's pass rotates on schedule through the
//! same use case as the APIs (a notification in the spool, audit actor `policy`), retires the
//! previous secret only once the new one is used and the old one is quiet, never while the
//! old one is still used or the notification is dead, and runs once across two nodes.

use std::sync::Arc;
use std::time::Duration;

use rekey_core::clock::Clock as _;
use rekey_core::model::{AppId, Role};
use rekey_core::rotation_policy::{RotationBlock, Wait};
use rekey_core::store::{AuditFilter, Page};
use rekey_server::Application;
use serde_json::{json, Value};

use rekey_proto::native::CreatedApp;

use crate::helpers::{spawn_app_on, test_config, TestApp};

const DAY: i64 = 86_400;

/// A server whose last-use flush interval is 10 s (so the shortest quiet period is 30 s).
async fn app_on(db: rekey_store::testing::TestDb) -> TestApp {
    let config = rekey_server::config::Config {
        last_use_flush_seconds: 10,
        ..test_config()
    };
    spawn_app_on(db, config).await
}

async fn sqlite_app() -> TestApp {
    app_on(rekey_store::testing::TestDb::sqlite().await).await
}

/// An app whose secrets live 90 days, rotated 7 days before expiry and retired after an
/// hour of quiet, with its new secrets going to a spool directory.
async fn app_with_policy(app: &TestApp, dir: &str) -> CreatedApp {
    let c = app
        .create_app(json!({
            "secretLifetimeSeconds": 90 * DAY,
            // Tokens live a minute: the hour of quiet is not stretched.
            "accessTokenTtlSeconds": 60,
            "rotationPolicy": {"rotateBeforeExpirySeconds": 7 * DAY, "retireWhenUnusedSeconds": 3600},
        }))
        .await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": dir}),
    )
    .await;
    c
}

fn advance(app: &TestApp, secs: i64) {
    app.clock
        .advance(Duration::from_secs(u64::try_from(secs).unwrap()));
}

/// The new secrets delivered to a spool directory, oldest first.
fn delivered_secrets(dir: &std::path::Path) -> Vec<String> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let p = e.ok()?.path();
                    let n: Value = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                    Some((
                        n["eventTime"].as_str()?.to_string(),
                        n["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"]
                            .as_str()?
                            .to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.into_iter().map(|(_, s)| s).collect()
}

async fn policy_events(app: &TestApp, action: &str) -> Vec<rekey_core::model::AuditEvent> {
    app.store()
        .list_audit(
            &AuditFilter {
                org: Some(app.org_id),
                action: Some(action.into()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == "policy")
        .collect()
}

async fn status(app: &TestApp, client_id: &str) -> Value {
    let owner = app.owner_access_token().await;
    let res = app
        .http
        .get(app.url(&format!(
            "/api/v1/orgs/{}/apps/{client_id}/rotation-policy",
            app.org_id
        )))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_policy_rotates_on_schedule_and_retires_once_the_old_secret_is_quiet() {
    let app = sqlite_app().await;
    let c = app_with_policy(&app, "auto").await;
    let (id, old) = (c.app.client_id.as_str(), c.client_secret.as_str());
    let created = app.clock.now();
    let due = created.plus_secs(83 * DAY);
    assert_eq!(
        status(&app, id).await["nextRotationAt"],
        due.to_rfc3339().as_str()
    );

    // Nothing before the window opens.
    advance(&app, 83 * DAY - 1);
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert!(report.rotated.is_empty(), "{report:?}");

    advance(&app, 1);
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert_eq!(report.rotated, vec![AppId(c.app.id)]);
    assert_eq!(app.drain().await, 1);
    let new = delivered_secrets(&app.spool_dir("auto"));
    assert_eq!(new.len(), 1);
    let new = new[0].clone();
    let rotated = policy_events(&app, "secret.rotated").await;
    assert_eq!(rotated.len(), 1);
    // The old secret keeps working until its own expiry; both work now.
    assert_eq!(app.status_of(id, old).await, 200);
    assert_eq!(app.status_of(id, &new).await, 200);
    // A second pass rotates nothing more.
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert!(report.rotated.is_empty());

    // Some instances switched to the new secret, others still use the old one.
    advance(&app, 600);
    assert_eq!(app.status_of(id, &new).await, 200);
    assert_eq!(app.status_of(id, old).await, 200);
    let last_old_use = app.clock.now();
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    // Not even examined (the old secret is not quiet), but counted for the metric.
    assert!(report.waiting.is_empty(), "{report:?}");
    assert_eq!(report.waiting_counts.previous_still_used, 1);
    assert_eq!(status(&app, id).await["reason"], "previous_still_used");
    // Every instance switched; the old secret falls quiet.
    advance(&app, 60);
    assert_eq!(app.status_of(id, &new).await, 200);
    advance(&app, 3600 - 61);
    assert_eq!(app.clock.now(), last_old_use.plus_secs(3599));
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert!(report.retired.is_empty(), "{report:?}");
    advance(&app, 1);
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert_eq!(report.retired, vec![AppId(c.app.id)]);
    assert_ne!(app.status_of(id, old).await, 200);
    assert_eq!(app.status_of(id, &new).await, 200);
    assert_eq!(app.valid_secrets(c.app.id).await, 1);
    assert_eq!(
        policy_events(&app, "secret.rotation_finished").await.len(),
        1
    );
    // And the next rotation is scheduled for the new secret.
    let next = status(&app, id).await;
    assert_eq!(next["nextStep"], "nothing");
    assert_eq!(
        next["nextRotationAt"],
        due.plus_secs(83 * DAY).to_rfc3339().as_str()
    );
}

#[tokio::test]
async fn a_previous_secret_in_use_or_a_new_one_unused_is_never_retired() {
    let app = sqlite_app().await;
    let c = app_with_policy(&app, "busy").await;
    let (id, old) = (c.app.client_id.as_str(), c.client_secret.as_str());
    advance(&app, 83 * DAY);
    app.state.ops.run_rotation_policies().await.unwrap();
    app.drain().await;
    // Nobody switched: the new secret is never used, whatever the wait.
    for _ in 0..5 {
        advance(&app, DAY);
        let report = app.state.ops.run_rotation_policies().await.unwrap();
        assert_eq!(report.waiting_counts.new_secret_unused, 1, "{report:?}");
        assert!(report.retired.is_empty());
    }
    let new = delivered_secrets(&app.spool_dir("busy")).remove(0);
    assert_eq!(app.status_of(id, &new).await, 200);
    // One instance switched, another keeps using the old secret every half hour.
    for _ in 0..10 {
        advance(&app, 1800);
        assert_eq!(app.status_of(id, old).await, 200);
        let report = app.state.ops.run_rotation_policies().await.unwrap();
        assert!(report.retired.is_empty());
        assert_eq!(report.waiting_counts.previous_still_used, 1, "{report:?}");
    }
    assert_eq!(app.valid_secrets(c.app.id).await, 2);
}

#[tokio::test]
async fn no_destination_blocks_a_rotation_and_a_dead_notification_blocks_retirement() {
    let app = sqlite_app().await;
    let nowhere = app
        .create_app(json!({
            "secretLifetimeSeconds": 90 * DAY,
            "rotationPolicy": {"rotateBeforeExpirySeconds": 7 * DAY},
        }))
        .await;
    let c = app_with_policy(&app, "dead").await;
    advance(&app, 83 * DAY);
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert_eq!(
        report.blocked,
        vec![(AppId(nowhere.app.id), RotationBlock::NoDestination)]
    );
    assert_eq!(report.rotated, vec![AppId(c.app.id)]);
    assert_eq!(app.valid_secrets(nowhere.app.id).await, 1);
    assert_eq!(
        status(&app, &nowhere.app.client_id).await["reason"],
        "no_destination"
    );

    // The notification never arrived (given up on): the new secret may be unknown to the
    // service, even if something used it; the old one stays.
    app.db
        .store
        .execute_raw(&format!(
            "UPDATE deliveries SET state = 'dead' WHERE app_id = '{}'",
            c.app.id
        ))
        .await
        .unwrap();
    let new = app
        .store()
        .list_secrets(AppId(c.app.id))
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.state == rekey_core::model::SecretState::Current)
        .unwrap();
    app.store()
        .record_last_use(&[(new.id, app.clock.now())])
        .await
        .unwrap();
    advance(&app, 2 * DAY);
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert_eq!(
        report.waiting,
        vec![(AppId(c.app.id), Wait::NotificationDead)]
    );
    assert_eq!(app.valid_secrets(c.app.id).await, 2);
}

#[tokio::test]
async fn the_org_default_applies_unless_the_app_overrides_it() {
    let app = sqlite_app().await;
    let owner = app.owner_access_token().await;
    let policy_url = app.url(&format!("/api/v1/orgs/{}/rotation-policy", app.org_id));
    // Developers may read it, not change it.
    let developer = app.token_for_role(Role::Developer).await;
    let res = app
        .http
        .put(&policy_url)
        .bearer_auth(&developer)
        .json(&json!({"rotateBeforeExpirySeconds": 86400}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    for bad in [json!({"rotateBeforeExpirySeconds": -1}), json!({"x": 1})] {
        let res = app
            .http
            .put(&policy_url)
            .bearer_auth(&owner)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = app
        .http
        .put(&policy_url)
        .bearer_auth(&owner)
        .json(&json!({"rotateBeforeExpirySeconds": 86400}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(&policy_url)
        .bearer_auth(&developer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["rotateBeforeExpirySeconds"],
        86400
    );

    let mut apps = Vec::new();
    for (dir, own) in [
        ("inherits", json!({})),
        ("off", json!({"rotateBeforeExpirySeconds": 0})),
    ] {
        let c = app
            .create_app(json!({"secretLifetimeSeconds": 10 * DAY, "rotationPolicy": own}))
            .await;
        app.set_destination(
            c.app.id,
            "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            json!({"kind": "file", "directory": dir}),
        )
        .await;
        apps.push(c);
    }
    let inherits = status(&app, &apps[0].app.client_id).await;
    assert_eq!(inherits["effective"]["rotateBeforeExpirySeconds"], 86400);
    assert_eq!(inherits["org"]["rotateBeforeExpirySeconds"], 86400);
    assert_eq!(
        inherits["app"],
        json!({"rotateBeforeExpirySeconds": null, "retireWhenUnusedSeconds": null})
    );
    advance(&app, 9 * DAY);
    let report = app.state.ops.run_rotation_policies().await.unwrap();
    assert_eq!(report.rotated, vec![AppId(apps[0].app.id)]);
    let changed = policy_events(&app, "secret.rotated").await;
    assert_eq!(changed.len(), 1);
    // The change of the org's policy is in the audit trail.
    let events = app
        .store()
        .list_audit(
            &AuditFilter {
                org: Some(app.org_id),
                action: Some("org.rotation_policy_changed".into()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

/// Two nodes on one PostgreSQL database run the pass at the same moment: each app is
/// rotated once, with one notification.
#[tokio::test]
async fn two_nodes_run_a_policy_once() {
    let Some(db) = rekey_store::testing::TestDb::postgres().await else {
        return;
    };
    let app = app_on(db).await;
    let mut apps = Vec::new();
    for i in 0..5 {
        apps.push(app_with_policy(&app, &format!("two-{i}")).await);
    }
    let mut config = test_config();
    config.public_url = app.base.clone();
    config.last_use_flush_seconds = 10;
    config.file_destination_root = app.spool.clone();
    let other = Application::build_with(
        config,
        Arc::new(app.db.store.clone()),
        app.clock.clone(),
        &app.key,
    )
    .await
    .unwrap();
    advance(&app, 83 * DAY);
    let other = other.state();
    let (a, b) = tokio::join!(
        app.state.ops.run_rotation_policies(),
        other.ops.run_rotation_policies()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.rotated.len() + b.rotated.len(), apps.len(), "{a:?} {b:?}");
    assert_eq!(
        policy_events(&app, "secret.rotated").await.len(),
        apps.len()
    );
    let deliveries = app
        .store()
        .list_deliveries(app.org_id, None, None, Page::default())
        .await
        .unwrap();
    assert_eq!(deliveries.len(), apps.len());
    for c in &apps {
        assert_eq!(app.valid_secrets(c.app.id).await, 2);
    }
}

/// Expiry warnings say when the policy will rotate the secret (and say nothing of it
/// without a policy).
#[tokio::test]
async fn expiry_warnings_announce_the_automatic_rotation() {
    let app = sqlite_app().await;
    let with = app_with_policy(&app, "warned").await;
    let without = app
        .create_app(json!({"secretLifetimeSeconds": 90 * DAY}))
        .await;
    for (c, dir) in [(&with, "expiry-with"), (&without, "expiry-without")] {
        app.set_destination(
            c.app.id,
            "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY",
            json!({"kind": "file", "directory": dir}),
        )
        .await;
    }
    let created = app.clock.now();
    // 30 days before expiry: the 30-day warning.
    advance(&app, 60 * DAY);
    app.state.ops.sweep_expiry().await.unwrap();
    assert!(app.drain().await >= 2);
    let read = |dir: &str| -> Vec<Value> {
        std::fs::read_dir(app.spool_dir(dir))
            .unwrap()
            .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
            .collect()
    };
    let warned = read("expiry-with");
    assert_eq!(warned.len(), 1);
    let expiry = &warned[0]["payload"]["applicationOAuthClientSecretExpiry"];
    assert_eq!(
        expiry["automaticRotationTime"],
        created.plus_secs(83 * DAY).to_rfc3339().as_str()
    );
    let plain = read("expiry-without");
    assert!(plain[0]["payload"]["applicationOAuthClientSecretExpiry"]
        .get("automaticRotationTime")
        .is_none());
}
