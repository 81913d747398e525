//! Creating applications: validation of what a caller asks for, and the records it makes.

use secrecy::{ExposeSecret, SecretString};

use crate::auth::is_valid_scope_token;
use crate::clock::Timestamp;
use crate::crypto::KeyedHasher;
use crate::error::CoreError;
use crate::model::{App, AppId, OrgId, Secret, SecretId, SecretState, GRANT_CLIENT_CREDENTIALS};
use crate::rotation_policy::RotationPolicy;
use crate::secret::{generate_client_id, generate_client_secret, hint, is_valid_client_id};

/// Longest accepted name and description.
pub const MAX_NAME_LEN: usize = 256;
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// Longest accepted access-token TTL (one day) and secret lifetime / grace (ten years).
pub const MAX_TOKEN_TTL_SECS: i64 = 86_400;
pub const MAX_DURATION_SECS: i64 = 10 * 365 * 86_400;

/// The settings of an app, as a caller may give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSettings {
    pub name: String,
    pub description: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub access_token_ttl_secs: i64,
    pub secret_lifetime_secs: i64,
    pub rotation_grace_secs: i64,
    pub owner_only_secret_rotation: bool,
    pub audiences: Vec<String>,
    pub rotation_policy: RotationPolicy,
}

/// Most audiences an app may list, and the longest audience.
pub const MAX_AUDIENCES: usize = 20;
pub const MAX_AUDIENCE_LEN: usize = 512;

/// An audience as an app may list it and a token request may name it: 1 to 512 printable
/// ASCII characters without spaces (a URI, usually, but RFC 8707 leaves its form to us).
pub fn is_valid_audience(a: &str) -> bool {
    (1..=MAX_AUDIENCE_LEN).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_graphic())
}

impl AppSettings {
    /// The settings an app has now (the start of a partial update).
    pub fn of(app: &App) -> Self {
        Self {
            name: app.name.clone(),
            description: app.description.clone(),
            grant_types: app.grant_types.clone(),
            scopes: app.scopes.clone(),
            access_token_ttl_secs: app.access_token_ttl_secs,
            secret_lifetime_secs: app.secret_lifetime_secs,
            rotation_grace_secs: app.rotation_grace_secs,
            owner_only_secret_rotation: app.owner_only_secret_rotation,
            audiences: app.audiences.clone(),
            rotation_policy: app.rotation_policy,
        }
    }

    /// Validates the settings and writes them into `app`, stamping `updated_at`.
    pub fn apply_to(self, app: &mut App, now: Timestamp) -> Result<(), CoreError> {
        self.validate()?;
        app.name = self.name;
        app.description = self.description;
        app.grant_types = self.grant_types;
        app.scopes = self.scopes;
        app.access_token_ttl_secs = self.access_token_ttl_secs;
        app.secret_lifetime_secs = self.secret_lifetime_secs;
        app.rotation_grace_secs = self.rotation_grace_secs;
        app.owner_only_secret_rotation = self.owner_only_secret_rotation;
        app.audiences = self.audiences;
        app.rotation_policy = self.rotation_policy;
        app.updated_at = now;
        Ok(())
    }

    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: &str| Err(CoreError::Invalid(m.to_string()));
        if self.name.trim().is_empty()
            || self.name.len() > MAX_NAME_LEN
            || self.name.chars().any(char::is_control)
        {
            return bad("name must be 1 to 256 printable characters");
        }
        if self.description.len() > MAX_DESCRIPTION_LEN
            || self
                .description
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return bad("description must be at most 4096 characters, without control characters");
        }
        if self
            .grant_types
            .iter()
            .any(|g| g != GRANT_CLIENT_CREDENTIALS)
        {
            return bad("grantTypes may only contain \"client_credentials\"");
        }
        if self.scopes.len() > 100 || !self.scopes.iter().all(|s| is_valid_scope_token(s)) {
            return bad(
                "scopes must be at most 100 printable tokens without spaces, quotes or backslashes",
            );
        }
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&self.access_token_ttl_secs) {
            return bad("accessTokenTtlSeconds must be between 1 and 86400");
        }
        if !(0..=MAX_DURATION_SECS).contains(&self.secret_lifetime_secs) {
            return bad("secretLifetimeSeconds must be between 0 and 315360000");
        }
        if !(0..=MAX_DURATION_SECS).contains(&self.rotation_grace_secs) {
            return bad("rotationGraceSeconds must be between 0 and 315360000");
        }
        let mut seen = std::collections::HashSet::new();
        if self.audiences.len() > MAX_AUDIENCES
            || !self
                .audiences
                .iter()
                .all(|a| is_valid_audience(a) && seen.insert(a.as_str()))
        {
            return bad(
                "audiences must be at most 20 distinct values of 1 to 512 printable characters without spaces",
            );
        }
        self.rotation_policy
            .validate()
            .map_err(CoreError::Invalid)?;
        Ok(())
    }
}

/// A new secret for `app`, current, expiring after the app's secret lifetime.
pub fn new_current_secret(
    app: &App,
    hasher: &KeyedHasher,
    created_by: &str,
    now: Timestamp,
) -> (Secret, SecretString) {
    let plain = generate_client_secret();
    let record = secret_record(app, &plain, hasher, created_by, now);
    (record, plain)
}

