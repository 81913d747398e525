//! Rekey's domain: what an application, a secret and a token are, and the rules over them.
//!
//! Nothing here speaks HTTP, SQL or AWS. Rules take the current time as a value (see
//! [`clock`]), persistence goes through the [`store::Store`] trait, and cryptography is
//! confined to [`crypto`] (keyed hashing, sealing) and [`token`] (JWT signing).
//!
//! Layout:
//! - [`clock`]: `Timestamp` and the `Clock` trait (system and manual clocks);
//! - [`model`]: orgs, users, roles, apps, secrets, audit events;
//! - [`audit_chain`]: the audit trail's hash chains and their verification;
//! - [`audit_tally`]: failed authentications and refused actions, counted for the audit trail;
//! - [`secret`]: generation and format of client secrets and API tokens;
//! - [`crypto`]: the server key and what is derived from it;
//! - [`token`]: Ed25519-signed JWT access tokens and the published key set;
//! - [`auth`]: client authentication and scope rules, as pure functions;
//! - [`policy`]: who may do what, one table for every dialect;
//! - [`rotation`], [`rotation_policy`]: the rules of a rotation, and when a policy runs one;
//! - [`ops`]: the application layer, one function per use case over the store;
//! - [`store`]: the persistence trait both database backends implement;
//! - [`metrics`]: the name of every exported metric, and the gauges read from the store;
//! - [`throttle`], [`last_use`]: in-memory helpers of the token endpoint (failure throttle,
//!   batched last-use times).

pub mod apps;
pub mod audit_chain;
pub mod audit_tally;
pub mod auth;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod last_use;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod ops;
pub mod policy;
pub mod rotation;
pub mod rotation_policy;
pub mod secret;
pub mod store;
pub mod throttle;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::CoreError;
