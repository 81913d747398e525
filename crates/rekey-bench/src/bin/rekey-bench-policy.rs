//! How long one pass of the rotation policies takes over many apps with policies (SQLite).
//! Seeds `<apps>` apps in one org whose default policy rotates 7 days before expiry and
//! retires after an hour of quiet: `<due>` apps due for a rotation (with a spool
//! destination), `<due>` mid-rotation apps ready to retire, ten times as many mid-rotation apps
//! still waiting (new secret unused), the rest idle (expiring in 8 to 90 days). Then times
//! passes of `run_rotation_policies` and checks what they did.
//! Usage: rekey-bench-policy <work dir> <apps> <due> [passes]

use std::sync::Arc;
use std::time::Instant;

use rekey_bench::app_settings;
use rekey_core::apps::new_app;
use rekey_core::clock::{Clock, ManualClock, SystemClock};
use rekey_core::crypto::ServerKey;
use rekey_core::model::{Org, OrgId};
use rekey_core::notify::{Destination, NotificationType, Target};
use rekey_core::rotation_policy::RotationPolicy;
use rekey_core::store::Store;
use rekey_store::SqlStore;

const ROWS_PER_INSERT: usize = 200;
const DAY_MS: i64 = 86_400_000;

/// What an app is seeded as.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Idle,
    Due,
    Retire,
    Waiting,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, apps, due, passes) = match args.as_slice() {
        [_, dir, apps, due] => (dir, apps.parse::<usize>()?, due.parse::<usize>()?, 3),
        [_, dir, apps, due, passes] => (dir, apps.parse()?, due.parse()?, passes.parse()?),
        _ => anyhow::bail!("usage: rekey-bench-policy <work dir> <apps> <due> [passes]"),
    };
    std::fs::create_dir_all(dir)?;
    let url = format!("sqlite://{dir}/policy.db?mode=rwc");
    let store = SqlStore::connect(&url, 4).await?;
    store.migrate().await?;
    let key = ServerKey::generate();
    store.set_audit_key(key.audit_hasher());
    let now = SystemClock.now();
    let org = Org {
        id: OrgId::new(),
        name: "policy bench".into(),
        created_at: now,
    };
    store.create_org(&org, &[]).await?;
    store
        .set_org_rotation_policy(
            org.id,
            RotationPolicy {
                rotate_before_expiry_secs: Some(7 * 86_400),
                retire_when_unused_secs: Some(3600),
            },
            &[],
        )
        .await?;

    let seed_started = Instant::now();
    let kind_of = |i: usize| match i {
        i if i < due => Kind::Due,
        i if i < 2 * due => Kind::Retire,
        i if i < 12 * due => Kind::Waiting,
        _ => Kind::Idle,
    };
    let hasher = key.secret_hasher();
    let pool = sqlx::AnyPool::connect(&url).await?;
    let mut due_apps = Vec::new();
    let mut done = 0;
    while done < apps {
        let n = ROWS_PER_INSERT.min(apps - done);
        let made: Vec<_> = (0..n)
            .map(|i| {
                new_app(
                    org.id,
                    None,
                    app_settings(&format!("policy-{}", done + i)),
                    false,
                    &hasher,
                    "bench",
                    now,
                )
            })
            .collect::<Result<_, _>>()?;
        let mut tx = pool.begin().await?;
        let app_rows: Vec<_> = made.iter().map(|(a, _, _)| a).collect();
        rekey_bench::insert_apps(&mut tx, &app_rows, 90 * 86_400).await?;
        // Secrets: (app, state, created, expires, last used), as each kind needs.
        let mut secrets: Vec<(String, &str, i64, i64, Option<i64>)> = Vec::new();
        let t = now.as_millis();
        for (i, (a, _, _)) in made.iter().enumerate() {
            let n = done + i;
            let app = a.id.to_string();
            match kind_of(n) {
                // Expires within the week: the window is open.
                Kind::Due => {
                    secrets.push((app, "current", t - 85 * DAY_MS, t + 5 * DAY_MS, Some(t)))
                }
                // Rotated two hours ago; the new one in use, the old one quiet since.
                Kind::Retire => {
                    secrets.push((
                        app.clone(),
                        "current",
                        t - 2 * 3_600_000,
                        t + 88 * DAY_MS,
                        Some(t),
                    ));
                    secrets.push((
                        app,
                        "previous",
                        t - 86 * DAY_MS,
                        t + 4 * DAY_MS,
                        Some(t - 2 * 3_600_000),
                    ));
                }
                // Rotated an hour ago; nothing has used the new secret yet.
                Kind::Waiting => {
                    secrets.push((app.clone(), "current", t - 3_600_000, t + 89 * DAY_MS, None));
                    secrets.push((app, "previous", t - 86 * DAY_MS, t + 4 * DAY_MS, Some(t)));
                }
                // Expiring in 8 to 90 days: nothing to do.
                Kind::Idle => {
                    let expires = t + (8 + (n % 82) as i64) * DAY_MS;
                    secrets.push((app, "current", expires - 90 * DAY_MS, expires, Some(t)));
                }
            }
            if kind_of(n) == Kind::Due {
                due_apps.push(a.id);
            }
        }
        for (app, state, created, expires, used) in &secrets {
            sqlx::query(
                "INSERT INTO secrets (id, app_id, state, hash, hint, created_at, expires_at, \
                 last_used_at, created_by, revoked_at, revoked_reason) \
                 VALUES ($1, $2, $3, $4, 'abcd', $5, $6, $7, 'bench', NULL, NULL)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(app.clone())
            .bind(state.to_string())
            .bind(uuid::Uuid::new_v4().as_bytes().repeat(2))
            .bind(*created)
            .bind(*expires)
            .bind(*used)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        done += n;
    }
    for app in &due_apps {
        let d = Destination {
            id: rekey_core::model::DestinationId::new(),
            app_id: *app,
            notification_type: NotificationType::NewSecret,
            target: Target::File {
                directory: "policy-bench".into(),
            },
            sealed_signing_key: None,
            created_at: now,
            updated_at: now,
        };
        store.put_destination(&d, &[]).await?;
    }
    eprintln!(
        "# seeded {apps} apps ({due} due, {due} ready to retire, {} waiting) in {:.1} s",
        10 * due,
        seed_started.elapsed().as_secs_f64()
    );

    let config = rekey_server::config::Config {
        listen: "127.0.0.1:0".parse()?,
        role: rekey_server::config::NodeRole::Api,
        file_destination_root: std::path::PathBuf::from(dir).join("spool"),
        ..Default::default()
    };
    let clock = Arc::new(ManualClock::new(now));
    let store: Arc<dyn Store> = Arc::new(store);
    let app = rekey_server::Application::build_with(config, store, clock, &key).await?;
    let ops = &app.state().ops;
    for pass in 1..=passes {
        let started = Instant::now();
        let report = ops.run_rotation_policies().await?;
        let secs = started.elapsed().as_secs_f64();
        let waiting = report.waiting_counts.new_secret_unused
            + report.waiting_counts.previous_still_used
            + report.waiting_counts.quiet_period
            + report.waiting.len() as u64;
        println!(
            "pass {pass}: {secs:.3} s, rotated {}, retired {}, waiting {waiting}, blocked {}, failed {}",
            report.rotated.len(),
            report.retired.len(),
            report.blocked.len(),
            report.failed
        );
        if pass == 1 && (report.rotated.len() != due || report.retired.len() != due) {
            anyhow::bail!("the first pass should rotate {due} and retire {due} apps: {report:?}");
        }
        // The apps just rotated wait too (their new secret is unused).
        if pass == 1 && waiting != 11 * due as u64 {
            anyhow::bail!("the first pass should leave {} apps waiting", 11 * due);
        }
    }
    Ok(())
}
