//! Errors of the domain and of the store, shared by every layer above.

/// A lower layer's error, kept whole so that logs show the full cause chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// The database failed; `context` says what was being done.
    #[error("storage error: {context}")]
    Storage {
        context: &'static str,
        #[source]
        source: Option<Cause>,
    },
    #[error("crypto error: {0}")]
    Crypto(&'static str),
}

impl CoreError {
    /// A storage failure caused by `source`.
    pub fn storage(context: &'static str, source: impl Into<Cause>) -> Self {
        CoreError::Storage {
            context,
            source: Some(source.into()),
        }
    }

    /// A storage failure with no lower error (e.g. a stored value that does not parse).
    pub fn storage_msg(context: &'static str) -> Self {
        CoreError::Storage {
            context,
            source: None,
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;

/// Why a use case (see [`crate::ops`]) did not happen. Refusals are variants, each rendered
/// by every dialect in its own shape; only `Store` is an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("denied: {0}")]
    Denied(#[from] crate::policy::Denied),
    /// The app, secret or member is not in the org.
    #[error("not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another app has the chosen client id.
    #[error("an app with this client id exists")]
    ClientIdTaken,
    /// The app has no destination for `APPLICATION_OAUTH_CLIENT_NEW_SECRET`.
    #[error("the app has no destination for new secrets")]
    NotEnrolled,
    /// A previous secret is still valid.
    #[error("a rotation is in progress")]
    RotationInProgress {
        previous_expires_at: Option<crate::clock::Timestamp>,
    },
    /// Finishing would leave no valid secret: the current one is expired or revoked.
    #[error("the current secret is not valid")]
    NoValidCurrent,
    /// The change would leave the org without an `org_owner`.
    #[error("the organization must keep at least one org_owner")]
    LastOwner,
    #[error(transparent)]
    Store(CoreError),
}

impl From<CoreError> for OpError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => OpError::NotFound,
            CoreError::Invalid(m) => OpError::Invalid(m),
            CoreError::Conflict(m) => OpError::Conflict(m),
            e => OpError::Store(e),
        }
    }
}

impl From<crate::rotation::RotationError> for OpError {
    fn from(e: crate::rotation::RotationError) -> Self {
        match e {
            crate::rotation::RotationError::InProgress {
                previous_expires_at,
            } => OpError::RotationInProgress {
                previous_expires_at,
            },
            crate::rotation::RotationError::NoValidCurrent => OpError::NoValidCurrent,
        }
    }
}
