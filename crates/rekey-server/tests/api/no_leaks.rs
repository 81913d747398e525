//! A secret never appears in logs, error bodies, audit events or the database.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::{spawn_app, CC, TOKEN_PATHS};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn file_contains(path: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read(path)
        .map(|b| b.windows(needle.len()).any(|w| w == needle))
        .unwrap_or(false)
}

#[tokio::test]
async fn a_full_flow_leaves_no_secret_in_logs_responses_audit_or_database() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    // The test runtime is single-threaded, so the server's tasks log through this too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await;
    let created = app.create_app(json!({})).await;
    let secret = created.client_secret.clone();
    let id = created.app.client_id.clone();
    let mut bodies = String::new();
    for path in TOKEN_PATHS {
        for res in [
            app.token_basic(path, &id, &secret, &CC).await,
            app.token_post(path, &id, &secret, &CC).await,
            app.token_post(path, &id, &secret, &[("grant_type", "password")])
                .await,
            app.token_post(
                path,
                &id,
                &secret,
                &[("grant_type", "client_credentials"), ("scope", "nope")],
            )
            .await,
            app.token_post(path, &id, &format!("{secret}x"), &CC).await,
        ] {
            bodies.push_str(&res.text().await.unwrap());
        }
    }
    let owner = app.owner_access_token().await;
    for url in [
        format!("/api/v1/orgs/{}/apps/{}", app.org_id, created.app.id),
        format!(
            "/api/v1/orgs/{}/apps/{}/secrets",
            app.org_id, created.app.id
        ),
        format!("/api/v1/orgs/{}/apps", app.org_id),
    ] {
        bodies.push_str(
            &app.http
                .get(app.url(&url))
                .bearer_auth(&owner)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let audit: Value = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/audit-events", app.org_id)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!audit["items"].as_array().unwrap().is_empty());
    app.flush_last_use().await;
    let owner_api_token = app.owner_api_token.clone();
    let db = app.shutdown().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("client authentication failed"),
        "logs were captured"
    );
    for needle in [&secret, &owner_api_token] {
        assert!(!logs.contains(needle.as_str()), "a secret is in the logs");
        assert!(
            !bodies.contains(needle.as_str()),
            "a secret is in a response body"
        );
        assert!(
            !audit.to_string().contains(needle.as_str()),
            "a secret is in the audit trail"
        );
        let db_path = db.sqlite_path.clone().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", db_path.display()));
            assert!(
                !file_contains(&p, needle.as_bytes()),
                "a secret is in {}",
                p.display()
            );
        }
    }
    // The search itself works: the client id is in the database file or its WAL.
    let db_path = db.sqlite_path.clone().unwrap();
    let wal = std::path::PathBuf::from(format!("{}-wal", db_path.display()));
    assert!(file_contains(&db_path, id.as_bytes()) || file_contains(&wal, id.as_bytes()));
}
