//! `spawn_app()`: a server on a random port with a fresh database and a manual clock.

use std::sync::Arc;

use rekey_core::clock::{Clock, ManualClock, SystemClock};
use rekey_core::crypto::ServerKey;
use rekey_core::model::{
    ApiToken, ApiTokenId, Membership, Org, OrgId, Principal, Role, User, UserId,
};
use rekey_core::secret::{generate_api_token, hint};
use rekey_core::store::Store;
use rekey_proto::native::CreatedApp;
use rekey_server::startup::cache_clients;
use rekey_server::state::SharedState;
use rekey_server::{Application, Config};
use rekey_store::testing::TestDb;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: SharedState,
    pub clock: Arc<ManualClock>,
    pub db: TestDb,
    pub key: ServerKey,
    pub org_id: OrgId,
    /// The root of `file` destinations.
    pub spool: std::path::PathBuf,
    _spool_dir: Option<tempfile::TempDir>,
    /// The org owner's API token.
    pub owner_api_token: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

pub(crate) fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Tests flush last-use data, drain the outbox and sweep themselves: no background
        // workers, so every state between commit and delivery can be observed.
        last_use_flush_seconds: 3600,
        role: rekey_server::config::NodeRole::Api,
        // Local webhook receivers and moto are plain http on loopback.
        allow_insecure_destinations: true,
        allowed_destination_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
        // Tests stop their servers at once.
        shutdown_drain_seconds: 0,
        ..Config::default()
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::sqlite().await, test_config()).await
}

pub(crate) async fn spawn_app_on(db: TestDb, config: Config) -> TestApp {
    spawn_app_with_key(db, config, ServerKey::generate()).await
}

