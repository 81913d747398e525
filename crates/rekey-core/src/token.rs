//! Access tokens: JWTs signed with Ed25519 (`EdDSA`), and the key set that signs and verifies
//! them. Signing keys are generated here, stored sealed (see [`KeySet::load`]), and rotated by
//! adding a newer key: the newest signs, older ones stay published until `publish_until`.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::Signer as _;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::Sealer;
use crate::error::CoreError;
use crate::model::StoredSigningKey;

/// Claims of a Rekey access token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The app's client id, or the user's id for user tokens.
    pub sub: String,
    /// RFC 8707 / RFC 9068: the resource servers the token is for (a string when one, an
    /// array when several, absent when none: tokens of apps without audiences, as before
    /// them, which any resource server trusting the issuer accepts).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "audience_claim"
    )]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Id of the client secret the token was minted with; revoking that secret revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Id of the user API token the token was minted with (user tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// CSP: the org the token acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_name: Option<String>,
    /// CSP: the caller's roles in that org, e.g. `csp:org_owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perms: Option<Vec<String>>,
}

/// `aud` as RFC 7519 allows it: one string, or an array of them.
mod audience_claim {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(a) => a,
        })
    }
}

/// A JSON Web Key (public half of an Ed25519 key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Sealing context for signing keys: binds a sealed key to its kid.
fn seal_context(kid: &str) -> Vec<u8> {
    format!("signing-key/{kid}").into_bytes()
}

/// Whether `key` was sealed by `sealer` (the same server key).
pub fn sealed_by(key: &StoredSigningKey, sealer: &Sealer) -> bool {
    sealer
        .open(&key.sealed_private_key, &seal_context(&key.kid))
        .is_ok()
}

/// Makes a new Ed25519 signing key, its private half sealed with `sealer`.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an OS RNG failure leaves nothing safe to do; a fresh key parses"
)]
pub fn generate_signing_key(sealer: &Sealer, now: Timestamp) -> StoredSigningKey {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key generation failed");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("fresh key parses");
    let public_key = pair.public_key().as_ref().to_vec();
    // A kid that says when the key was made and is unique without coordination.
    let kid = format!(
        "{}-{}",
        now.as_secs(),
        &URL_SAFE_NO_PAD.encode(&public_key)[..8]
    );
    StoredSigningKey {
        sealed_private_key: sealer.seal(pkcs8.as_ref(), &seal_context(&kid)),
        kid,
        algorithm: "EdDSA".into(),
        public_key,
        created_at: now,
        publish_until: None,
        signs_from: None,
    }
}

struct VerifyKey {
    key: DecodingKey,
    publish_until: Option<Timestamp>,
}

/// A key that signs, ready to sign.
struct Signer {
    kid: String,
    /// Parsed once: parsing a PKCS#8 Ed25519 key costs as much as a signature, and
    /// `jsonwebtoken` would parse it again for every token (measured: half the signing time).
    /// Signed by `ed25519-dalek`: a third faster than `ring` here (BENCHMARKS.md, "The lean
    /// reference"), and Ed25519 is deterministic, so the tokens are byte for byte the same.
    pair: ed25519_dalek::SigningKey,
    /// The base64url JWS header, the same for every token of this key.
    header_b64: String,
}

