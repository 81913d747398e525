//! VMware Cloud Services (CSP) organization OAuth apps: the bodies of
//! `/csp/gateway/am/api/orgs/{orgId}/oauth-apps` and its `/secret` sub-resource, in CSP's
//! camelCase. Requests refuse unknown fields, as the server does; optional fields are left out
//! when absent, so that a client sends only what it means to change.

use serde::{Deserialize, Serialize};

/// `{"name": "csp:org_admin"}`: an org role of an app (with or without the `csp:` prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRef {
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationScopes {
    #[serde(default)]
    pub roles: Vec<RoleRef>,
}

/// What an app may ask for in its tokens, and its org roles when it is a service account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedScopes {
    #[serde(default)]
    pub general_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_scopes: Option<OrganizationScopes>,
    /// Not supported by Rekey: a non-empty list is refused.
    #[serde(default)]
    pub services_scopes: Vec<serde_json::Value>,
}

/// `OrgOauthAppRequest`: `POST .../oauth-apps`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OauthAppRequest {
    /// The client id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        rename = "accessTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_token_ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_grant_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_scopes: Option<AllowedScopes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_only_secret_rotation: Option<bool>,
    /// A chosen first secret; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation_expiration_in_seconds: Option<i64>,
}

/// `PATCH .../oauth-apps/{id}`: every create field but `id` and `secret`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OauthAppPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        rename = "accessTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_token_ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_grant_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_scopes: Option<AllowedScopes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_only_secret_rotation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation_expiration_in_seconds: Option<i64>,
}

/// An app as CSP shows it: never a secret; times in epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthApp {
    /// The client id.
    pub id: String,
    pub org_id: String,
    pub display_name: String,
    pub description: String,
    #[serde(rename = "accessTokenTTL")]
    pub access_token_ttl: i64,
    pub allowed_grant_types: Vec<String>,
    pub allowed_scopes: AllowedScopes,
    pub owner_only_secret_rotation: bool,
    pub secret_rotation_expiration_in_seconds: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The newest use of a valid secret.
    pub last_used_at: Option<i64>,
    /// Seconds since the current secret was made.
    pub secret_age: Option<i64>,
}

/// A page of apps: `pageStart` is 1-based.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthAppList {
    pub results: Vec<OauthApp>,
    pub total_results: u64,
    pub page_start: u32,
    pub page_limit: u32,
}

/// `DELETE .../oauth-apps` body: 1 to 15 client ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkDeleteRequest {
    pub client_ids_to_delete: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkDeleteResult {
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
}

/// `{clientId, clientSecret}`: a new app's or a regenerated secret, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

/// `{}`: the body CSP requires on `PUT .../secret`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// `POST .../secret`: the owner client's rotation with a secret of its choosing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerRotationRequest {
    pub new_client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation_expiration_in_seconds: Option<i64>,
}

/// `CspErrorResponse`; `requestId` equals the `x-request-id` response header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CspErrorResponse {
    /// `<status>.<errorCode>`.
    pub csp_error_code: String,
    pub error_code: String,
    pub message: String,
    pub module_code: i32,
    pub request_id: String,
    pub status_code: u16,
}

/// Shown in place of a secret by the `Debug` of the bodies that carry one.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for OauthAppRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthAppRequest")
            .field("id", &self.id)
            .field("display_name", &self.display_name)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for OwnerRotationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerRotationRequest")
            .field("new_client_secret", &REDACTED)
            .field(
                "secret_rotation_expiration_in_seconds",
                &self.secret_rotation_expiration_in_seconds,
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!(
            "{:?} {:?} {:?}",
            OauthAppRequest {
                secret: Some("Plain-Secret-1!".into()),
                ..Default::default()
            },
            ClientCredentials {
                client_id: "c".into(),
                client_secret: "Plain-Secret-1!".into()
            },
            OwnerRotationRequest {
                new_client_secret: "Plain-Secret-1!".into(),
                secret_rotation_expiration_in_seconds: None
            }
        );
        assert!(!shown.contains("Plain-Secret"), "{shown}");
        assert_eq!(shown.matches(REDACTED).count(), 3, "{shown}");
    }
}
