//! Seeds a Rekey database for benchmarks: one org, one app with a known secret, an owner
//! with an API token (both printed as JSON), and as many filler apps (each with one current
//! secret) as asked, with bulk inserts.
//! Usage: rekey-bench-seed <database url> <data dir (for server.key)> <number of apps>
//!        [credentials file]
//! With a credentials file, every app's Basic credentials (base64 `id:secret`) are written
//! there, one per line, for the many-clients scenario (`bench/token-many.lua`).

use rekey_bench::app_settings;
use rekey_core::apps::new_app;
use rekey_core::clock::{Clock, SystemClock};
use rekey_core::model::{Membership, Org, OrgId, Principal, Role, User, UserId};
use rekey_core::ops::api_tokens::new_api_token;
use rekey_core::store::Store;
use rekey_store::SqlStore;
use secrecy::ExposeSecret;

const ROWS_PER_INSERT: usize = 400;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, data_dir, count, credentials_file) = match args.as_slice() {
        [_, url, dir, count] => (url, dir, count, None),
        [_, url, dir, count, file] => (url, dir, count, Some(file)),
        _ => anyhow::bail!(
            "usage: rekey-bench-seed <database url> <data dir> <number of apps> [credentials file]"
        ),
    };
    let count: usize = count.parse()?;
    let key = rekey_bench::server_key(std::path::Path::new(data_dir))?;
    let store = SqlStore::connect(url, 4).await?;
    store.migrate().await?;
    let now = SystemClock.now();
    let org = Org {
        id: OrgId::new(),
        name: "bench".into(),
        created_at: now,
    };
    store.create_org(&org, &[]).await?;
    let hasher = key.secret_hasher();
    let (app, secret, plain) = new_app(
        org.id,
        None,
        app_settings("bench"),
        false,
        &hasher,
        "bench",
        now,
    )?;
    store.create_app(&app, &secret, None, &[]).await?;
    // An owner with an API token, for the console and management benchmarks.
    let owner = User {
        id: UserId::new(),
        email: "bench@example.com".into(),
        display_name: "bench".into(),
        created_at: now,
    };
    store.create_user(&owner).await?;
    let membership = Membership {
        org_id: org.id,
        principal: Principal::User(owner.id),
        role: Role::OrgOwner,
        created_at: now,
    };
    store.put_membership(&membership, &[]).await?;
    let (token, api_token) = new_api_token(
        owner.id,
        org.id,
        "bench",
        None,
        &key.api_token_hasher(),
        now,
    );
    store.create_api_token(&token, &[]).await?;

    let basic = |id: &str, secret: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    };
    let mut credentials = vec![basic(&app.client_id, plain.expose_secret())];

    // Filler apps, in multi-row inserts inside one transaction per chunk.
    let pool = sqlx::AnyPool::connect(url).await?;
    let mut done = 1;
    while done < count {
        let n = ROWS_PER_INSERT.min(count - done);
        let apps: Vec<_> = (0..n)
            .map(|i| {
                new_app(
                    org.id,
                    None,
                    app_settings(&format!("filler-{}", done + i)),
                    false,
                    &hasher,
                    "bench",
                    now,
                )
            })
            .collect::<Result<_, _>>()?;
        let mut tx = pool.begin().await?;
        let app_rows: Vec<_> = apps.iter().map(|(a, _, _)| a).collect();
        rekey_bench::insert_apps(&mut tx, &app_rows, 0).await?;
        let rows = (0..n)
            .map(|i| {
                let b = i * 5;
                format!(
                    "(${}, ${}, 'current', ${}, ${}, ${}, NULL, NULL, 'bench', NULL, NULL)",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO secrets (id, app_id, state, hash, hint, created_at, expires_at, \
             last_used_at, created_by, revoked_at, revoked_reason) VALUES {rows}"
        );
        let mut q = sqlx::query(&sql);
        for (_, s, _) in &apps {
            q = q
                .bind(s.id.to_string())
                .bind(s.app_id.to_string())
                .bind(s.hash.0.to_vec())
                .bind(s.hint.clone())
                .bind(s.created_at.as_millis());
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        if credentials_file.is_some() {
            for (a, _, plain) in &apps {
                credentials.push(basic(&a.client_id, plain.expose_secret()));
            }
        }
        done += n;
    }
    if let Some(file) = credentials_file {
        std::fs::write(file, credentials.join("\n") + "\n")?;
    }
    println!(
        "{}",
        serde_json::json!({
            "clientId": app.client_id,
            "clientSecret": plain.expose_secret(),
            "apiToken": api_token.expose_secret(),
            "apps": count,
        })
    );
    Ok(())
}
