//! Rekey's native management API (`/api/v1`).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;

use rekey_proto::native::{
    AddMemberRequest, AddedMember, ApiTokenList, ApiTokenView, AppList, AppView, AuditEventList,
    AuditQuery, CreateApiTokenRequest, CreateAppRequest, CreatedApiToken, CreatedApp, DeliveryList,
    DeliveryQuery, DeliveryView, DestinationList, DestinationRequest, DestinationView,
    FinishedRotation, MemberView, NewSecretView, QueuedNotification, RotateRequest,
    RotationPolicyView, RotationStatusView, SecretList, SecretView, SetRoleRequest, SigningKeyList,
    UpdateAppRequest,
};

use crate::error::ClientError;
use crate::http::{encode_component as seg, json, Http, RetryPolicy};
use crate::token::TokenProvider;

/// A client of `/api/v1`, authenticated by a token provider (a user's API token exchange, or a
/// service account's client credentials).
pub struct NativeApi {
    http: Http,
    base_url: String,
    tokens: Arc<TokenProvider>,
}

impl NativeApi {
    pub fn new(base_url: impl Into<String>, tokens: Arc<TokenProvider>) -> Self {
        Self {
            http: Http::new(RetryPolicy::default()),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            tokens,
        }
    }

    /// The org of the current access token (its `context_name` claim), read without
    /// verification: the server verifies; this only tells which org to address.
    pub async fn token_org(&self) -> Result<Option<String>, ClientError> {
        let token = self.tokens.token().await?;
        let payload = token
            .expose_secret()
            .split('.')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| ClientError::Decode("the access token is not a JWT".into()))?;
        let claims: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(claims["context_name"].as_str().map(str::to_string))
    }

    /// Calls `method path` (under `/api/v1`) with an optional JSON body; `None` for 204.
    /// GET is retried on 429/5xx; other methods only on 429.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        let token = self.tokens.token().await?;
        let url = format!("{}/api/v1{path}", self.base_url);
        let safe = method == Method::GET;
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let res = self
            .http
            .send(
                |c| {
                    let r = c
                        .request(method.clone(), &url)
                        .bearer_auth(token.expose_secret());
                    match &body {
                        Some(b) => r.json(b),
                        None => r,
                    }
                },
                safe,
            )
            .await?;
        if res.status == reqwest::StatusCode::NO_CONTENT || res.data.is_empty() {
            return Ok(None);
        }
        Ok(Some(json(res)?.data))
    }

    /// As [`NativeApi::call`], for answers that must have a body.
    async fn fetch<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call(method, path, body)
            .await?
            .ok_or_else(|| ClientError::Decode("the server sent an empty answer".into()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.fetch::<(), T>(Method::GET, path, None).await
    }

    // Apps. `app` is the app's id or its client id.

    pub async fn create_app(
        &self,
        org: &str,
        req: &CreateAppRequest,
    ) -> Result<CreatedApp, ClientError> {
        self.fetch(Method::POST, &format!("/orgs/{}/apps", seg(org)), Some(req))
            .await
    }

    /// One page of the org's apps (at most 1000).
    pub async fn list_apps(&self, org: &str, page_limit: u32) -> Result<AppList, ClientError> {
        self.get(&format!("/orgs/{}/apps?pageLimit={page_limit}", seg(org)))
            .await
    }

    /// The app's rotation policy at work: what applies, the next scheduled rotation, what
    /// the next pass does.
    pub async fn rotation_status(
        &self,
        org: &str,
        app: &str,
    ) -> Result<RotationStatusView, ClientError> {
        self.get(&format!("{}/rotation-policy", app_path(org, app)))
            .await
    }

    /// The org's default rotation policy.
    pub async fn org_rotation_policy(&self, org: &str) -> Result<RotationPolicyView, ClientError> {
        self.get(&format!("/orgs/{}/rotation-policy", seg(org)))
            .await
    }

    pub async fn set_org_rotation_policy(
        &self,
        org: &str,
        policy: &RotationPolicyView,
    ) -> Result<RotationPolicyView, ClientError> {
        self.fetch(
            Method::PUT,
            &format!("/orgs/{}/rotation-policy", seg(org)),
            Some(policy),
        )
        .await
    }

    pub async fn get_app(&self, org: &str, app: &str) -> Result<AppView, ClientError> {
        self.get(&app_path(org, app)).await
    }

    pub async fn update_app(
        &self,
        org: &str,
        app: &str,
        req: &UpdateAppRequest,
    ) -> Result<AppView, ClientError> {
        self.fetch(Method::PATCH, &app_path(org, app), Some(req))
            .await
    }

    pub async fn delete_app(&self, org: &str, app: &str) -> Result<(), ClientError> {
        self.call::<(), serde::de::IgnoredAny>(Method::DELETE, &app_path(org, app), None)
            .await
            .map(drop)
    }

    // Secrets.

    pub async fn list_secrets(&self, org: &str, app: &str) -> Result<SecretList, ClientError> {
        self.get(&format!("{}/secrets", app_path(org, app))).await
    }

    pub async fn rotate(
        &self,
        org: &str,
        app: &str,
        req: &RotateRequest,
    ) -> Result<NewSecretView, ClientError> {
        let path = format!("{}/secrets/rotate", app_path(org, app));
        self.fetch(Method::POST, &path, Some(req)).await
    }

    pub async fn regenerate(&self, org: &str, app: &str) -> Result<NewSecretView, ClientError> {
        let path = format!("{}/secrets/regenerate", app_path(org, app));
        self.fetch::<(), _>(Method::POST, &path, None).await
    }

    pub async fn finish(&self, org: &str, app: &str) -> Result<FinishedRotation, ClientError> {
        let path = format!("{}/secrets/finish", app_path(org, app));
        self.fetch::<(), _>(Method::POST, &path, None).await
    }

    pub async fn revoke_secret(
        &self,
        org: &str,
        app: &str,
        secret_id: &str,
    ) -> Result<SecretView, ClientError> {
        let path = format!("{}/secrets/{}/revoke", app_path(org, app), seg(secret_id));
        self.fetch::<(), _>(Method::POST, &path, None).await
    }

    // Destinations and deliveries.

    pub async fn set_destination(
        &self,
        org: &str,
        app: &str,
        notification_type: &str,
        req: &DestinationRequest,
    ) -> Result<DestinationView, ClientError> {
        let path = destination_path(org, app, notification_type);
        self.fetch(Method::PUT, &path, Some(req)).await
    }

    pub async fn list_destinations(
        &self,
        org: &str,
        app: &str,
    ) -> Result<DestinationList, ClientError> {
        self.get(&format!("{}/destinations", app_path(org, app)))
            .await
    }

    pub async fn delete_destination(
        &self,
        org: &str,
        app: &str,
        notification_type: &str,
    ) -> Result<(), ClientError> {
        let path = destination_path(org, app, notification_type);
        self.call::<(), serde::de::IgnoredAny>(Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    pub async fn test_destination(
        &self,
        org: &str,
        app: &str,
        notification_type: &str,
    ) -> Result<QueuedNotification, ClientError> {
        let path = format!("{}/test", destination_path(org, app, notification_type));
        self.fetch::<(), _>(Method::POST, &path, None).await
    }

    pub async fn list_deliveries(
        &self,
        org: &str,
        query: &DeliveryQuery,
    ) -> Result<DeliveryList, ClientError> {
        let q = query_string(query)?;
        self.get(&format!("/orgs/{}/deliveries{q}", seg(org))).await
    }

    pub async fn retry_delivery(
        &self,
        org: &str,
        delivery_id: &str,
    ) -> Result<DeliveryView, ClientError> {
        let path = format!("/orgs/{}/deliveries/{}/retry", seg(org), seg(delivery_id));
        self.fetch::<(), _>(Method::POST, &path, None).await
    }

    // Members, API tokens, audit, signing keys.

    pub async fn list_members(&self, org: &str) -> Result<Vec<MemberView>, ClientError> {
        self.get(&format!("/orgs/{}/members", seg(org))).await
    }

    pub async fn add_member(
        &self,
        org: &str,
        req: &AddMemberRequest,
    ) -> Result<AddedMember, ClientError> {
        let path = format!("/orgs/{}/members", seg(org));
        self.fetch(Method::POST, &path, Some(req)).await
    }

    /// `kind` is `user` or `app`.
    pub async fn set_role(
        &self,
        org: &str,
        kind: &str,
        id: &str,
        role: &str,
    ) -> Result<MemberView, ClientError> {
        let req = SetRoleRequest {
            role: role.to_string(),
        };
        self.fetch(Method::PUT, &member_path(org, kind, id), Some(&req))
            .await
    }

    pub async fn remove_member(&self, org: &str, kind: &str, id: &str) -> Result<(), ClientError> {
        self.call::<(), serde::de::IgnoredAny>(Method::DELETE, &member_path(org, kind, id), None)
            .await
            .map(drop)
    }

    pub async fn create_api_token(
        &self,
        org: &str,
        req: &CreateApiTokenRequest,
    ) -> Result<CreatedApiToken, ClientError> {
        let path = format!("/orgs/{}/api-tokens", seg(org));
        self.fetch(Method::POST, &path, Some(req)).await
    }

    pub async fn list_api_tokens(&self, org: &str) -> Result<ApiTokenList, ClientError> {
        self.get(&format!("/orgs/{}/api-tokens", seg(org))).await
    }

    pub async fn revoke_api_token(
        &self,
        org: &str,
        token_id: &str,
    ) -> Result<ApiTokenView, ClientError> {
        let path = format!("/orgs/{}/api-tokens/{}/revoke", seg(org), seg(token_id));
        self.fetch::<(), _>(Method::POST, &path, None).await
    }

    pub async fn list_audit(
        &self,
        org: &str,
        query: &AuditQuery,
    ) -> Result<AuditEventList, ClientError> {
        let q = query_string(query)?;
        self.get(&format!("/orgs/{}/audit-events{q}", seg(org)))
            .await
    }

    /// Checks the org's audit hash chain (owners and admins).
    pub async fn verify_audit(
        &self,
        org: &str,
    ) -> Result<rekey_proto::native::AuditVerification, ClientError> {
        self.get(&format!("/orgs/{}/audit-events/verify", seg(org)))
            .await
    }

    pub async fn list_signing_keys(&self) -> Result<SigningKeyList, ClientError> {
        self.get("/signing-keys").await
    }
}

fn app_path(org: &str, app: &str) -> String {
    format!("/orgs/{}/apps/{}", seg(org), seg(app))
}

fn destination_path(org: &str, app: &str, notification_type: &str) -> String {
    format!(
        "{}/destinations/{}",
        app_path(org, app),
        seg(notification_type)
    )
}

fn member_path(org: &str, kind: &str, id: &str) -> String {
    format!("/orgs/{}/members/{}/{}", seg(org), seg(kind), seg(id))
}

/// `?a=1&b=2` from a query type (empty when nothing is set).
fn query_string(query: &impl Serialize) -> Result<String, ClientError> {
    let q = serde_urlencoded::to_string(query).map_err(|e| ClientError::Decode(e.to_string()))?;
    Ok(if q.is_empty() { q } else { format!("?{q}") })
}
