//! Rotation with guaranteed delivery: SP-API rotate to file and webhook destinations, the
//! grace period, destinations that are down, racing dispatchers, and the native operations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rekey_core::clock::Clock as _;
use rekey_core::model::{AppId, NotificationId};
use rekey_core::notify::{envelope, Delivery, DeliveryState, Destination, NotificationType};
use rekey_core::store::{Page, Store};
use rekey_dispatch::{DispatchSettings, Dispatcher, SendError, Sink};
use rekey_server::Application;
use rekey_store::testing::TestDb;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::helpers::{spawn_app, spawn_app_on, test_config};

const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";
const DAY: u64 = 86_400;

fn read_spool(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                assert_eq!(
                    std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
            out.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn spapi_rotation_delivers_the_new_secret_and_the_old_one_works_for_seven_days() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let c = app.create_app(json!({})).await;
        let (id, old) = (c.app.client_id.clone(), c.client_secret.clone());
        app.set_destination(
            c.app.id,
            "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            json!({"kind": "file", "directory": "out"}),
        )
        .await;
        assert_eq!(app.valid_secrets(c.app.id).await, 1);

        let token = app.lwa_token(&id, &old, Some(ROTATION_SCOPE)).await;
        let res = app.spapi_rotate(&token).await;
        assert_eq!(res.status(), 204);
        assert!(res.headers().contains_key("x-amzn-requestid"));
        assert_eq!(res.headers()["x-amzn-ratelimit-limit"], "0.0167");
        assert!(
            res.bytes().await.unwrap().is_empty(),
            "the new secret is never in the response"
        );
        assert_eq!(app.valid_secrets(c.app.id).await, 2);
        assert!(
            read_spool(&app.spool_dir("out")).is_empty(),
            "nothing delivered before the dispatcher runs"
        );

        assert_eq!(app.drain().await, 1);
        let files = read_spool(&app.spool_dir("out"));
        assert_eq!(files.len(), 1);
        let n = &files[0];
        assert_eq!(n["notificationVersion"], "1.0");
        assert_eq!(n["notificationType"], "APPLICATION_OAUTH_CLIENT_NEW_SECRET");
        assert_eq!(n["payloadVersion"], "2023-11-30");
        assert_eq!(n["notificationMetadata"]["applicationId"], id);
        assert!(n["notificationMetadata"]["notificationId"].is_string());
        let p = &n["payload"]["applicationOAuthClientNewSecret"];
        assert_eq!(p["clientId"], id);
        let new = p["newClientSecret"].as_str().unwrap().to_string();
        assert_ne!(new, old);
        let now = app.clock.now();
        assert_eq!(
            p["oldClientSecretExpiryTime"],
            now.plus_secs(7 * DAY as i64).to_rfc3339()
        );
        assert!(p["newClientSecretExpiryTime"].is_string());

        // Both work during the grace period; the old one stops exactly at its end.
        assert_eq!(app.status_of(&id, &new).await, 200);
        assert_eq!(app.status_of(&id, &old).await, 200);
        app.clock.advance(Duration::from_secs(7 * DAY - 1));
        assert_eq!(app.status_of(&id, &old).await, 200);
        assert_eq!(app.valid_secrets(c.app.id).await, 2);
        app.clock.advance(Duration::from_secs(1));
        assert_eq!(app.status_of(&id, &old).await, 400);
        assert_eq!(app.status_of(&id, &new).await, 200);
        assert_eq!(app.valid_secrets(c.app.id).await, 1);

        // The sweep records the expiry; the delivered payload is wiped.
        let report = app.state.ops.sweep_expiry().await.unwrap();
        assert_eq!(report.expired, 1);
        let deliveries = app
            .store()
            .list_deliveries(app.org_id, None, None, Page::default())
            .await
            .unwrap();
        assert_eq!(deliveries[0].state, DeliveryState::Delivered);
        assert_eq!(deliveries[0].sealed_payload, None);
        let audit: Vec<String> = app
            .store()
            .list_audit(
                &rekey_core::store::AuditFilter::org(app.org_id),
                Page::default(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        for action in [
            "secret.rotated",
            "notification.enqueued",
            "notification.delivered",
            "secret.expired",
        ] {
            assert!(
                audit.iter().any(|a| a == action),
                "audit has {action}: {audit:?}"
            );
        }
        app.shutdown().await;
    }
}

/// Searches the SQLite database and its WAL for `needle`. The database file must exist and
/// hold data (a missing file would otherwise pass); the WAL and shared-memory files may be
/// gone after a checkpoint.
fn assert_not_in_database(path: &std::path::Path, needle: &str, when: &str) {
    let main = std::fs::read(path).expect("the database file exists");
    let mut searched = 0;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let bytes = if suffix.is_empty() {
            main.clone()
        } else {
            match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{file}: {e}"),
            }
        };
        searched += bytes.len();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the new secret is in {file} {when}"
        );
    }
    // The app, its secrets and the outbox are somewhere in what was searched.
    assert!(searched > 8192, "searched only {searched} bytes {when}");
}

