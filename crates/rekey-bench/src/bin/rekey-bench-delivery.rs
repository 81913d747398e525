//! Sustained rotation with delivery (issue 16): rotations at a fixed rate, each on an app of
//! its own, for a fixed time, and the time from each rotate response to its notification at
//! the destination (a file in the spool, or a request to a webhook receiver in this process).
//! Every notification is checked: it must carry the secret the rotate response gave.
//!
//! Usage:
//!   rekey-bench-delivery seed <database url> <data dir> <apps> <file | webhook url>
//!       one org with an owner and `apps` apps, each with a new-secret destination (a `file`
//!       destination `bench/<app>`, or the webhook); prints the org id and an API token (JSON)
//!       and writes the app ids to `<data dir>/bench-apps.txt`
//!   rekey-bench-delivery run <server url> <org id> <api token> <data dir> <rate/s> <seconds>
//!       <spool root | webhook listen address>
//!       prints one `RESULT` line; exits 1 if a rotation failed or a notification is missing
//!       or wrong after the drain deadline (60 s)

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use rekey_bench::app_settings;
use rekey_core::apps::new_app;
use rekey_core::clock::{Clock, SystemClock};
use rekey_core::model::{Membership, Org, OrgId, Principal, Role, User, UserId};
use rekey_core::notify::{Destination, NotificationType, Target};
use rekey_core::ops::api_tokens::new_api_token;
use rekey_core::store::Store;
use rekey_proto::spapi::{NewSecretPayload, Notification};
use rekey_store::SqlStore;
use secrecy::ExposeSecret;

const APPS_FILE: &str = "bench-apps.txt";
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("seed") => {
            let [_, _, url, dir, apps, target] = args.as_slice() else {
                bail!("usage: rekey-bench-delivery seed <database url> <data dir> <apps> <file | webhook url>");
            };
            seed(url, Path::new(dir), apps.parse()?, target).await
        }
        Some("run") => {
            let [_, _, server, org, api_token, dir, rate, seconds, sink] = args.as_slice() else {
                bail!("usage: rekey-bench-delivery run <server url> <org id> <api token> <data dir> <rate> <seconds> <spool dir | listen address>");
            };
            run(
                server,
                org,
                api_token,
                Path::new(dir),
                rate.parse()?,
                seconds.parse()?,
                sink,
            )
            .await
        }
        _ => bail!("usage: rekey-bench-delivery seed|run ..."),
    }
}

async fn seed(url: &str, dir: &Path, count: usize, target: &str) -> anyhow::Result<()> {
    let key = rekey_bench::server_key(dir)?;
    let store = SqlStore::connect(url, 4).await?;
    store.migrate().await?;
    let now = SystemClock.now();
    let org = Org {
        id: OrgId::new(),
        name: "delivery-bench".into(),
        created_at: now,
    };
    store.create_org(&org, &[]).await?;
    let owner = User {
        id: UserId::new(),
        // Of its own org: the database may already hold rekey-bench-seed's bench user.
        email: format!("delivery-{}@example.com", org.id),
        display_name: "bench".into(),
        created_at: now,
    };
    store.create_user(&owner).await?;
    store
        .put_membership(
            &Membership {
                org_id: org.id,
                principal: Principal::User(owner.id),
                role: Role::OrgOwner,
                created_at: now,
            },
            &[],
        )
        .await?;
    let (token, api_token) = new_api_token(
        owner.id,
        org.id,
        "bench",
        None,
        &key.api_token_hasher(),
        now,
    );
    store.create_api_token(&token, &[]).await?;
    let hasher = key.secret_hasher();
    let webhook_sealer = key.sealer("webhook-keys");
    let mut ids = String::new();
    for i in 0..count {
        let (app, secret, _) = new_app(
            org.id,
            None,
            app_settings(&format!("delivery-{i}")),
            false,
            &hasher,
            "bench",
            now,
        )?;
        store.create_app(&app, &secret, None, &[]).await?;
        let id = rekey_core::model::DestinationId::new();
        let (target, sealed_signing_key) = if target == "file" {
            let directory = format!("bench/{}", app.id);
            (Target::File { directory }, None)
        } else {
            let signing = rekey_core::secret::generate_webhook_secret();
            let sealed = webhook_sealer.seal(
                signing.as_bytes(),
                &rekey_core::notify::signing_key_context(id),
            );
            (
                Target::Webhook {
                    url: target.to_string(),
                },
                Some(sealed),
            )
        };
        let d = Destination {
            id,
            app_id: app.id,
            notification_type: NotificationType::NewSecret,
            target,
            sealed_signing_key,
            created_at: now,
            updated_at: now,
        };
        store.put_destination(&d, &[]).await?;
        ids.push_str(&app.id.to_string());
        ids.push('\n');
    }
    std::fs::write(dir.join(APPS_FILE), ids)?;
    println!(
        "{}",
        serde_json::json!({ "orgId": org.id.to_string(), "apiToken": api_token.expose_secret() })
    );
    Ok(())
}

