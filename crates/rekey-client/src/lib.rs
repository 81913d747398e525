//! `rekey-client`: a typed async client for every API family Rekey serves, usable against
//! Rekey or against the services it stands in for (Amazon SP-API with Login with Amazon,
//! VMware Cloud Services).
//!
//! - [`TokenProvider`]: client-credentials (LWA / OAuth 2.0 / CSP) or CSP API-token access
//!   tokens, cached and refreshed before expiry, one refresh at a time under concurrency;
//! - [`ApplicationsApi`]: SP-API `rotateApplicationClientSecret` and its `_with_http_info`
//!   variant, as in the official SDKs;
//! - [`OauthAppsApi`]: CSP organization OAuth apps and their secrets;
//! - [`NativeApi`]: Rekey's own management API.
//!
//! Errors ([`ClientError`]) carry the status, the dialect's error body, the request id and
//! the rate-limit header. Reads are retried on 429 and 5xx with backoff; operations that
//! change state are not (see [`RetryPolicy`]).

mod csp;
mod error;
mod http;
mod native;
mod spapi;
mod token;

pub use csp::{NewAppSecret, OauthAppsApi, CSP_DEFAULT_BASE_URL};
pub use error::{ClientError, ErrorBody};
pub use http::{ApiResponse, RetryPolicy};
pub use native::NativeApi;
pub use spapi::{ApplicationsApi, SpApiRegion, LWA_TOKEN_URL, ROTATION_SCOPE};
pub use token::{Clock, Credentials, SystemClock, TokenProvider};