#[tokio::test]
async fn the_new_secret_is_not_in_the_database_file_before_or_after_delivery() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "out"}),
    )
    .await;
    let owner = app.owner_access_token().await;
    let res = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/apps/{}/secrets/rotate",
            app.org_id, c.app.id
        )))
        .bearer_auth(owner)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["clientSecret"].as_str().unwrap().to_string();
    let path = app.db.sqlite_path.clone().unwrap();
    // Committed, waiting in the outbox (sealed), not delivered yet.
    assert_not_in_database(&path, &new, "before delivery");
    assert_eq!(app.drain().await, 1);
    let delivered = read_spool(&app.spool_dir("out"))[0]["payload"]
        ["applicationOAuthClientNewSecret"]["newClientSecret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(delivered, new);
    assert_not_in_database(&path, &new, "after delivery");
    // Kept until the end: dropping it deletes the files.
    let _db = app.shutdown().await;
    assert_not_in_database(&path, &new, "after shutdown");
}

/// An in-process webhook receiver whose answer can be switched.
#[derive(Clone)]
struct Receiver {
    status: Arc<AtomicU16>,
    tx: mpsc::UnboundedSender<(HeaderMap, Bytes)>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap();
    if status.is_success() {
        r.tx.send((headers, body)).unwrap();
    }
    status
}

async fn start_receiver() -> (
    String,
    Arc<AtomicU16>,
    mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let status = Arc::new(AtomicU16::new(200));
    let r = Receiver {
        status: status.clone(),
        tx,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, status, rx)
}

#[tokio::test]
async fn a_webhook_down_during_rotation_gets_the_same_notification_once_it_is_back() {
    let app = spawn_app().await;
    let (url, status, mut rx) = start_receiver().await;
    let c = app.create_app(json!({})).await;
    let dest = app
        .set_destination(
            c.app.id,
            "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            json!({"kind": "webhook", "url": url}),
        )
        .await;
    let signing_secret = dest["signingSecret"].as_str().unwrap().to_string();
    assert!(signing_secret.starts_with("whsec_"));

    status.store(500, Ordering::SeqCst);
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, Some(ROTATION_SCOPE))
        .await;
    assert_eq!(
        app.spapi_rotate(&token).await.status(),
        204,
        "the rotation commits while the destination is down"
    );
    assert_eq!(app.drain().await, 1);
    let d = &app
        .store()
        .list_deliveries(app.org_id, None, None, Page::default())
        .await
        .unwrap()[0];
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(
        d.last_error.as_deref(),
        Some("could not deliver: the receiver answered HTTP 500")
    );
    assert!(
        d.next_attempt_at > app.clock.now(),
        "the retry waits for its backoff"
    );
    assert_eq!(
        app.status_of(&c.app.client_id, &c.client_secret).await,
        200,
        "the old secret still works"
    );
    assert_eq!(app.valid_secrets(c.app.id).await, 2);

    // Still down for a while: more failures, all retried later.
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(600));
        assert_eq!(app.drain().await, 1);
    }
    status.store(200, Ordering::SeqCst);
    assert_eq!(
        app.drain().await,
        0,
        "nothing is due before the backoff ends"
    );
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(app.drain().await, 1);
    let (headers, body) = rx.try_recv().expect("delivered");
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let expected = rekey_dispatch::sinks::sign_webhook(&signing_secret, id, ts, &body).unwrap();
    assert_eq!(headers["webhook-signature"].to_str().unwrap(), expected);
    let n: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(n["notificationMetadata"]["notificationId"], id);
    assert_eq!(
        n["notificationMetadata"]["notificationId"],
        d.notification_id.to_string()
    );
    let new = n["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"]
        .as_str()
        .unwrap();
    assert_eq!(app.status_of(&c.app.client_id, new).await, 200);
    let d = app.store().get_delivery(d.id).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 5));
}

