//! Errors: [`ServiceError`] is what a caller of the service is told (a kind,
//! a stable code, a message), whichever plane refused; the HTTP layer maps
//! its kind to a status (`http::error`). [`StartupError`] is why a process
//! could not start.

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("storage: {0}")]
    Storage(String),
    #[error("queue: {0}")]
    Queue(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What kind of refusal or failure an error is; each has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed.
    BadRequest,
    /// No valid session.
    Unauthorized,
    /// Not enough credits.
    PaymentRequired,
    /// Signed in, but not allowed.
    Forbidden,
    NotFound,
    /// The thing is not in a state that allows this.
    Conflict,
    /// It existed and was deleted.
    Gone,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Well-formed, but not acceptable.
    Unprocessable,
    /// A limit on rate or on concurrent work.
    TooManyRequests,
    /// A failure of ours.
    Internal,
    /// A service we depend on (object storage, an identity or payment provider) failed.
    BadGateway,
    /// Try again later (the queue did not answer).
    Unavailable,
}

/// An error answered to a caller as `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// Stable and machine-readable: `insufficient_credits`, `rate_limited`, …
    pub code: &'static str,
    pub message: String,
    /// Seconds after which trying again may succeed.
    pub retry_after: Option<u64>,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ServiceError { kind, code, message: message.into(), retry_after: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", format!("no such {what}"))
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, "unauthorized", message)
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }
    /// A failure of ours; the detail goes to the log, not to the caller.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(ErrorKind::Internal, "internal", format!("internal error ({context})"))
    }
    /// Object storage failed; the detail goes to the log.
    pub fn storage(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "object storage");
        Self::new(ErrorKind::BadGateway, "storage_unavailable", "object storage did not answer; try again")
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceError {}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        ServiceError::internal("database", e)
    }
}
