//! The OpenAPI document: generated from the code, served, and committed as `openapi.json`.
//! After a deliberate API change refresh the file with
//! `REKEY_UPDATE_OPENAPI=1 cargo test -p rekey-server --test api openapi`.

use crate::helpers::spawn_app;

fn committed_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

#[tokio::test]
async fn the_served_document_is_the_committed_openapi_json() {
    let generated = rekey_server::native::openapi_json();
    if std::env::var("REKEY_UPDATE_OPENAPI").is_ok() {
        assert!(
            !rekey_store::testing::in_ci(),
            "REKEY_UPDATE_OPENAPI is refused in CI: CI compares, it never rewrites"
        );
        std::fs::write(committed_path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is out of date: refresh it with REKEY_UPDATE_OPENAPI=1 if the API change is intended"
    );
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), generated);
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/v1/orgs/{org_id}/apps/{app_id}/secrets/rotate"]["post"].is_object());
}