#[tokio::test]
async fn a_delivery_dies_after_its_retry_budget_and_an_operator_retries_it() {
    let mut config = test_config();
    config.delivery_max_attempts = 2;
    let app = spawn_app_on(TestDb::sqlite().await, config).await;
    let (url, status, mut rx) = start_receiver().await;
    status.store(503, Ordering::SeqCst);
    let c = app.create_app(json!({})).await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "webhook", "url": url}),
    )
    .await;
    let token = app.owner_access_token().await;
    let rotated: Value = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/apps/{}/secrets/rotate",
            app.org_id, c.app.id
        )))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rotated["notificationId"].is_string());
    app.drain().await;
    app.clock.advance(Duration::from_secs(3600));
    app.drain().await;
    let token = app.owner_access_token().await;
    let all: Value = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/deliveries", app.org_id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list: Value = app
        .http
        .get(app.url(&format!(
            "/api/v1/orgs/{}/deliveries?state=dead",
            app.org_id
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let delivery_id = list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["items"][0]["attempts"], 2);

    status.store(200, Ordering::SeqCst);
    let res = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/deliveries/{delivery_id}/retry",
            app.org_id
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "pending");
    assert_eq!(app.drain().await, 1);
    let (_, body) = rx.try_recv().unwrap();
    let n: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        n["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"],
        rotated["clientSecret"]
    );
    let res = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/deliveries/{delivery_id}/retry",
            app.org_id
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}

/// A sink that records, per notification, how many sends run at once and how many happened.
#[derive(Default)]
struct CountingSink {
    state: Mutex<HashMap<NotificationId, (u32, u32, u32)>>, // (in flight, max in flight, sends)
}

#[async_trait::async_trait]
impl Sink for CountingSink {
    async fn send(&self, _: &Destination, d: &Delivery, _: &[u8]) -> Result<(), SendError> {
        {
            let mut s = self.state.lock().unwrap();
            let e = s.entry(d.notification_id).or_default();
            e.0 += 1;
            e.1 = e.1.max(e.0);
            e.2 += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.state
            .lock()
            .unwrap()
            .get_mut(&d.notification_id)
            .unwrap()
            .0 -= 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_racing_deliver_each_notification_and_never_concurrently() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let c = app.create_app(json!({})).await;
        let dest = app
            .set_destination(
                c.app.id,
                "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
                json!({"kind": "file", "directory": "unused"}),
            )
            .await;
        let dest_id =
            rekey_core::model::DestinationId::parse(dest["id"].as_str().unwrap()).unwrap();
        let now = app.clock.now();
        let items: Vec<Delivery> = (0..60)
            .map(|_| {
                let nid = NotificationId::new();
                let env = envelope(
                    NotificationType::NewSecret,
                    nid,
                    &c.app.client_id,
                    dest_id,
                    json!({}),
                    now,
                );
                Delivery::new(
                    &app.state.ops.outbox_sealer,
                    nid,
                    AppId(c.app.id),
                    app.org_id,
                    NotificationType::NewSecret,
                    dest_id,
                    &env,
                    None,
                    now,
                )
            })
            .collect();
        app.store().enqueue_deliveries(&items, &[]).await.unwrap();
        let sink = Arc::new(CountingSink::default());
        let store: Arc<dyn Store> = Arc::new(app.db.store.clone());
        let make = |owner: &str| {
            Arc::new(Dispatcher::new(
                store.clone(),
                app.clock.clone(),
                app.key.sealer("outbox"),
                sink.clone(),
                DispatchSettings {
                    owner: owner.into(),
                    batch: 4,
                    ..Default::default()
                },
                Arc::new(tokio::sync::Notify::new()),
            ))
        };
        let (a, b) = (make("a"), make("b"));
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { a.drain().await }),
            tokio::spawn(async move { b.drain().await })
        );
        let total = ra.unwrap().unwrap() + rb.unwrap().unwrap();
        assert_eq!(total, 60, "{}", store.backend());
        {
            let s = sink.state.lock().unwrap();
            assert_eq!(s.len(), 60);
            assert!(s.values().all(|&(_, max, sends)| max == 1 && sends >= 1));
        }
        let pending = deliveries_in(&app, DeliveryState::Pending).await;
        assert!(pending.is_empty());
    }
}

