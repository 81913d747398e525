//! Rekey's HTTP server: every route, per-dialect error rendering, configuration, telemetry
//! and start-up. The domain lives in `rekey-core`, persistence in `rekey-store`.
//!
//! - [`startup`]: builds the [`startup::Application`] on a bound listener and runs it;
//! - [`oauth`]: token endpoints (LWA, OAuth 2.0, CSP) and key/metadata discovery;
//! - [`native`]: the management API under `/api/v1`;
//! - [`console`]: the browser console under `/console`;
//! - [`errors`]: `OAuthError` (RFC 6749) and `ApiError` (RFC 9457 problems);
//! - [`extract`]: the authenticated caller and JSON bodies with problem rejections;
//! - [`metrics`]: the Prometheus endpoint on `metrics_listen`;

pub mod config;
pub mod console;
pub mod csp;
pub mod errors;
pub mod extract;
pub mod metrics;
pub mod native;
pub mod oauth;
pub mod spapi;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