/// The stored record of `plain` as `app`'s new current secret (plain text is not kept).
pub fn secret_record(
    app: &App,
    plain: &SecretString,
    hasher: &KeyedHasher,
    created_by: &str,
    now: Timestamp,
) -> Secret {
    Secret {
        id: SecretId::new(),
        app_id: app.id,
        state: SecretState::Current,
        hash: hasher.hash(plain.expose_secret()),
        hint: hint(plain.expose_secret()),
        created_at: now,
        expires_at: (app.secret_lifetime_secs > 0).then(|| now.plus_secs(app.secret_lifetime_secs)),
        last_used_at: None,
        created_by: created_by.to_string(),
        revoked_at: None,
        revoked_reason: None,
    }
}

/// Builds a new app and its first secret. `client_id` is generated when not given.
pub fn new_app(
    org_id: OrgId,
    client_id: Option<String>,
    settings: AppSettings,
    service_account: bool,
    hasher: &KeyedHasher,
    created_by: &str,
    now: Timestamp,
) -> Result<(App, Secret, SecretString), CoreError> {
    settings.validate()?;
    let client_id = match client_id {
        // A UUID would read as another app's id wherever apps are named by id or client id.
        Some(c) if AppId::parse(&c).is_some() => {
            return Err(CoreError::Invalid(
                "clientId must not be a UUID: UUIDs name apps by their id".into(),
            ))
        }
        Some(c) if is_valid_client_id(&c) => c,
        Some(_) => {
            return Err(CoreError::Invalid(
                "clientId must be 5 to 256 characters of A-Z, a-z, 0-9, '_' and '-'".into(),
            ))
        }
        None => generate_client_id(),
    };
    let app = App {
        id: AppId::new(),
        org_id,
        client_id,
        name: settings.name,
        description: settings.description,
        grant_types: settings.grant_types,
        scopes: settings.scopes,
        access_token_ttl_secs: settings.access_token_ttl_secs,
        secret_lifetime_secs: settings.secret_lifetime_secs,
        rotation_grace_secs: settings.rotation_grace_secs,
        owner_only_secret_rotation: settings.owner_only_secret_rotation,
        service_account,
        audiences: settings.audiences,
        rotation_policy: settings.rotation_policy,
        created_at: now,
        updated_at: now,
    };
    let (secret, plain) = new_current_secret(&app, hasher, created_by, now);
    Ok((app, secret, plain))
}

/// Replaces `field` when a partial update gave a value (PATCH-style requests).
pub fn replace_if_given<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerKey;

    fn settings() -> AppSettings {
        AppSettings {
            name: "svc".into(),
            description: String::new(),
            grant_types: vec![GRANT_CLIENT_CREDENTIALS.into()],
            scopes: vec!["a".into()],
            access_token_ttl_secs: 3600,
            secret_lifetime_secs: 100,
            rotation_grace_secs: 10,
            owner_only_secret_rotation: false,
            audiences: vec!["https://orders.example".into()],
            rotation_policy: RotationPolicy::default(),
        }
    }

    #[test]
    fn a_new_app_gets_a_generated_client_id_and_an_expiring_first_secret() {
        let h = ServerKey::generate().secret_hasher();
        let now = Timestamp::from_millis(1_000);
        let (app, secret, plain) =
            new_app(OrgId::new(), None, settings(), false, &h, "user:x", now).unwrap();
        assert!(app.client_id.starts_with("rkc_"));
        assert_eq!(secret.state, SecretState::Current);
        assert_eq!(secret.expires_at, Some(now.plus_secs(100)));
        assert_eq!(secret.hash, h.hash(plain.expose_secret()));
        assert!(secret.is_valid(now));
    }

    #[test]
    fn a_zero_lifetime_means_the_secret_never_expires() {
        let h = ServerKey::generate().secret_hasher();
        let mut s = settings();
        s.secret_lifetime_secs = 0;
        let (_, secret, _) = new_app(
            OrgId::new(),
            Some("my-app".into()),
            s,
            false,
            &h,
            "t",
            Timestamp::from_millis(0),
        )
        .unwrap();
        assert_eq!(secret.expires_at, None);
    }

    #[test]
    fn invalid_settings_are_named() {
        let h = ServerKey::generate().secret_hasher();
        let now = Timestamp::from_millis(0);
        let cases: Vec<(AppSettings, Option<String>, &str)> = vec![
            (
                AppSettings {
                    name: " ".into(),
                    ..settings()
                },
                None,
                "name",
            ),
            (
                AppSettings {
                    grant_types: vec!["password".into()],
                    ..settings()
                },
                None,
                "grantTypes",
            ),
            (
                AppSettings {
                    scopes: vec!["a b".into()],
                    ..settings()
                },
                None,
                "scopes",
            ),
            (
                AppSettings {
                    access_token_ttl_secs: 0,
                    ..settings()
                },
                None,
                "accessTokenTtlSeconds",
            ),
            (
                AppSettings {
                    secret_lifetime_secs: -1,
                    ..settings()
                },
                None,
                "secretLifetimeSeconds",
            ),
            (
                AppSettings {
                    audiences: vec!["https://a.example".into(), "https://a.example".into()],
                    ..settings()
                },
                None,
                "audiences",
            ),
            (
                AppSettings {
                    audiences: vec!["has space".into()],
                    ..settings()
                },
                None,
                "audiences",
            ),
            (settings(), Some("bad id!".into()), "clientId"),
        ];
        for (s, id, field) in cases {
            match new_app(OrgId::new(), id, s, false, &h, "t", now) {
                Err(CoreError::Invalid(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("expected an error naming {field}, got {other:?}"),
            }
        }
    }
}