/// Records the order of sends and how many run at once, overall and per app.
#[derive(Default)]
struct OrderSink {
    delay: Duration,
    state: Mutex<OrderState>,
}

#[derive(Default)]
struct OrderState {
    sent: Vec<(AppId, NotificationId)>,
    in_flight: HashMap<AppId, u32>,
    most_per_app: u32,
    total_in_flight: u32,
    most_overall: u32,
}

#[async_trait::async_trait]
impl Sink for OrderSink {
    async fn send(&self, _: &Destination, d: &Delivery, _: &[u8]) -> Result<(), SendError> {
        {
            let mut s = self.state.lock().unwrap();
            s.sent.push((d.app_id, d.notification_id));
            let n = s.in_flight.entry(d.app_id).or_default();
            *n += 1;
            let n = *n;
            s.most_per_app = s.most_per_app.max(n);
            s.total_in_flight += 1;
            s.most_overall = s.most_overall.max(s.total_in_flight);
        }
        tokio::time::sleep(self.delay).await;
        let mut s = self.state.lock().unwrap();
        *s.in_flight.get_mut(&d.app_id).unwrap() -= 1;
        s.total_in_flight -= 1;
        Ok(())
    }
}

/// `per_app` new-secret deliveries for each of `apps` new apps (each with a file
/// destination), due one millisecond apart: the claim order. Returns them per app, in order.
async fn enqueue_for_apps(
    app: &crate::helpers::TestApp,
    apps: usize,
    per_app: usize,
) -> Vec<Vec<NotificationId>> {
    let mut out = Vec::new();
    let now = app.clock.now();
    let mut items = Vec::new();
    for _ in 0..apps {
        let c = app.create_app(json!({})).await;
        let dest = app
            .set_destination(
                c.app.id,
                "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
                json!({"kind": "file", "directory": "unused"}),
            )
            .await;
        let dest_id =
            rekey_core::model::DestinationId::parse(dest["id"].as_str().unwrap()).unwrap();
        let mut ids = Vec::new();
        for _ in 0..per_app {
            let nid = NotificationId::new();
            let due = rekey_core::Timestamp::from_millis(now.as_millis() + items.len() as i64);
            let env = envelope(
                NotificationType::NewSecret,
                nid,
                &c.app.client_id,
                dest_id,
                json!({}),
                due,
            );
            items.push(Delivery::new(
                &app.state.ops.outbox_sealer,
                nid,
                AppId(c.app.id),
                app.org_id,
                NotificationType::NewSecret,
                dest_id,
                &env,
                None,
                due,
            ));
            ids.push(nid);
        }
        out.push(ids);
    }
    // Interleave the apps' rows, so that the claim order is not simply app by app.
    items.sort_by_key(|d| {
        (
            d.next_attempt_at.as_millis() % per_app as i64,
            d.next_attempt_at,
        )
    });
    app.store().enqueue_deliveries(&items, &[]).await.unwrap();
    out
}

/// The org's deliveries in `state` (the first 1,000).
async fn deliveries_in(app: &crate::helpers::TestApp, state: DeliveryState) -> Vec<Delivery> {
    app.store()
        .list_deliveries(
            app.org_id,
            None,
            Some(state),
            Page {
                start: 0,
                limit: 1000,
            },
        )
        .await
        .unwrap()
}