impl Signer {
    fn open(key: &StoredSigningKey, sealer: &Sealer) -> Result<Self, CoreError> {
        let pkcs8 = sealer.open(&key.sealed_private_key, &seal_context(&key.kid))?;
        let pair = ed25519_dalek::SigningKey::from_pkcs8_der(&pkcs8)
            .map_err(|_| CoreError::Crypto("the signing key does not parse"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let header_json = serde_json::to_vec(&header)
            .map_err(|_| CoreError::Crypto("header does not serialize"))?;
        Ok(Self {
            kid: key.kid.clone(),
            pair,
            header_b64: URL_SAFE_NO_PAD.encode(header_json),
        })
    }
}

/// Keys in use: the newest key that has started signs; a newer one, pre-published, takes
/// over at its `signs_from` (decided per token, so every node switches at the same moment
/// whenever it last reloaded); all published keys verify.
pub struct KeySet {
    issuer: String,
    current: Signer,
    next: Option<(Timestamp, Signer)>,
    verify: HashMap<String, VerifyKey>,
    jwks: Jwks,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("issuer", &self.issuer)
            .field("signing_kid", &self.current.kid)
            .field("next", &self.next.as_ref().map(|(t, s)| (t, &s.kid)))
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Builds the key set from stored keys: keys whose `publish_until` has passed are left
    /// out; of the others, the newest that has started signing signs now, and one that
    /// starts later is the next.
    pub fn load(
        issuer: &str,
        stored: &[StoredSigningKey],
        sealer: &Sealer,
        now: Timestamp,
    ) -> Result<Self, CoreError> {
        let live: Vec<&StoredSigningKey> = stored
            .iter()
            .filter(|k| k.publish_until.is_none_or(|t| now < t))
            .collect();
        let upcoming = |after: Option<Timestamp>| {
            live.iter()
                .filter(move |k| k.signs_from() > now && after.is_none_or(|t| k.signs_from() > t))
                .min_by_key(|k| (k.signs_from(), k.kid.clone()))
        };
        // The newest key that has started; else (a key another node made a moment ago, by a
        // clock a little ahead of this one) the first to start.
        let current = live
            .iter()
            .filter(|k| k.signs_from() <= now)
            .max_by_key(|k| (k.signs_from(), k.created_at, k.kid.clone()))
            .or_else(|| upcoming(None))
            .ok_or(CoreError::NotFound)?;
        let next = upcoming(Some(current.signs_from()))
            .map(|k| Ok::<_, CoreError>((k.signs_from(), Signer::open(k, sealer)?)))
            .transpose()?;
        let current = Signer::open(current, sealer)?;
        let mut verify = HashMap::new();
        let mut keys = Vec::new();
        for k in stored
            .iter()
            .filter(|k| k.publish_until.is_none_or(|t| now < t))
        {
            let x = URL_SAFE_NO_PAD.encode(&k.public_key);
            verify.insert(
                k.kid.clone(),
                VerifyKey {
                    key: DecodingKey::from_ed_components(&x)
                        .map_err(|_| CoreError::Crypto("bad public key"))?,
                    publish_until: k.publish_until,
                },
            );
            keys.push(Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x,
                kid: k.kid.clone(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            });
        }
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Ok(Self {
            issuer: issuer.to_string(),
            current,
            next,
            verify,
            jwks: Jwks { keys },
        })
    }

    /// The published key that takes over signing later, and when.
    pub fn next_signing(&self) -> Option<(&str, Timestamp)> {
        self.next.as_ref().map(|(t, s)| (s.kid.as_str(), *t))
    }

    /// Every published kid.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.jwks.keys.iter().map(|k| k.kid.as_str())
    }

    /// The key that signs a token issued at `iat` (seconds).
    fn signer_at(&self, iat: i64) -> &Signer {
        match &self.next {
            Some((from, next)) if iat.saturating_mul(1000) >= from.as_millis() => next,
            _ => &self.current,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key that signed when this set was loaded.
    pub fn signing_kid(&self) -> &str {
        &self.current.kid
    }

    /// The key that signs at `now` (a pre-published one once its time has come, whenever
    /// this set was loaded).
    pub fn signing_kid_at(&self, now: Timestamp) -> &str {
        &self.signer_at(now.as_secs()).kid
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// A compact JWS (RFC 7515) over the claims, signed with Ed25519 (RFC 8037).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, CoreError> {
        let payload =
            serde_json::to_vec(claims).map_err(|_| CoreError::Crypto("claims do not serialize"))?;
        let signer = self.signer_at(claims.iat);
        let mut jwt = String::with_capacity(signer.header_b64.len() + payload.len() * 4 / 3 + 100);
        jwt.push_str(&signer.header_b64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let signature = signer.pair.sign(jwt.as_bytes());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jwt);
        Ok(jwt)
    }

    /// Checks signature, issuer and expiry (against `now`, not the system clock).
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self.verify.get(&kid).ok_or(TokenError::UnknownKey)?;
        if key.publish_until.is_some_and(|t| now >= t) {
            return Err(TokenError::UnknownKey);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation)
            .map_err(|_| TokenError::BadSignature)?;
        if now.as_secs() >= data.claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

/// Why a presented access token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    #[error("the token signature or issuer is wrong")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerKey;

    fn claims(now: Timestamp) -> AccessClaims {
        AccessClaims {
            iss: "http://rekey.test".into(),
            sub: "rkc_x".into(),
            aud: Vec::new(),
            client_id: Some("rkc_x".into()),
            iat: now.as_secs(),
            exp: now.as_secs() + 60,
            jti: "j".into(),
            scope: "a b".into(),
            sid: Some("s".into()),
            tid: None,
            context_name: None,
            perms: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let sk = ServerKey::generate();
        let sealer = sk.sealer("signing-keys");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let key = generate_signing_key(&sealer, now);
        let ks = KeySet::load("http://rekey.test", &[key], &sealer, now).unwrap();
        let jwt = ks.sign(&claims(now)).unwrap();
        assert_eq!(ks.verify(&jwt, now).unwrap(), claims(now));
        assert_eq!(ks.verify(&jwt, now.plus_secs(60)), Err(TokenError::Expired));
    }

    /// Keys are made (and stored, as PKCS#8 v2) by `ring` and sign with `ed25519-dalek`:
    /// Ed25519 is deterministic, so a stored key signs exactly as it did with `ring`.
    #[test]
    fn a_stored_key_signs_exactly_as_ring_signs_with_it() {
        let sk = ServerKey::generate();
        let sealer = sk.sealer("signing-keys");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let key = generate_signing_key(&sealer, now);
        let pkcs8 = sealer
            .open(&key.sealed_private_key, &seal_context(&key.kid))
            .unwrap();
        let ks = KeySet::load("http://rekey.test", &[key], &sealer, now).unwrap();
        let jwt = ks.sign(&claims(now)).unwrap();
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let by_ring = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .unwrap()
            .sign(input.as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.encode(by_ring.as_ref()), signature);
    }

    #[test]
    fn a_rotated_key_verifies_old_tokens_until_it_is_unpublished() {
        let sk = ServerKey::generate();
        let sealer = sk.sealer("signing-keys");
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let mut old = generate_signing_key(&sealer, t0);
        let old_ks = KeySet::load("i", std::slice::from_ref(&old), &sealer, t0).unwrap();
        let mut c = claims(t0);
        c.iss = "i".into();
        c.exp += 3600;
        let old_jwt = old_ks.sign(&c).unwrap();

        let t1 = t0.plus_secs(10);
        let new = generate_signing_key(&sealer, t1);
        old.publish_until = Some(t1.plus_secs(100));
        let ks = KeySet::load("i", &[old.clone(), new.clone()], &sealer, t1).unwrap();
        assert_eq!(ks.signing_kid(), new.kid);
        assert_eq!(ks.jwks().keys.len(), 2);
        assert!(ks.verify(&old_jwt, t1).is_ok());
        assert_eq!(
            ks.verify(&old_jwt, t1.plus_secs(100)),
            Err(TokenError::UnknownKey)
        );
        let later = KeySet::load("i", &[old, new], &sealer, t1.plus_secs(100)).unwrap();
        assert_eq!(later.jwks().keys.len(), 1);
    }

    #[test]
    fn a_pre_published_key_is_in_the_jwks_at_once_and_signs_only_from_its_time() {
        let sk = ServerKey::generate();
        let sealer = sk.sealer("signing-keys");
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let mut old = generate_signing_key(&sealer, t0);
        let t1 = t0.plus_secs(10);
        let mut new = generate_signing_key(&sealer, t1);
        let from = t1.plus_secs(330);
        new.signs_from = Some(from);
        old.publish_until = Some(from.plus_secs(3600));
        // Loaded once, before the switch: the new key verifies at once, and signs tokens
        // issued from its time on, without a reload.
        let ks = KeySet::load("i", &[old.clone(), new.clone()], &sealer, t1).unwrap();
        assert_eq!(ks.signing_kid(), old.kid);
        assert_eq!(ks.next_signing(), Some((new.kid.as_str(), from)));
        assert_eq!(ks.jwks().keys.len(), 2);
        let kid_of = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
        let mut before = claims(t1);
        before.iss = "i".into();
        let jwt = ks.sign(&before).unwrap();
        assert_eq!(kid_of(&jwt), old.kid);
        let mut after = claims(from);
        after.iss = "i".into();
        let jwt = ks.sign(&after).unwrap();
        assert_eq!(kid_of(&jwt), new.kid);
        assert!(ks.verify(&jwt, from).is_ok());
        // Loaded after the switch: the new key is the current one.
        let later = KeySet::load("i", &[old, new.clone()], &sealer, from).unwrap();
        assert_eq!(
            (later.signing_kid(), later.next_signing()),
            (new.kid.as_str(), None)
        );
    }

    #[test]
    fn a_token_from_another_issuer_or_key_is_refused() {
        let sealer = ServerKey::generate().sealer("signing-keys");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let a = KeySet::load("a", &[generate_signing_key(&sealer, now)], &sealer, now).unwrap();
        let b = KeySet::load("b", &[generate_signing_key(&sealer, now)], &sealer, now).unwrap();
        let mut c = claims(now);
        c.iss = "a".into();
        let jwt = a.sign(&c).unwrap();
        assert_eq!(b.verify(&jwt, now), Err(TokenError::UnknownKey));
        assert_eq!(a.verify("not.a.jwt", now), Err(TokenError::Malformed));
    }

    /// Tokens that name a key this server publishes but were not signed as they read: claims
    /// altered after signing, a damaged signature, another issuer, another algorithm.
    #[test]
    fn forged_tokens_with_a_known_kid_are_refused() {
        let sealer = ServerKey::generate().sealer("signing-keys");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let keys =
            KeySet::load("iss", &[generate_signing_key(&sealer, now)], &sealer, now).unwrap();
        let mut c = claims(now);
        c.iss = "iss".into();
        let jwt = keys.sign(&c).unwrap();
        assert!(keys.verify(&jwt, now).is_ok());
        let parts: Vec<&str> = jwt.split('.').collect();
        let reencode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        for (field, value) in [
            ("perms", serde_json::json!(["csp:org_owner"])),
            ("context_name", serde_json::json!("another-org")),
            (
                "scope",
                serde_json::json!("sellingpartnerapi::client_credential:rotation"),
            ),
            ("exp", serde_json::json!(c.exp + 86_400)),
            ("sub", serde_json::json!("someone-else")),
        ] {
            let mut altered = payload.clone();
            altered[field] = value;
            let forged = format!("{}.{}.{}", parts[0], reencode(&altered), parts[2]);
            assert_eq!(
                keys.verify(&forged, now),
                Err(TokenError::BadSignature),
                "{field}"
            );
        }
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let damaged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(keys.verify(&damaged, now), Err(TokenError::BadSignature));
        let mut other_issuer = claims(now);
        other_issuer.iss = "https://evil.example".into();
        let signed_elsewhere = keys.sign(&other_issuer).unwrap();
        assert_eq!(
            keys.verify(&signed_elsewhere, now),
            Err(TokenError::BadSignature)
        );
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        for alg in ["none", "HS256"] {
            let mut h = header.clone();
            h["alg"] = serde_json::json!(alg);
            let forged = format!("{}.{}.{}", reencode(&h), parts[1], parts[2]);
            assert!(keys.verify(&forged, now).is_err(), "{alg}");
            let unsigned = format!("{}.{}.", reencode(&h), parts[1]);
            assert!(
                keys.verify(&unsigned, now).is_err(),
                "{alg} without a signature"
            );
        }
    }
}
