//! Client authentication and scope rules, as pure functions over stored records and `now`.

use crate::clock::Timestamp;
use crate::crypto::SecretHash;
use crate::model::{App, Secret, GRANT_CLIENT_CREDENTIALS};

/// Why a client could not get a token. Each maps to one RFC 6749 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthError {
    /// Unknown client, or no valid secret matches (`invalid_client`). Deliberately one case:
    /// the caller must not learn whether the client id exists.
    BadCredentials,
    /// The app may not use this grant (`unauthorized_client`).
    GrantNotAllowed,
    /// A requested scope is not allowed for the app (`invalid_scope`).
    ScopeNotAllowed(String),
}

/// Finds the valid secret (current or previous, unexpired, unrevoked) whose hash equals
/// `presented`. Every candidate is compared in constant time.
pub fn match_secret<'a>(
    secrets: &'a [Secret],
    presented: &SecretHash,
    now: Timestamp,
) -> Option<&'a Secret> {
    let mut found = None;
    for s in secrets {
        // No early exit: the time taken does not say which candidate matched.
        if s.hash.ct_eq(presented) && s.is_valid(now) && found.is_none() {
            found = Some(s);
        }
    }
    found
}

/// Checks the grant type and resolves the scope to grant: requested scopes must all be
/// allowed for the app; none requested means all allowed. Returns the granted scopes.
pub fn grant_scopes(app: &App, requested: Option<&str>) -> Result<Vec<String>, ClientAuthError> {
    if !app
        .grant_types
        .iter()
        .any(|g| g == GRANT_CLIENT_CREDENTIALS)
    {
        return Err(ClientAuthError::GrantNotAllowed);
    }
    let requested: Vec<&str> = requested
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if requested.is_empty() {
        return Ok(app.scopes.clone());
    }
    let mut granted: Vec<String> = Vec::with_capacity(requested.len());
    for scope in requested {
        if !app.scopes.iter().any(|s| s == scope) {
            return Err(ClientAuthError::ScopeNotAllowed(scope.to_string()));
        }
        if !granted.iter().any(|g| g == scope) {
            granted.push(scope.to_string());
        }
    }
    Ok(granted)
}

/// The `aud` of a token for `app`. A request that names an audience (`requested`) gets it
/// alone, if it is one of the app's audiences or `issuer` (Rekey's own APIs): only that
/// resource server accepts the token. A request that names none (every SP-API and CSP client)
/// gets the app's first audience and `issuer`, so that such clients keep calling Rekey's
/// APIs; an app without audiences gets no `aud`. `Err` carries the audience the app may not
/// use (`invalid_target`).
pub fn select_audience(
    app: &App,
    requested: Option<&str>,
    issuer: &str,
) -> Result<Vec<String>, String> {
    match requested {
        Some(a) if a == issuer || app.audiences.iter().any(|x| x == a) => Ok(vec![a.to_string()]),
        Some(a) => Err(a.to_string()),
        None => Ok(match app.audiences.first() {
            Some(first) => vec![first.clone(), issuer.to_string()],
            None => Vec::new(),
        }),
    }
}

