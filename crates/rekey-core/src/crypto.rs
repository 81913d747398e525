//! The server key and the keys derived from it.
//!
//! One 32-byte server key (a file in the data directory, or config) is the root of every
//! server-side secret. Purpose-specific keys are derived from it with HMAC-SHA-256 over a
//! label, so a key used to hash client secrets is never the key that seals signing keys.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::error::CoreError;

/// The root key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "fixed key and tag sizes; an OS RNG failure leaves nothing safe to do"
    )]
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .expect("the OS random number generator failed");
        Self(k)
    }

    /// Parses the base64 text form (as written to the key file).
    pub fn from_base64(s: &str) -> Result<Self, CoreError> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|_| CoreError::Invalid("server key is not valid base64".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CoreError::Invalid("server key must be 32 bytes".into()))?;
        Ok(Self(arr))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "fixed key and tag sizes; an OS RNG failure leaves nothing safe to do"
    )]
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, format!("rekey/v1/{purpose}").as_bytes());
        tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
    }

    /// Hasher for client secrets.
    pub fn secret_hasher(&self) -> KeyedHasher {
        KeyedHasher::new(&self.derive("client-secret-hash"))
    }

    /// Hasher for user API tokens.
    pub fn api_token_hasher(&self) -> KeyedHasher {
        KeyedHasher::new(&self.derive("api-token-hash"))
    }

    /// The key check stored in the database: derived from the key (it reveals nothing of it),
    /// so a command can tell whether its key is the database's.
    pub fn key_check(&self) -> String {
        to_hex(&self.derive("key-check"))
    }

    /// Key of the audit trail's hash chains (see `audit_chain`).
    pub fn audit_hasher(&self) -> KeyedHasher {
        KeyedHasher::new(&self.derive("audit-chain"))
    }

    /// Hasher for console sign-in links and session cookies.
    pub fn console_hasher(&self) -> KeyedHasher {
        KeyedHasher::new(&self.derive("console-hash"))
    }

    /// Sealer for data at rest (signing keys, outbox payloads), bound to a purpose.
    pub fn sealer(&self, purpose: &str) -> Sealer {
        Sealer::new(&self.derive(&format!("seal/{purpose}")))
    }
}

/// A 32-byte HMAC-SHA-256 digest of a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(Self)
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// HMAC-SHA-256 with a server-side key. Secrets are server-generated with 256 bits of
/// entropy, so a slow password hash would add cost and no safety.
#[derive(Clone)]
pub struct KeyedHasher(hmac::Key);

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHasher(..)")
    }
}

impl KeyedHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "fixed key and tag sizes; an OS RNG failure leaves nothing safe to do"
    )]
    pub fn hash(&self, secret: &str) -> SecretHash {
        let tag = hmac::sign(&self.0, secret.as_bytes());
        SecretHash(tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes"))
    }
}

/// ChaCha20-Poly1305 with a random nonce per message; output is `nonce || ciphertext || tag`.
pub struct Sealer(LessSafeKey);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "fixed key and tag sizes; an OS RNG failure leaves nothing safe to do"
    )]
    fn new(key: &[u8; 32]) -> Self {
        let unbound =
            UnboundKey::new(&aead::CHACHA20_POLY1305, key).expect("32 bytes is the key length");
        Self(LessSafeKey::new(unbound))
    }

    /// Encrypts `plaintext`; `context` (e.g. a row id) is authenticated but not stored, so a
    /// sealed value copied to another row does not open there.
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "fixed key and tag sizes; an OS RNG failure leaves nothing safe to do"
    )]
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the OS random number generator failed");
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .expect("sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CoreError> {
        if sealed.len() < 12 + 16 {
            return Err(CoreError::Crypto("sealed value is too short"));
        }
        let (nonce, rest) = sealed.split_at(12);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CoreError::Crypto("bad nonce"))?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| CoreError::Crypto("sealed value does not open with this key"))?;
        Ok(plain.to_vec())
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `value`, hex: a one-way name for something that must not be kept as is.
pub fn sha256_hex(value: &str) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, value.as_bytes()).as_ref())
}

/// `bytes` random bytes from the OS, hex (unguessable file names and the like).
#[allow(
    clippy::expect_used,
    reason = "an OS RNG failure leaves nothing safe to do"
)]
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random number generator failed");
    to_hex(&buf)
}

/// A short, one-way name for untrusted input that must not be logged as is (an unknown
/// client id may be a secret sent in the wrong field): the first 12 hex digits of its SHA-256.
pub fn log_fingerprint(value: &str) -> String {
    let mut hex = sha256_hex(value);
    hex.truncate(12);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_hashers_differ_by_purpose_and_key() {
        let k = ServerKey::generate();
        let a = k.secret_hasher().hash("x");
        assert_eq!(a, k.secret_hasher().hash("x"));
        assert_ne!(a, k.api_token_hasher().hash("x"));
        assert_ne!(a, ServerKey::generate().secret_hasher().hash("x"));
    }

    #[test]
    fn the_key_check_is_stable_for_a_key_and_tells_keys_apart_without_showing_them() {
        let (a, b) = (ServerKey::generate(), ServerKey::generate());
        let a_again = ServerKey::from_base64(&a.to_base64()).unwrap();
        assert_eq!(a.key_check(), a_again.key_check());
        assert_ne!(a.key_check(), b.key_check());
        assert_eq!(a.key_check().len(), 64);
    }

    #[test]
    fn server_key_round_trips_through_base64() {
        let k = ServerKey::generate();
        let k2 = ServerKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(k.secret_hasher().hash("s"), k2.secret_hasher().hash("s"));
        assert!(ServerKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn sealed_values_open_only_with_same_key_and_context() {
        let k = ServerKey::generate();
        let s = k.sealer("test");
        let sealed = s.seal(b"hello", b"row-1");
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(s.open(&sealed, b"row-1").unwrap(), b"hello");
        assert!(s.open(&sealed, b"row-2").is_err());
        assert!(k.sealer("other").open(&sealed, b"row-1").is_err());
        assert!(ServerKey::generate()
            .sealer("test")
            .open(&sealed, b"row-1")
            .is_err());
    }

    #[test]
    fn secret_hash_debug_is_redacted() {
        let h = ServerKey::generate().secret_hasher().hash("s");
        assert_eq!(format!("{h:?}"), "SecretHash(..)");
    }
}
