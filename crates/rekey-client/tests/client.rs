//! The client against a real Rekey server on 127.0.0.1 (fresh SQLite database).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rekey_client::{
    ApplicationsApi, Clock, Credentials, ErrorBody, NativeApi, OauthAppsApi, TokenProvider,
    ROTATION_SCOPE,
};
use rekey_core::clock::{ManualClock, SystemClock};
use rekey_core::crypto::ServerKey;
use rekey_core::model::*;
use rekey_core::secret::{generate_api_token, hint};
use rekey_core::store::Store;
use rekey_core::Clock as _;
use rekey_proto::native::{CreatedApp, DestinationView};
use rekey_server::config::NodeRole;
use rekey_server::{Application, Config};
use rekey_store::testing::TestDb;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

struct Server {
    base: String,
    org_id: OrgId,
    api_token: String,
    state: rekey_server::state::SharedState,
    _db: TestDb,
}

async fn start() -> Server {
    let db = TestDb::sqlite().await;
    let key = ServerKey::generate();
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    // File destinations land beside the test database, never in the source tree.
    let spool = db.sqlite_path.as_ref().unwrap().with_file_name("spool");
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        role: NodeRole::Api,
        file_destination_root: spool,
        ..Config::default()
    };
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let app = Application::build_with(config, store.clone(), clock.clone(), &key)
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let state = app.state();
    tokio::spawn(app.run_until(std::future::pending()));
    let now = clock.now();
    let org = Org {
        id: OrgId::new(),
        name: "client tests".into(),
        created_at: now,
    };
    store.create_org(&org, &[]).await.unwrap();
    let user = User {
        id: UserId::new(),
        email: "c@example.com".into(),
        display_name: "c".into(),
        created_at: now,
    };
    store.create_user(&user).await.unwrap();
    store
        .put_membership(
            &Membership {
                org_id: org.id,
                principal: Principal::User(user.id),
                role: Role::OrgOwner,
                created_at: now,
            },
            &[],
        )
        .await
        .unwrap();
    let plain = generate_api_token();
    let t = ApiToken {
        id: ApiTokenId::new(),
        user_id: user.id,
        org_id: org.id,
        name: "t".into(),
        hash: key.api_token_hasher().hash(plain.expose_secret()),
        hint: hint(plain.expose_secret()),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    store.create_api_token(&t, &[]).await.unwrap();
    Server {
        base,
        org_id: org.id,
        api_token: plain.expose_secret().to_string(),
        state,
        _db: db,
    }
}

impl Server {
    fn user_tokens(&self) -> Arc<TokenProvider> {
        Arc::new(TokenProvider::new(
            format!("{}/csp/gateway/am/api/auth/api-tokens/authorize", self.base),
            Credentials::CspApiToken {
                api_token: SecretString::from(self.api_token.clone()),
            },
        ))
    }

    fn native(&self) -> NativeApi {
        NativeApi::new(&self.base, self.user_tokens())
    }

    async fn create_app(&self) -> CreatedApp {
        let body = json!({ "name": "c", "scopes": [ROTATION_SCOPE] });
        self.native()
            .call(
                reqwest::Method::POST,
                &format!("/orgs/{}/apps", self.org_id),
                Some(&body),
            )
            .await
            .unwrap()
            .unwrap()
    }
}