/// Scope tokens are printable ASCII without space, `"` or `\` (RFC 6749 section 3.3).
pub fn is_valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerKey;
    use crate::model::{AppId, OrgId, SecretId, SecretState};

    fn app(scopes: &[&str]) -> App {
        App {
            id: AppId::new(),
            org_id: OrgId::new(),
            client_id: "rkc_test".into(),
            name: "t".into(),
            description: String::new(),
            grant_types: vec![GRANT_CLIENT_CREDENTIALS.into()],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            access_token_ttl_secs: 3600,
            secret_lifetime_secs: 0,
            rotation_grace_secs: 0,
            owner_only_secret_rotation: false,
            service_account: false,
            audiences: Vec::new(),
            rotation_policy: Default::default(),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    fn secret(hash: SecretHash, state: SecretState, expires: Option<i64>) -> Secret {
        Secret {
            id: SecretId::new(),
            app_id: AppId::new(),
            state,
            hash,
            hint: "xxxx".into(),
            created_at: Timestamp::from_millis(0),
            expires_at: expires.map(Timestamp::from_millis),
            last_used_at: None,
            created_by: "t".into(),
            revoked_at: None,
            revoked_reason: None,
        }
    }

    #[test]
    fn a_token_gets_the_audience_asked_for_if_the_app_may_use_it_else_its_first() {
        let issuer = "https://rekey.example";
        let mut a = app(&[]);
        // No audiences: no `aud` unless the request names Rekey itself.
        assert_eq!(select_audience(&a, None, issuer), Ok(vec![]));
        assert_eq!(
            select_audience(&a, Some(issuer), issuer),
            Ok(vec![issuer.to_string()])
        );
        assert_eq!(
            select_audience(&a, Some("https://orders"), issuer),
            Err("https://orders".into())
        );
        a.audiences = vec!["https://orders".into(), "https://billing".into()];
        // Named none: the default audience, and Rekey (SP-API clients name none).
        assert_eq!(
            select_audience(&a, None, issuer),
            Ok(vec!["https://orders".to_string(), issuer.to_string()])
        );
        assert_eq!(
            select_audience(&a, Some("https://billing"), issuer),
            Ok(vec!["https://billing".to_string()])
        );
        // Exact match only: no prefix, case or trailing-slash leniency.
        for near in ["https://billing/", "HTTPS://billing", "https://bill"] {
            assert_eq!(select_audience(&a, Some(near), issuer), Err(near.into()));
        }
    }

    #[test]
    fn the_matching_valid_secret_is_found_among_current_and_previous() {
        let h = ServerKey::generate().secret_hasher();
        let secrets = vec![
            secret(h.hash("new"), SecretState::Current, None),
            secret(h.hash("old"), SecretState::Previous, Some(100)),
        ];
        let now = Timestamp::from_millis(50);
        assert_eq!(
            match_secret(&secrets, &h.hash("old"), now).map(|s| s.state),
            Some(SecretState::Previous)
        );
        assert_eq!(
            match_secret(&secrets, &h.hash("new"), now).map(|s| s.state),
            Some(SecretState::Current)
        );
        assert!(match_secret(&secrets, &h.hash("other"), now).is_none());
    }

    #[test]
    fn an_expired_or_revoked_secret_never_matches() {
        let h = ServerKey::generate().secret_hasher();
        let mut revoked = secret(h.hash("r"), SecretState::Current, None);
        revoked.revoked_at = Some(Timestamp::from_millis(1));
        let secrets = vec![
            secret(h.hash("e"), SecretState::Previous, Some(100)),
            revoked,
        ];
        let at_expiry = Timestamp::from_millis(100);
        assert!(match_secret(&secrets, &h.hash("e"), at_expiry).is_none());
        assert!(match_secret(&secrets, &h.hash("r"), at_expiry).is_none());
    }

    #[test]
    fn no_requested_scope_grants_all_allowed_scopes() {
        assert_eq!(
            grant_scopes(&app(&["a", "b"]), None).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            grant_scopes(&app(&["a", "b"]), Some("")).unwrap(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn requested_scopes_must_all_be_allowed() {
        let a = app(&["a", "b", "sellingpartnerapi::client_credential:rotation"]);
        assert_eq!(grant_scopes(&a, Some("b a b")).unwrap(), vec!["b", "a"]);
        assert_eq!(
            grant_scopes(&a, Some("sellingpartnerapi::client_credential:rotation")).unwrap(),
            vec!["sellingpartnerapi::client_credential:rotation"]
        );
        assert_eq!(
            grant_scopes(&a, Some("a c")),
            Err(ClientAuthError::ScopeNotAllowed("c".into()))
        );
    }

    #[test]
    fn an_app_without_the_client_credentials_grant_is_unauthorized() {
        let mut a = app(&["a"]);
        a.grant_types.clear();
        assert_eq!(
            grant_scopes(&a, None),
            Err(ClientAuthError::GrantNotAllowed)
        );
    }

    #[test]
    fn scope_tokens_exclude_quotes_backslashes_and_controls() {
        assert!(is_valid_scope_token("sellingpartnerapi::notifications"));
        assert!(!is_valid_scope_token("a\"b"));
        assert!(!is_valid_scope_token("a\\b"));
        assert!(!is_valid_scope_token("a\nb"));
        assert!(!is_valid_scope_token(""));
    }
}
