//! Errors of the domain and of the store, shared by every layer above.

/// What can go wrong below the HTTP layer. Messages never contain secret material:
/// they are written for logs, and each dialect renders its own client-facing text.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("crypto error: {0}")]
    Crypto(&'static str),
}

pub type CoreResult<T> = Result<T, CoreError>;