fn dispatcher(
    app: &crate::helpers::TestApp,
    sink: Arc<dyn Sink>,
    settings: DispatchSettings,
) -> Dispatcher {
    Dispatcher::new(
        Arc::new(app.db.store.clone()),
        app.clock.clone(),
        app.key.sealer("outbox"),
        sink,
        settings,
        Arc::new(tokio::sync::Notify::new()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sends_apps_in_parallel_and_each_apps_notifications_in_order() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let expected = enqueue_for_apps(&app, 4, 3).await;
        app.clock.advance(Duration::from_secs(1));
        let sink = Arc::new(OrderSink {
            delay: Duration::from_millis(30),
            ..Default::default()
        });
        let d = dispatcher(&app, sink.clone(), DispatchSettings::default());
        // One batch: claimed, sent, and recorded in one transaction.
        assert_eq!(d.try_execute_batch().await.unwrap(), 12);
        {
            let s = sink.state.lock().unwrap();
            assert_eq!(s.sent.len(), 12);
            assert_eq!(
                s.most_per_app, 1,
                "one app's notifications go one at a time"
            );
            assert!(
                s.most_overall >= 2,
                "apps are sent in parallel: {}",
                s.most_overall
            );
            for ids in &expected {
                let order: Vec<NotificationId> = s
                    .sent
                    .iter()
                    .filter(|(_, n)| ids.contains(n))
                    .map(|(_, n)| *n)
                    .collect();
                assert_eq!(
                    &order, ids,
                    "each app's notifications in the order they were due"
                );
            }
        }
        let delivered = deliveries_in(&app, DeliveryState::Delivered).await;
        assert_eq!(delivered.len(), 12);
        assert!(delivered
            .iter()
            .all(|d| d.attempts == 1 && d.sealed_payload.is_none()));
        let audit = app
            .store()
            .list_audit(
                &rekey_core::store::AuditFilter {
                    org: Some(app.org_id),
                    action: Some("notification.delivered".into()),
                    ..Default::default()
                },
                Page {
                    start: 0,
                    limit: 100,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            audit.len(),
            12,
            "one audit event per delivery, in the batch's transaction"
        );
        let report = app
            .store()
            .verify_audit_chain(&app.org_id.to_string())
            .await
            .unwrap();
        assert!(report.broken.is_none(), "{report:?}");
        assert!(report.events >= 12, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_could_not_end_within_the_lease_is_released_not_counted() {
    let app = spawn_app().await;
    let expected = enqueue_for_apps(&app, 1, 3).await;
    app.clock.advance(Duration::from_secs(1));
    let sink = Arc::new(OrderSink {
        delay: Duration::from_millis(600),
        ..Default::default()
    });
    // Lease 3 s, sends up to 1 s: a send must start within 1 s of the claim (1 s is kept
    // for recording). The third send would start at 1.2 s.
    let settings = DispatchSettings {
        lease: Duration::from_secs(3),
        send_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let d = dispatcher(&app, sink.clone(), settings);
    assert_eq!(d.try_execute_batch().await.unwrap(), 3);
    assert_eq!(sink.state.lock().unwrap().sent.len(), 2);
    let pending = deliveries_in(&app, DeliveryState::Pending).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].notification_id, expected[0][2]);
    assert_eq!(
        pending[0].attempts, 0,
        "the attempt that never started is not counted"
    );
    assert_eq!(
        pending[0].lease_owner, None,
        "released at once, not at the lease's end"
    );
    // The next batch takes it at once.
    assert_eq!(d.try_execute_batch().await.unwrap(), 1);
    let s = sink.state.lock().unwrap();
    let order: Vec<NotificationId> = s.sent.iter().map(|(_, n)| *n).collect();
    assert_eq!(order, expected[0]);
}

#[tokio::test]
async fn native_rotate_regenerate_and_finish_follow_the_rules() {
    let app = spawn_app().await;
    let c = app
        .create_app(json!({ "rotationGraceSeconds": 3600 }))
        .await;
    let token = app.owner_access_token().await;
    let base = app.url(&format!(
        "/api/v1/orgs/{}/apps/{}/secrets",
        app.org_id, c.app.id
    ));
    let post = |path: &str, body: Value| {
        app.http
            .post(format!("{base}/{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };

    let r: Value = post("rotate", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = r["clientSecret"].as_str().unwrap().to_string();
    assert!(
        r["notificationId"].is_null(),
        "no destination, no notification"
    );
    assert_eq!(
        r["previousExpiresAt"],
        app.clock.now().plus_secs(3600).to_rfc3339()
    );
    assert_eq!(app.status_of(&c.app.client_id, &c.client_secret).await, 200);
    assert_eq!(app.status_of(&c.app.client_id, &new).await, 200);

    let res = post("rotate", json!({ "graceSeconds": 10 })).await.unwrap();
    assert_eq!(
        res.status(),
        409,
        "a second rotation during the overlap is refused"
    );

    let f: Value = post("finish", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(app.status_of(&c.app.client_id, &c.client_secret).await, 400);
    let f: Value = post("finish", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        f["revoked"].as_array().unwrap().is_empty(),
        "finish is idempotent"
    );

    let r2: Value = post("rotate", json!({ "graceSeconds": 0 }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newer = r2["clientSecret"].as_str().unwrap().to_string();
    assert_eq!(
        app.status_of(&c.app.client_id, &new).await,
        400,
        "grace 0 ends the old secret now"
    );

    let g: Value = post("regenerate", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let regenerated = g["clientSecret"].as_str().unwrap();
    assert_eq!(app.status_of(&c.app.client_id, &newer).await, 400);
    assert_eq!(app.status_of(&c.app.client_id, regenerated).await, 200);
    assert_eq!(app.valid_secrets(c.app.id).await, 1);
}

#[tokio::test]
async fn expiry_warnings_are_queued_once_per_threshold() {
    let app = spawn_app().await;
    let c = app
        .create_app(json!({ "secretLifetimeSeconds": 100 * DAY }))
        .await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY",
        json!({"kind": "file", "directory": "out"}),
    )
    .await;
    let sweep = || app.state.ops.sweep_expiry();
    assert_eq!(sweep().await.unwrap().warnings, 0);
    app.clock.advance(Duration::from_secs(10 * DAY));
    assert_eq!(sweep().await.unwrap().warnings, 1, "90 days left");
    assert_eq!(sweep().await.unwrap().warnings, 0, "sent once");
    app.clock.advance(Duration::from_secs(31 * DAY));
    assert_eq!(
        sweep().await.unwrap().warnings,
        1,
        "59 days left: the 60-day warning"
    );
    app.drain().await;
    let files = read_spool(&app.spool_dir("out"));
    assert_eq!(files.len(), 2);
    for f in &files {
        assert_eq!(
            f["notificationType"],
            "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"
        );
        let p = &f["payload"]["applicationOAuthClientSecretExpiry"];
        assert_eq!(p["clientId"], c.app.client_id);
        assert_eq!(p["clientSecretExpiryReason"], "PERIODIC_ROTATION");
        assert_eq!(
            p["clientSecretExpiryTime"],
            c.secret.expires_at.clone().unwrap()
        );
    }
}

#[tokio::test]
async fn destinations_are_set_listed_tested_and_removed() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let token = app.owner_access_token().await;
    let base = app.url(&format!(
        "/api/v1/orgs/{}/apps/{}/destinations",
        app.org_id, c.app.id
    ));
    for (body, status) in [
        (
            json!({"kind": "sqs", "queueUrl": "http://127.0.0.1:1/q"}),
            400,
        ),
        (json!({"kind": "pigeon"}), 400),
        (json!({"kind": "file", "directory": "/etc/absolute"}), 400),
        (json!({"kind": "file", "directory": "../escape"}), 400),
        (json!({"kind": "webhook", "url": "x", "extra": 1}), 400),
    ] {
        let res = app
            .http
            .put(format!("{base}/APPLICATION_OAUTH_CLIENT_NEW_SECRET"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
    }
    let res = app
        .http
        .put(format!("{base}/NOT_A_TYPE"))
        .bearer_auth(&token)
        .json(&json!({"kind": "file", "directory": "tmp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "out"}),
    )
    .await;
    let list: Value = app
        .http
        .get(&base)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["kind"], "file");
    let res = app
        .http
        .post(format!("{base}/APPLICATION_OAUTH_CLIENT_NEW_SECRET/test"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    app.drain().await;
    let files = read_spool(&app.spool_dir("out"));
    assert!(files[0]["payload"]["testNotification"].is_object());
    let res = app
        .http
        .delete(format!("{base}/APPLICATION_OAUTH_CLIENT_NEW_SECRET"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .http
        .get(format!("{base}/APPLICATION_OAUTH_CLIENT_NEW_SECRET"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn plain_http_destinations_and_endpoint_overrides_need_the_operators_consent() {
    let mut config = test_config();
    config.allow_insecure_destinations = false;
    config.allowed_destination_networks = Vec::new();
    let app = spawn_app_on(TestDb::sqlite().await, config).await;
    let c = app.create_app(json!({})).await;
    let token = app.owner_access_token().await;
    let url = app.url(&format!(
        "/api/v1/orgs/{}/apps/{}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        app.org_id, c.app.id
    ));
    // Each refusal names the setting an operator would change.
    let insecure = "allow_insecure_destinations";
    let internal = "allowed_destination_networks";
    for (body, setting) in [
        (
            json!({"kind": "webhook", "url": "http://169.254.169.254/latest"}),
            insecure,
        ),
        // https to an internal address is no better: the server would probe its own network
        // for anyone who may set a destination (issue 15).
        (
            json!({"kind": "webhook", "url": "https://127.0.0.1:5432/"}),
            internal,
        ),
        (
            json!({"kind": "webhook", "url": "https://169.254.169.254/latest/meta-data/"}),
            internal,
        ),
        (
            json!({"kind": "webhook", "url": "https://[::1]:8443/"}),
            internal,
        ),
        (
            json!({"kind": "webhook", "url": "https://[::ffff:10.1.2.3]/"}),
            internal,
        ),
        (
            json!({"kind": "webhook", "url": "https://10.0.0.1/"}),
            internal,
        ),
        // A name is resolved: every address it has must be public.
        (
            json!({"kind": "webhook", "url": "https://localhost/hook"}),
            internal,
        ),
        (
            json!({"kind": "webhook", "url": "https://LOCALHOST.:8443/hook"}),
            internal,
        ),
        (
            json!({"kind": "sqs", "queueUrl": "https://sqs.us-east-1.amazonaws.com/1/q", "region": "us-east-1", "endpointUrl": "https://internal.example"}),
            insecure,
        ),
        (
            json!({"kind": "sqs", "queueUrl": "http://sqs.us-east-1.amazonaws.com/1/q", "region": "us-east-1"}),
            insecure,
        ),
    ] {
        let res = app
            .http
            .put(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let problem: Value = res.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(setting), "{body}: {detail}");
    }
    for body in [
        json!({"kind": "webhook", "url": "https://hooks.example/rekey"}),
        json!({"kind": "sqs", "queueUrl": "https://sqs.us-east-1.amazonaws.com/1/q", "region": "us-east-1"}),
    ] {
        let res = app
            .http
            .put(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{body}");
    }
}

#[tokio::test]
async fn an_sqs_destination_takes_its_region_from_the_queue_url_when_none_is_given() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let set = app
        .set_destination(
            c.app.id,
            "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            json!({"kind": "sqs", "queueUrl": "https://sqs.eu-west-2.amazonaws.com/123456789012/rekey"}),
        )
        .await;
    assert_eq!(set["region"], "eu-west-2", "{set}");
    // A URL that names no region (a local server) needs the region spelled out.
    let token = app.owner_access_token().await;
    let res = app
        .http
        .put(app.url(&format!(
            "/api/v1/orgs/{}/apps/{}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            app.org_id, c.app.id
        )))
        .bearer_auth(&token)
        .json(&json!({"kind": "sqs", "queueUrl": "http://127.0.0.1:4566/000000000000/rekey"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("region"));
}

/// A name that resolved to an allowed address when the destination was set may resolve to an
/// internal one later (DNS rebinding): every send resolves again, through the guard, and the
/// connection goes only to the addresses it checked. Here a node whose policy does not list
/// loopback refuses to deliver to `localhost` (the member sees a coarse reason, nothing about
/// the target), while a node that lists it delivers.
#[tokio::test]
async fn every_send_checks_the_address_it_connects_to() {
    let app = spawn_app().await;
    let (receiver, _status, mut rx) = start_receiver().await;
    let port = receiver
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/hook");
    let c = app.create_app(json!({})).await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "webhook", "url": format!("http://localhost:{port}/hook")}),
    )
    .await;
    let mut strict = test_config();
    strict.allowed_destination_networks = Vec::new();
    let other_node = Application::build_with(
        strict,
        Arc::new(app.db.store.clone()),
        app.clock.clone(),
        &app.key,
    )
    .await
    .unwrap();
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, Some(ROTATION_SCOPE))
        .await;
    assert_eq!(app.spapi_rotate(&token).await.status(), 204);
    assert_eq!(other_node.state().dispatcher.drain().await.unwrap(), 1);
    let d = &app
        .store()
        .list_deliveries(app.org_id, None, None, Page::default())
        .await
        .unwrap()[0];
    assert_eq!(d.state, DeliveryState::Pending);
    let error = d.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("could not deliver: the destination's address is not allowed"),
        "{error}"
    );
    assert!(
        !error.contains("127.0.0.1") && !error.contains(port),
        "{error}"
    );
    assert!(rx.try_recv().is_err(), "nothing reached the receiver");

    app.clock.advance(Duration::from_secs(600));
    assert_eq!(app.drain().await, 1);
    assert!(
        rx.try_recv().is_ok(),
        "a node that allows loopback delivers"
    );
}