/// A clock the test moves.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_secs(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_callers_cause_exactly_one_token_request() {
    let server = start().await;
    let app = server.create_app().await;
    let provider = Arc::new(TokenProvider::new(
        format!("{}/auth/o2/token", server.base),
        Credentials::ClientCredentials {
            client_id: app.app.client_id.clone(),
            client_secret: SecretString::from(app.client_secret.clone()),
            scope: None,
        },
    ));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.token().await.unwrap().expose_secret().to_string() })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert_eq!(provider.fetches(), 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires() {
    let server = start().await;
    let app = server.create_app().await;
    let clock = Arc::new(TestClock(AtomicI64::new(1_000_000)));
    let provider = TokenProvider::with_clock(
        format!("{}/oauth2/token", server.base),
        Credentials::ClientCredentials {
            client_id: app.app.client_id.clone(),
            client_secret: SecretString::from(app.client_secret.clone()),
            scope: None,
        },
        clock.clone(),
    )
    .refresh_margin(Duration::from_secs(60));
    let first = provider.token().await.unwrap().expose_secret().to_string();
    // The token lives 3600 s; it is reused until 60 s before that.
    clock.0.fetch_add(3539, Ordering::SeqCst);
    assert_eq!(provider.token().await.unwrap().expose_secret(), first);
    assert_eq!(provider.fetches(), 1);
    clock.0.fetch_add(1, Ordering::SeqCst);
    provider.token().await.unwrap();
    assert_eq!(provider.fetches(), 2);
}

#[tokio::test]
async fn rotation_with_http_info_then_a_throttled_second_rotation() {
    let server = start().await;
    let app = server.create_app().await;
    let _: DestinationView = server
        .native()
        .call(
            reqwest::Method::PUT,
            &format!(
                "/orgs/{}/apps/{}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET",
                server.org_id, app.app.id
            ),
            Some(&json!({ "kind": "file", "directory": "client-tests" })),
        )
        .await
        .unwrap()
        .unwrap();
    let tokens = Arc::new(TokenProvider::new(
        format!("{}/auth/o2/token", server.base),
        Credentials::ClientCredentials {
            client_id: app.app.client_id.clone(),
            client_secret: SecretString::from(app.client_secret.clone()),
            scope: Some(ROTATION_SCOPE.into()),
        },
    ));
    let api = ApplicationsApi::new(&server.base, tokens);
    let res = api
        .rotate_application_client_secret_with_http_info()
        .await
        .unwrap();
    assert_eq!(res.status, 204);
    assert!(res.request_id().is_some());
    assert_eq!(res.rate_limit(), Some("0.0167"));
    // A second call is throttled: waiting a minute is beyond the policy, so it is not retried.
    let e = api.rotate_application_client_secret().await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(e.rate_limit(), Some("0.0167"));
    assert!(e.request_id().is_some());
    match e.body().unwrap() {
        ErrorBody::SpApi(errors) => assert_eq!(errors[0].0, "QuotaExceeded"),
        other => panic!("{other:?}"),
    }
    // The one rotation's notification is delivered, and only it.
    assert_eq!(server.state.dispatcher.drain().await.unwrap(), 1);
}

#[tokio::test]
async fn csp_oauth_apps_are_managed_through_the_client() {
    let server = start().await;
    let api = OauthAppsApi::new(
        &server.base,
        &server.org_id.to_string(),
        server.user_tokens(),
    );
    let created = api
        .create(&rekey_proto::csp::OauthAppRequest {
            id: Some("client-lib-app".into()),
            display_name: Some("lib".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.client_id, "client-lib-app");
    assert!(created.client_secret.expose_secret().starts_with("rks_"));
    let listed = api.list(1, 10, Some("lib")).await.unwrap();
    assert_eq!(listed.total_results, 1);
    assert_eq!(listed.results[0].display_name, "lib");
    let patched = api
        .patch(
            "client-lib-app",
            &rekey_proto::csp::OauthAppPatch {
                description: Some("changed through the client".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.description, "changed through the client");
    let new = SecretString::from("Rotated-By-Lib-1!".to_string());
    api.rotate_secret("client-lib-app", &new, Some(60))
        .await
        .unwrap();
    let other = SecretString::from("Another-Secret-2!".to_string());
    let e = api
        .rotate_secret("client-lib-app", &other, None)
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(409));
    assert!(
        matches!(e.body(), Some(ErrorBody::Csp { error_code, .. }) if error_code == "conflict")
    );
    api.finish_rotation("client-lib-app").await.unwrap();
    api.finish_rotation("client-lib-app").await.unwrap();
    let regenerated = api.regenerate_secret("client-lib-app").await.unwrap();
    assert!(regenerated.expose_secret().starts_with("rks_"));
    assert_eq!(
        api.get("client-lib-app").await.unwrap().id,
        "client-lib-app"
    );
    let deleted = api
        .delete(&["client-lib-app", "no-such-app"])
        .await
        .unwrap();
    assert_eq!(deleted.succeeded, ["client-lib-app"]);
    assert_eq!(deleted.failed, ["no-such-app"]);
    let e = api.get("client-lib-app").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn the_native_client_reads_the_token_org_and_reports_problems() {
    let server = start().await;
    let api = server.native();
    assert_eq!(
        api.token_org().await.unwrap(),
        Some(server.org_id.to_string())
    );
    let e = api
        .call::<(), serde_json::Value>(reqwest::Method::GET, "/orgs/not-a-uuid/apps", None)
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert!(matches!(e.body(), Some(ErrorBody::Problem { .. })));
    assert!(e.request_id().is_some());
}