/// One rotation as the client saw it.
struct Rotated {
    answered: SystemTime,
    secret: String,
}

/// One notification as the destination got it.
struct Arrived {
    at: SystemTime,
    secret: String,
}

type Arrivals = Arc<Mutex<HashMap<String, Arrived>>>;

async fn run(
    server: &str,
    org: &str,
    api_token: &str,
    dir: &Path,
    rate: u32,
    seconds: u64,
    sink: &str,
) -> anyhow::Result<()> {
    let apps: Vec<String> = std::fs::read_to_string(dir.join(APPS_FILE))?
        .lines()
        .map(str::to_string)
        .collect();
    let total = usize::try_from(u64::from(rate) * seconds)?;
    if apps.len() < total {
        bail!("{} apps for {total} rotations: seed more", apps.len());
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let token: serde_json::Value = http
        .post(format!(
            "{server}/csp/gateway/am/api/auth/api-tokens/authorize"
        ))
        .form(&[("api_token", api_token)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().context("no access token")?
    );
    let arrivals: Arrivals = Arc::default();
    // The spool is per org (`<root>/<org>/<directory>`).
    let spool = if sink.contains(':') {
        receive_webhooks(sink, arrivals.clone()).await?;
        None
    } else {
        Some(PathBuf::from(sink).join(org))
    };

    // Open loop: a rotation every 1/rate s, whatever the server's answers take.
    let rotated: Arc<Mutex<HashMap<String, Rotated>>> = Arc::default();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut rotate_ms = Vec::with_capacity(total);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    for app in apps.iter().take(total) {
        tick.tick().await;
        let (http, bearer, rotated, failures, latencies) = (
            http.clone(),
            bearer.clone(),
            rotated.clone(),
            failures.clone(),
            latencies.clone(),
        );
        let url = format!("{server}/api/v1/orgs/{org}/apps/{app}/secrets/rotate");
        tasks.spawn(async move {
            let sent = Instant::now();
            let res = http
                .post(&url)
                .header("authorization", bearer)
                .json(&serde_json::json!({}))
                .send()
                .await;
            let body: anyhow::Result<serde_json::Value> = match res {
                Ok(r) if r.status() == 201 || r.status() == 200 => {
                    r.json().await.map_err(Into::into)
                }
                Ok(r) => Err(anyhow::anyhow!("rotate answered {}", r.status())),
                Err(e) => Err(e.into()),
            };
            // Wall clock, not a Clock: it is compared with spool files' mtimes and
            // webhook arrival times taken in other tasks.
            #[allow(clippy::disallowed_methods)]
            let answered = SystemTime::now();
            lock(&latencies).push(sent.elapsed().as_secs_f64() * 1000.0);
            match body.map(|b| {
                (
                    b["notificationId"].as_str().map(str::to_string),
                    b["clientSecret"].as_str().map(str::to_string),
                )
            }) {
                Ok((Some(id), Some(secret))) => {
                    lock(&rotated).insert(id, Rotated { answered, secret });
                }
                Ok(_) => lock(&failures).push("a rotation queued no notification".into()),
                Err(e) => lock(&failures).push(e.to_string()),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let sending_took = started.elapsed();
    rotate_ms.extend(lock(&latencies).iter().copied());

    // Wait for every notification (a file in the spool, or a webhook request).
    let expected = lock(&rotated).len();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        if let Some(spool) = &spool {
            read_spool(spool, &rotated, &arrivals)?;
        }
        let arrived = lock(&rotated)
            .keys()
            .filter(|id| lock(&arrivals).contains_key(*id))
            .count();
        if arrived == expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_after = started.elapsed().saturating_sub(sending_took);

    // Each delivery's latency, with when its rotation was answered (for the timeline).
    let (mut timed, mut missing, mut wrong) = (Vec::new(), 0, 0);
    {
        let arrivals = lock(&arrivals);
        for (id, r) in lock(&rotated).iter() {
            match arrivals.get(id) {
                None => missing += 1,
                Some(a) if a.secret != r.secret => wrong += 1,
                Some(a) => {
                    let latency = match a.at.duration_since(r.answered) {
                        Ok(d) => d.as_secs_f64() * 1000.0,
                        // Delivered before the client had read the answer.
                        Err(e) => -e.duration().as_secs_f64() * 1000.0,
                    };
                    timed.push((r.answered, latency));
                }
            }
        }
    }
    print_timeline(&mut timed);
    let mut delivery_ms: Vec<f64> = timed.iter().map(|(_, latency)| *latency).collect();
    let failures = lock(&failures).clone();
    println!(
        "RESULT kind={} rate={rate} seconds={seconds} rotations={expected} achieved_rate={:.0} \
         rotate_p50={:.1}ms rotate_p99={:.1}ms delivery_p50={:.1}ms delivery_p99={:.1}ms \
         delivery_max={:.1}ms drained_after={:.1}s failed={} missing={missing} wrong={wrong}",
        if spool.is_some() { "file" } else { "webhook" },
        expected as f64 / sending_took.as_secs_f64(),
        percentile(&mut rotate_ms, 50.0),
        percentile(&mut rotate_ms, 99.0),
        percentile(&mut delivery_ms, 50.0),
        percentile(&mut delivery_ms, 99.0),
        percentile(&mut delivery_ms, 100.0),
        drained_after.as_secs_f64(),
        failures.len(),
    );
    std::io::stdout().flush()?;
    if let Some(f) = failures.first() {
        bail!("{} rotations failed, the first: {f}", failures.len());
    }
    if missing > 0 || wrong > 0 {
        bail!("{missing} notifications missing and {wrong} with the wrong secret");
    }
    Ok(())
}

/// The delivery latency over the run, in 5 s windows of rotate-answer time (on stderr): it
/// tells a backlog that grows (each window worse) from stalls (a few bad windows).
fn print_timeline(timed: &mut [(SystemTime, f64)]) {
    const WINDOW: Duration = Duration::from_secs(5);
    timed.sort_by_key(|(at, _)| *at);
    let Some(&(first, _)) = timed.first() else {
        return;
    };
    let mut windows: Vec<Vec<f64>> = Vec::new();
    for (at, latency) in timed.iter() {
        let since = at.duration_since(first).unwrap_or_default();
        let window = usize::try_from(since.as_secs() / WINDOW.as_secs()).unwrap_or(usize::MAX);
        if windows.len() <= window {
            windows.resize_with(window + 1, Vec::new);
        }
        windows[window].push(*latency);
    }
    for (i, w) in windows.iter_mut().enumerate() {
        let start = i as u64 * WINDOW.as_secs();
        eprintln!(
            "# timeline {start:>3}-{:<3}s rotations={:<5} delivery_p50={:.1}ms delivery_p99={:.1}ms delivery_max={:.1}ms",
            start + WINDOW.as_secs(),
            w.len(),
            percentile(w, 50.0),
            percentile(w, 99.0),
            percentile(w, 100.0),
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

fn new_secret_of(body: &[u8]) -> Option<(String, String)> {
    let n: Notification<NewSecretPayload> = serde_json::from_slice(body).ok()?;
    Some((
        n.notification_metadata.notification_id,
        n.payload.new_secret.new_client_secret,
    ))
}

/// Reads the notification files not read yet; a file's arrival is its modification time
/// (written, fsynced, then renamed into place).
fn read_spool(
    spool: &Path,
    rotated: &Mutex<HashMap<String, Rotated>>,
    arrivals: &Arrivals,
) -> anyhow::Result<()> {
    let waiting: Vec<String> = {
        let arrived = lock(arrivals);
        lock(rotated)
            .keys()
            .filter(|id| !arrived.contains_key(*id))
            .cloned()
            .collect()
    };
    let bench = spool.join("bench");
    let Ok(dirs) = std::fs::read_dir(&bench) else {
        return Ok(());
    };
    let mut by_id: HashMap<String, PathBuf> = HashMap::new();
    for dir in dirs {
        for file in std::fs::read_dir(dir?.path())? {
            let path = file?.path();
            if let Some(id) = path.file_stem().and_then(|s| s.to_str()) {
                by_id.insert(id.to_string(), path.clone());
            }
        }
    }
    for id in waiting {
        let Some(path) = by_id.get(&id) else { continue };
        let at = std::fs::metadata(path)?.modified()?;
        let body = std::fs::read(path)?;
        let Some((nid, secret)) = new_secret_of(&body) else {
            bail!("{} is not a new-secret notification", path.display());
        };
        if nid != id {
            bail!("{} carries notification {nid}", path.display());
        }
        lock(arrivals).insert(id, Arrived { at, secret });
    }
    Ok(())
}

/// A webhook receiver: records each new-secret notification's arrival, answers 204.
async fn receive_webhooks(listen: &str, arrivals: Arrivals) -> anyhow::Result<()> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/",
        post(move |body: axum::body::Bytes| {
            let arrivals = arrivals.clone();
            async move {
                #[allow(clippy::disallowed_methods)] // wall clock, as `answered` above
                let at = SystemTime::now();
                if let Some((id, secret)) = new_secret_of(&body) {
                    lock(&arrivals).insert(id, Arrived { at, secret });
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}
