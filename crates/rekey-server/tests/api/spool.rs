//! `file` destinations: each org's spool directories live under `<root>/<org id>/`, and no
//! spelling of a directory reaches another org's.

use rekey_core::model::OrgId;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const NEW_SECRET: &str = "APPLICATION_OAUTH_CLIENT_NEW_SECRET";

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let res = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Org A and org B both pick the directory `shared`. Before, both wrote into
/// `<root>/shared`, so B's new-secret notifications landed beside A's (and B could read the
/// names of A's). Now each lands under its own org; `..`, absolute paths and look-alike
/// Unicode names are refused when set, and a symbolic link planted below the root is not
/// followed.
#[tokio::test]
async fn orgs_never_share_a_spool_directory_by_any_spelling() {
    let app = spawn_app().await;
    let a = app.create_app(json!({})).await;
    app.set_destination(
        a.app.id,
        NEW_SECRET,
        json!({"kind": "file", "directory": "shared"}),
    )
    .await;
    let (org_b, _, b_token) = app.other_org().await;
    let (status, b_app) = call(
        &app,
        &b_token,
        reqwest::Method::POST,
        &format!("/api/v1/orgs/{org_b}/apps"),
        json!({"name": "b"}),
    )
    .await;
    assert_eq!(status, 201);
    let b_app_id = b_app["app"]["id"].as_str().unwrap().to_string();
    let set_b = |directory: &str| {
        let path = format!("/api/v1/orgs/{org_b}/apps/{b_app_id}/destinations/{NEW_SECRET}");
        let body = json!({"kind": "file", "directory": directory});
        let token = b_token.clone();
        let app = &app;
        async move { call(app, &token, reqwest::Method::PUT, &path, body).await.0 }
    };
    let a_org = app.org_id.to_string();
    for spelling in [
        format!("../{a_org}/shared"),
        format!("/{a_org}/shared"),
        "./shared/../../x".to_string(),
        "ｓｈａｒｅｄ".to_string(),
        "shared/..".to_string(),
        format!("..%2F{a_org}"),
    ] {
        assert_eq!(set_b(&spelling).await, 400, "{spelling}");
    }
    assert_eq!(set_b("shared").await, 200);

    let rotate = |org: OrgId, app_id: String, token: String| {
        let path = format!("/api/v1/orgs/{org}/apps/{app_id}/secrets/rotate");
        let app = &app;
        async move {
            call(app, &token, reqwest::Method::POST, &path, json!({}))
                .await
                .0
        }
    };
    let a_token = app.owner_access_token().await;
    assert_eq!(rotate(app.org_id, a.app.id.to_string(), a_token).await, 200);
    assert_eq!(rotate(org_b, b_app_id.clone(), b_token.clone()).await, 200);
    assert_eq!(app.drain().await, 2);
    assert_eq!(
        files_in(&app.spool_dir("shared")).len(),
        1,
        "only A's notification"
    );
    let b_dir = app.spool.join(org_b.to_string()).join("shared");
    assert_eq!(files_in(&b_dir).len(), 1, "B's own notification");
    assert!(files_in(&app.spool.join("shared")).is_empty());

    // Someone on the host links B's directory to A's: B's next notification is not written
    // through the link (and the delivery says why, without the path).
    assert_eq!(set_b("linked").await, 200);
    std::os::unix::fs::symlink(
        app.spool_dir("shared"),
        app.spool.join(org_b.to_string()).join("linked"),
    )
    .unwrap();
    let finish = format!("/api/v1/orgs/{org_b}/apps/{b_app_id}/secrets/finish");
    assert_eq!(
        call(&app, &b_token, reqwest::Method::POST, &finish, json!({}))
            .await
            .0,
        200
    );
    assert_eq!(rotate(org_b, b_app_id.clone(), b_token.clone()).await, 200);
    app.drain().await;
    assert_eq!(
        files_in(&app.spool_dir("shared")).len(),
        1,
        "nothing of B's in A's directory"
    );
    let (_, deliveries) = call(
        &app,
        &b_token,
        reqwest::Method::GET,
        &format!("/api/v1/orgs/{org_b}/deliveries?appId={b_app_id}"),
        Value::Null,
    )
    .await;
    let errors: Vec<&str> = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["lastError"].as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("symbolic link")),
        "{deliveries}"
    );
    app.shutdown().await;
}
