//! Benchmark tools (see `bench/run.sh` and `BENCHMARKS.md`):
//! - `rekey-bench-baseline`: the lean reference, the leanest correct server for the same
//!   request (plain hyper, no router or middleware): it parses the same form or Basic header,
//!   checks one fixed secret with the same keyed hash (HMAC-SHA-256, constant time) and signs a
//!   JWT with the same claims with `ed25519-dalek`, with no store;
//! - `rekey-bench-seed`: fills a Rekey database with many apps quickly (bulk SQL), and prints
//!   the credentials of one app to load-test with (optionally writes every app's);
//! - `rekey-bench-policy`: one rotation-policy pass over many apps with policies;
//! - `rekey-bench-delivery`: sustained rotations with delivery to the spool or a webhook,
//!   every notification checked.

use rekey_core::apps::AppSettings;
use rekey_core::crypto::ServerKey;
use rekey_core::model::{App, GRANT_CLIENT_CREDENTIALS};

/// The settings of every benchmark app: client credentials, one scope, secrets that never
/// expire by age (so no expiry warnings interfere).
pub fn app_settings(name: &str) -> AppSettings {
    AppSettings {
        name: name.into(),
        description: String::new(),
        grant_types: vec![GRANT_CLIENT_CREDENTIALS.into()],
        scopes: vec!["read".into()],
        access_token_ttl_secs: 3600,
        secret_lifetime_secs: 0,
        rotation_grace_secs: 3600,
        owner_only_secret_rotation: false,
        audiences: Vec::new(),
        rotation_policy: Default::default(),
    }
}

/// Inserts `apps` (as `new_app` made them, with [`app_settings`]) in one multi-row statement,
/// each with `secret_lifetime_secs`: seeding a large database row by row would take hours.
pub async fn insert_apps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    apps: &[&App],
    secret_lifetime_secs: i64,
) -> anyhow::Result<()> {
    let rows = (0..apps.len())
        .map(|i| {
            let b = i * 6;
            format!(
                "(${}, ${}, ${}, ${}, '', '[\"client_credentials\"]', '[\"read\"]', 3600, \
                 {secret_lifetime_secs}, 3600, 0, 0, 0, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO apps (id, org_id, client_id, name, description, grant_types, scopes, \
         access_token_ttl_secs, secret_lifetime_secs, rotation_grace_secs, \
         owner_only_secret_rotation, service_account, secret_version, created_at, updated_at) \
         VALUES {rows}"
    );
    let mut q = sqlx::query(&sql);
    for a in apps {
        q = q
            .bind(a.id.to_string())
            .bind(a.org_id.to_string())
            .bind(a.client_id.clone())
            .bind(a.name.clone())
            .bind(a.created_at.as_millis())
            .bind(a.updated_at.as_millis());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The server key in `data_dir` (`server.key`), made (0600) if missing: the seeders write
/// what the server will read with it.
pub fn server_key(data_dir: &std::path::Path) -> anyhow::Result<ServerKey> {
    let path = data_dir.join("server.key");
    if path.exists() {
        return Ok(ServerKey::from_base64(&std::fs::read_to_string(&path)?)?);
    }
    std::fs::create_dir_all(data_dir)?;
    let key = ServerKey::generate();
    let mut f = std::fs::File::create(&path)?;
    std::io::Write::write_all(&mut f, key.to_base64().as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}