pub(crate) async fn spawn_app_with_key(
    mut db: TestDb,
    mut config: Config,
    key: ServerKey,
) -> TestApp {
    // As in production: every handle on the store shares the client cache.
    db.store = cache_clients(db.store.clone(), &config)
        .await
        .expect("client cache");
    let spool_dir = config
        .file_destination_root
        .as_os_str()
        .is_empty()
        .then(|| tempfile::tempdir().unwrap());
    if let Some(d) = &spool_dir {
        config.file_destination_root = d.path().to_path_buf();
    }
    let spool = config.file_destination_root.clone();
    // Start at the real time so outside JWT libraries accept `exp`.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let app = Application::build_with(config, store.clone(), clock.clone(), &key)
        .await
        .expect("build app");
    let base = format!("http://{}", app.local_addr());
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    let (org_id, owner_api_token) = seed_org(&*store, &key, clock.now()).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
        state,
        clock,
        db,
        key,
        org_id,
        spool,
        _spool_dir: spool_dir,
        owner_api_token,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// An org with an owner and the owner's API token.
async fn seed_org(
    store: &dyn Store,
    key: &ServerKey,
    now: rekey_core::Timestamp,
) -> (OrgId, String) {
    let org = Org {
        id: OrgId::new(),
        name: "test org".into(),
        created_at: now,
    };
    store.create_org(&org, &[]).await.unwrap();
    let (_, token) = add_user(store, key, org.id, Role::OrgOwner, now).await;
    (org.id, token)
}

/// A user with `role` in `org` and an API token.
pub(crate) async fn add_user(
    store: &dyn Store,
    key: &ServerKey,
    org: OrgId,
    role: Role,
    now: rekey_core::Timestamp,
) -> (UserId, String) {
    let user = User {
        id: UserId::new(),
        email: format!("{}@example.com", uuid::Uuid::new_v4().simple()),
        display_name: "u".into(),
        created_at: now,
    };
    store.create_user(&user).await.unwrap();
    store
        .put_membership(
            &Membership {
                org_id: org,
                principal: Principal::User(user.id),
                role,
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
        org_id: org,
        name: "test".into(),
        hash: key.api_token_hasher().hash(plain.expose_secret()),
        hint: hint(plain.expose_secret()),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    store.create_api_token(&t, &[]).await.unwrap();
    (user.id, plain.expose_secret().to_string())
}

impl TestApp {
    /// A second org with an owner: its id, and the owner's API token and access token.
    pub(crate) async fn other_org(&self) -> (OrgId, String, String) {
        let org = Org {
            id: OrgId::new(),
            name: "other org".into(),
            created_at: self.clock.now(),
        };
        self.store().create_org(&org, &[]).await.unwrap();
        let (_, api_token) = add_user(
            self.store(),
            &self.key,
            org.id,
            Role::OrgOwner,
            self.clock.now(),
        )
        .await;
        let access = self.user_access_token(&api_token).await;
        (org.id, api_token, access)
    }

    /// The org's spool directory `name` (`<file_destination_root>/<org id>/<name>`).
    pub(crate) fn spool_dir(&self, name: &str) -> std::path::PathBuf {
        self.spool.join(self.org_id.to_string()).join(name)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &self.db.store
    }

    /// Exchanges an API token for an access token on the CSP path.
    pub(crate) async fn user_access_token(&self, api_token: &str) -> String {
        let res = self
            .http
            .post(self.url("/csp/gateway/am/api/auth/api-tokens/authorize"))
            .form(&[("api_token", api_token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "api token exchange");
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub(crate) async fn owner_access_token(&self) -> String {
        self.user_access_token(&self.owner_api_token.clone()).await
    }

    /// A new user with `role` in the org, as an access token.
    pub(crate) async fn token_for_role(&self, role: Role) -> String {
        let (_, api_token) =
            add_user(self.store(), &self.key, self.org_id, role, self.state.now()).await;
        self.user_access_token(&api_token).await
    }

    /// The user who owned the org first (the one `owner_access_token` acts for).
    pub(crate) async fn first_owner(&self) -> UserId {
        self.store()
            .list_memberships(self.org_id)
            .await
            .unwrap()
            .iter()
            .find_map(|m| match m.principal {
                Principal::User(u) if m.role == Role::OrgOwner => Some(u),
                _ => None,
            })
            .unwrap()
    }

    /// Creates an app as the owner; `extra` fields are merged into the request.
    pub(crate) async fn create_app(&self, extra: Value) -> CreatedApp {
        let mut body = json!({ "name": "test app", "scopes": ["a", "b", "sellingpartnerapi::client_credential:rotation"] });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let token = self.owner_access_token().await;
        let res = self
            .http
            .post(self.url(&format!("/api/v1/orgs/{}/apps", self.org_id)))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            201,
            "create app: {}",
            res.text().await.unwrap()
        );
        res.json().await.unwrap()
    }

    /// `POST path` with Basic credentials and a form body.
    pub(crate) async fn token_basic(
        &self,
        path: &str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with credentials in the form body.
    pub(crate) async fn token_post(
        &self,
        path: &str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut f: Vec<(&str, &str)> = vec![("client_id", id), ("client_secret", secret)];
        f.extend_from_slice(form);
        self.http
            .post(self.url(path))
            .form(&f)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn flush_last_use(&self) {
        self.state
            .ops
            .last_use
            .flush(&*self.state.store)
            .await
            .unwrap();
    }

    /// Stops the server gracefully (drains, flushes last-use data).
    pub(crate) async fn shutdown(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
        self.db
    }

    /// Stops the server as a crash would: no drain, no flush.
    pub(crate) fn crash(mut self) -> TestDb {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
        self.shutdown.take();
        self.db
    }
}

pub(crate) const TOKEN_PATHS: [&str; 4] = [
    "/auth/o2/token",
    "/oauth2/token",
    "/csp/gateway/am/api/auth/authorize",
    "/csp/gateway/am/api/auth/token",
];

pub(crate) const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

impl TestApp {
    /// An LWA token for the app (scope as given, all allowed scopes when `None`).
    pub(crate) async fn lwa_token(&self, id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let res = self.token_post("/auth/o2/token", id, secret, &form).await;
        assert_eq!(res.status(), 200, "lwa token");
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `POST /applications/2023-11-30/clientSecret` with `x-amz-access-token`.
    pub(crate) async fn spapi_rotate(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/applications/2023-11-30/clientSecret"))
            .header("x-amz-access-token", token)
            .send()
            .await
            .unwrap()
    }

    /// Sets a destination as the owner; returns the view (with a webhook's signing secret).
    pub(crate) async fn set_destination(
        &self,
        app_id: uuid::Uuid,
        notification_type: &str,
        body: Value,
    ) -> Value {
        let token = self.owner_access_token().await;
        let res = self
            .http
            .put(self.url(&format!(
                "/api/v1/orgs/{}/apps/{app_id}/destinations/{notification_type}",
                self.org_id
            )))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "set destination: {}",
            res.text().await.unwrap()
        );
        res.json().await.unwrap()
    }

    /// How many of the app's secrets are valid now, read from the store.
    pub(crate) async fn valid_secrets(&self, app_id: uuid::Uuid) -> usize {
        let now = self.clock.now();
        self.store()
            .list_secrets(rekey_core::model::AppId(app_id))
            .await
            .unwrap()
            .iter()
            .filter(|s| s.is_valid(now))
            .count()
    }

    /// Delivers everything due now.
    pub(crate) async fn drain(&self) -> usize {
        self.state.dispatcher.drain().await.unwrap()
    }

    pub(crate) async fn status_of(&self, id: &str, secret: &str) -> u16 {
        self.token_post("/oauth2/token", id, secret, &CC)
            .await
            .status()
            .as_u16()
    }
}

/// A JWT's claims, unverified (tests that look at what a token says).
pub(crate) fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}
