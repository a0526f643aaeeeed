//! The one error type of vhs.

use std::fmt;

/// A boxed error from a lower layer (the AWS SDK, serde, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout vhs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an [`UploadTicket`](crate::UploadTicket) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketProblem {
    /// Its signature does not match its contents: it was altered, forged, or
    /// signed with another store's ticket secret.
    #[error("its signature does not match (altered, forged, or signed with another secret)")]
    Forged,
    /// Its commit deadline (the URL's expiry plus the commit margin) passed.
    #[error("it could be committed until {deadline} (unix seconds), now is {now}")]
    Expired {
        /// Unix seconds.
        deadline: u64,
        /// Unix seconds.
        now: u64,
    },
    /// It was issued for another table, item or attribute than the commit's.
    #[error("it was issued for {issued}, not {committed}")]
    WrongTarget {
        /// What the ticket names.
        issued: String,
        /// What the commit writes.
        committed: String,
    },
    /// It was committed already (its token is in the item's history).
    #[error("it was committed already")]
    Used,
    /// The object found has another size or checksum than the ticket's.
    #[error("the object uploaded is not the one it names: {0}")]
    Mismatch(String),
}

/// Everything that can go wrong in vhs, as variants a caller can act on.
///
/// Errors never carry object bodies or credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The item does not exist (read, update or delete of a missing item).
    #[error("item {key} not found in table {table}")]
    NotFound {
        /// Table name.
        table: String,
        /// Human-readable key, e.g. `pk="a", sk="b"`.
        key: String,
    },

    /// The table does not exist (or this account may not describe it).
    #[error("table {table} not found")]
    TableNotFound {
        /// Table name.
        table: String,
    },

    /// A create found an item with the same key already stored.
    #[error("item {key} already exists in table {table}")]
    AlreadyExists {
        /// Table name.
        table: String,
        /// Human-readable key.
        key: String,
    },

    /// A caller-supplied condition did not hold; nothing was written.
    #[error("condition failed for item {key} in table {table}")]
    ConditionFailed {
        /// Table name.
        table: String,
        /// Human-readable key.
        key: String,
    },

    /// Optimistic locking: the stored version is not the one the caller read (a
    /// concurrent writer got there first). Retryable: read again, reapply, write.
    #[error("version conflict on item {key} in table {table}: expected version {expected}, found {}", found.map_or("no item".to_owned(), |v| v.to_string()))]
    VersionConflict {
        /// Table name.
        table: String,
        /// Human-readable key.
        key: String,
        /// The version the caller read.
        expected: u64,
        /// The version stored now (`None`: no item).
        found: Option<u64>,
    },

    /// A versioned put found this very version already stored with other content.
    #[error("version {version} of {key} already exists in table {table}")]
    VersionAlreadyExists {
        /// Table name.
        table: String,
        /// Human-readable id.
        key: String,
        /// The version.
        version: u64,
    },

    /// A versioned put found a higher version stored.
    #[error("{key} in table {table} is at version {found}, higher than {version}")]
    HigherVersionExists {
        /// Table name.
        table: String,
        /// Human-readable id.
        key: String,
        /// The version the caller tried to write.
        version: u64,
        /// The version stored.
        found: u64,
    },

    /// A versioned read found no version at all.
    #[error("no version of {key} exists in table {table}")]
    NoVersionExists {
        /// Table name.
        table: String,
        /// Human-readable id.
        key: String,
    },

    /// A deletion of the same object (or of the item) was still in progress when
    /// the write's wait ran out ([`Options::wait`](crate::Options::wait)), or a
    /// read lost every race to concurrent writes replacing the objects it was
    /// reading (never reported as a dangling pointer). Retryable. A deletion
    /// whose caller died is taken over by GC after
    /// [`Options::retention`](crate::Options::retention).
    #[error("item {key} in table {table} is busy: {reason}")]
    Busy {
        /// Table name.
        table: String,
        /// Human-readable key.
        key: String,
        /// What the write waited for.
        reason: String,
    },

    /// The item points at an S3 object that does not exist.
    #[error("dangling pointer: attribute `{attr}` points at {uri}, which does not exist")]
    DanglingPointer {
        /// The large attribute holding the pointer.
        attr: String,
        /// The `s3://bucket/key` URI it holds.
        uri: String,
    },

    /// An object's bytes do not match the checksum recorded in its key (in the
    /// key's algorithm: `md5`, `sha256` or `crc64nvme`).
    #[error(
        "integrity mismatch: attribute `{attr}` at {uri} has {actual}, expected {expected} (its bytes do not match the checksum its key names)"
    )]
    Integrity {
        /// The large attribute.
        attr: String,
        /// The object URI.
        uri: String,
        /// The checksum recorded in the key.
        expected: crate::checksum::Checksum,
        /// The checksum of the bytes read, in the same algorithm.
        actual: crate::checksum::Checksum,
    },

    /// A large attribute holds something vhs will not follow: not an `s3://` URI,
    /// or a URI into another bucket or outside the store's prefix. Such a value is
    /// never read from nor deleted.
    #[error(
        "attribute `{attr}` holds {value:?}, which is not a pointer into this store: {reason}"
    )]
    BadPointer {
        /// The large attribute.
        attr: String,
        /// The value it holds (a URI, never object bytes).
        value: String,
        /// Why it was refused.
        reason: String,
    },

    /// A transaction was canceled because its action number `action` (0-based,
    /// in the order the actions were added) could not be applied, for `reason`
    /// ([`Error::NotFound`], [`Error::AlreadyExists`], [`Error::ConditionFailed`],
    /// [`Error::VersionConflict`], [`Error::Busy`], ...). Nothing was written,
    /// and the objects the transaction uploaded were removed.
    #[error("transaction canceled by action {action}: {reason}")]
    TransactionCanceled {
        /// Which action.
        action: usize,
        /// Why.
        reason: Box<Error>,
    },

    /// A write was sent, its answer never came (after every resend), and the
    /// item does not tell whether it was applied: it may have been, or may
    /// still be. Read the item to see; a later call decides on what it finds.
    #[error("outcome unknown: {operation} of item {key} in table {table} may or may not have been applied: {message}")]
    OutcomeUnknown {
        /// Table name.
        table: String,
        /// Human-readable key.
        key: String,
        /// What was sent.
        operation: &'static str,
        /// Why it could not be resolved.
        message: String,
    },

    /// A presigned upload cannot be committed: its object is not there (never
    /// uploaded, or collected by GC after its ticket expired, or deleted as
    /// identical content being deleted when it was committed). Upload again
    /// (with the same ticket while it is valid) and commit again.
    #[error("upload not found: {uri} does not exist (upload it, then commit)")]
    UploadMissing {
        /// The object's `s3://` URI.
        uri: String,
    },
    /// A presigned upload's ticket is refused: nothing was written.
    #[error("upload ticket refused: {problem}")]
    Ticket {
        /// Why.
        problem: TicketProblem,
    },
    /// The input was rejected before anything was written.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong and, where it helps, how to fix it.
        message: String,
    },

    /// The tags a store would write an object with break one of S3's rules
    /// (at most 10 per object, keys of 1 to 128 characters, values up to 256, no
    /// key twice) or a tag of the caller's uses the prefix `vhs-`. Checked
    /// before anything is written; not retryable.
    #[error("invalid tags for objects of `{attr}` in table {table}: {reason}")]
    InvalidTags {
        /// Table name.
        table: String,
        /// The large attribute.
        attr: String,
        /// Which rule is broken.
        reason: String,
    },

    /// A local file or stream could not be read or written (a [`Blob`](crate::Blob)'s
    /// file, a download's destination). Nothing was committed because of it.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done, e.g. `read /data/video.mp4`.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A value could not be converted to or from its stored form.
    #[error("cannot {direction} attribute `{attr}`: {source}")]
    Codec {
        /// `encode` or `decode`.
        direction: &'static str,
        /// Attribute name.
        attr: String,
        /// The underlying serde error.
        #[source]
        source: BoxError,
    },

    /// DynamoDB or S3 (or the in-memory backend) failed. Reads as one line:
    /// service, operation, the service's error code, its message, e.g.
    /// `S3 CreateBucket: InvalidBucketName: The specified bucket is not valid.`;
    /// the SDK's error (with the raw response) stays reachable through
    /// [`source()`](std::error::Error::source).
    #[error("{} {operation}: {}{message}", service_name(service), code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Backend {
        /// `dynamodb`, `s3` or `memory`.
        service: &'static str,
        /// The operation, e.g. `PutItem`.
        operation: &'static str,
        /// The service's error code, when it sent one.
        code: Option<String>,
        /// Whether repeating the call may succeed (throttling, 5xx, timeouts).
        retryable: bool,
        /// A short description.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// The AWS configuration does not allow the call: no AWS credentials found
    /// (nothing was sent), credentials the service refused as expired or
    /// invalid, no region, an endpoint that is not a URL. Reads as one line,
    /// e.g. `DynamoDB GetItem: no AWS credentials found (tried Environment,
    /// Profile)`; the SDK's error stays reachable through
    /// [`source()`](std::error::Error::source). Not retryable: fix the
    /// configuration (environment, profile, role, region, endpoint).
    #[error("{} {operation}: {message}", service_name(service))]
    Config {
        /// `dynamodb` or `s3`.
        service: &'static str,
        /// The operation, e.g. `GetItem`.
        operation: &'static str,
        /// What is missing or wrong, in a short phrase.
        message: String,
        /// The underlying SDK error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// How a service reads in a message: `DynamoDB`, `S3`, else as given.
fn service_name(service: &str) -> &str {
    match service {
        "dynamodb" => "DynamoDB",
        "s3" => "S3",
        other => other,
    }
}

impl Error {
    /// Whether the same call may succeed if repeated (throttling, timeouts, 5xx).
    ///
    /// A [`Error::VersionConflict`] is retryable too: read again, reapply, write.
    /// Conflicts of content (`AlreadyExists`, `ConditionFailed`) are not retryable:
    /// repeating the identical call gives the identical answer.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                retryable: true,
                ..
            } | Error::VersionConflict { .. }
                | Error::Busy { .. }
                | Error::OutcomeUnknown { .. }
        ) || matches!(self, Error::TransactionCanceled { reason, .. } if reason.is_retryable())
    }

    /// Whether this is [`Error::NotFound`] or [`Error::TableNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::TableNotFound { .. })
    }

    /// A copy, for a value that must be cloned (a protocol machine's state in
    /// the model checker): the same variant and message; a source error is
    /// kept as its message only.
    pub(crate) fn duplicate(&self) -> Error {
        let source = |s: &dyn std::error::Error| -> BoxError { s.to_string().into() };
        match self {
            Error::NotFound { table, key } => Error::NotFound {
                table: table.clone(),
                key: key.clone(),
            },
            Error::TableNotFound { table } => Error::TableNotFound {
                table: table.clone(),
            },
            Error::AlreadyExists { table, key } => Error::AlreadyExists {
                table: table.clone(),
                key: key.clone(),
            },
            Error::ConditionFailed { table, key } => Error::ConditionFailed {
                table: table.clone(),
                key: key.clone(),
            },
            Error::VersionConflict {
                table,
                key,
                expected,
                found,
            } => Error::VersionConflict {
                table: table.clone(),
                key: key.clone(),
                expected: *expected,
                found: *found,
            },
            Error::VersionAlreadyExists {
                table,
                key,
                version,
            } => Error::VersionAlreadyExists {
                table: table.clone(),
                key: key.clone(),
                version: *version,
            },
            Error::HigherVersionExists {
                table,
                key,
                version,
                found,
            } => Error::HigherVersionExists {
                table: table.clone(),
                key: key.clone(),
                version: *version,
                found: *found,
            },
            Error::NoVersionExists { table, key } => Error::NoVersionExists {
                table: table.clone(),
                key: key.clone(),
            },
            Error::Busy { table, key, reason } => Error::Busy {
                table: table.clone(),
                key: key.clone(),
                reason: reason.clone(),
            },
            Error::DanglingPointer { attr, uri } => Error::DanglingPointer {
                attr: attr.clone(),
                uri: uri.clone(),
            },
            Error::Integrity {
                attr,
                uri,
                expected,
                actual,
            } => Error::Integrity {
                attr: attr.clone(),
                uri: uri.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            Error::BadPointer {
                attr,
                value,
                reason,
            } => Error::BadPointer {
                attr: attr.clone(),
                value: value.clone(),
                reason: reason.clone(),
            },
            Error::TransactionCanceled { action, reason } => Error::TransactionCanceled {
                action: *action,
                reason: Box::new(reason.duplicate()),
            },
            Error::OutcomeUnknown {
                table,
                key,
                operation,
                message,
            } => Error::OutcomeUnknown {
                table: table.clone(),
                key: key.clone(),
                operation,
                message: message.clone(),
            },
            Error::InvalidInput { message } => Error::InvalidInput {
                message: message.clone(),
            },
            Error::UploadMissing { uri } => Error::UploadMissing { uri: uri.clone() },
            Error::Ticket { problem } => Error::Ticket {
                problem: problem.clone(),
            },
            Error::InvalidTags {
                table,
                attr,
                reason,
            } => Error::InvalidTags {
                table: table.clone(),
                attr: attr.clone(),
                reason: reason.clone(),
            },
            Error::Io { action, source } => Error::Io {
                action: action.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Codec {
                direction,
                attr,
                source: s,
            } => Error::Codec {
                direction,
                attr: attr.clone(),
                source: source(s.as_ref()),
            },
            Error::Backend {
                service,
                operation,
                code,
                retryable,
                message,
                source: s,
            } => Error::Backend {
                service,
                operation,
                code: code.clone(),
                retryable: *retryable,
                message: message.clone(),
                source: s.as_deref().map(|e| source(e)),
            },
            Error::Config {
                service,
                operation,
                message,
                source: s,
            } => Error::Config {
                service,
                operation,
                message: message.clone(),
                source: s.as_deref().map(|e| source(e)),
            },
        }
    }

    pub(crate) fn invalid(message: impl fmt::Display) -> Self {
        Error::InvalidInput {
            message: message.to_string(),
        }
    }

    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn encode(attr: &str, source: impl Into<BoxError>) -> Self {
        Error::Codec {
            direction: "encode",
            attr: attr.to_owned(),
            source: source.into(),
        }
    }

    pub(crate) fn decode(attr: &str, source: impl Into<BoxError>) -> Self {
        Error::Codec {
            direction: "decode",
            attr: attr.to_owned(),
            source: source.into(),
        }
    }

    /// A backend error built by a backend implementation.
    pub fn backend(
        service: &'static str,
        operation: &'static str,
        retryable: bool,
        message: impl fmt::Display,
    ) -> Self {
        Error::Backend {
            service,
            operation,
            code: None,
            retryable,
            message: message.to_string(),
            source: None,
        }
    }

    /// A call (`service`, `operation`: an [`Op`](crate::Op)'s) the backend does
    /// not implement (a default method of
    /// [`PresignCalls`](crate::PresignCalls) or
    /// [`ProvisionCalls`](crate::ProvisionCalls)): a non-retryable
    /// [`Error::Backend`] with the code `Unsupported`.
    pub fn unsupported(service: &'static str, operation: &'static str) -> Self {
        Error::Backend {
            service,
            operation,
            code: Some("Unsupported".into()),
            retryable: false,
            message: "this backend does not implement the call".into(),
            source: None,
        }
    }

    /// A wrapper answered `operation` with the [`Reply`](crate::Reply) of another
    /// call: a bug in that wrapper, never retryable.
    pub(crate) fn mismatched_reply(
        service: &'static str,
        operation: &'static str,
        reply: &dyn fmt::Debug,
    ) -> Self {
        Error::Backend {
            service,
            operation,
            code: Some("MismatchedReply".into()),
            retryable: false,
            message: format!("a backend wrapper answered with {reply:?}"),
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_only_for_retryable_backend_errors() {
        assert!(Error::backend("s3", "PutObject", true, "slow down").is_retryable());
        assert!(!Error::backend("s3", "PutObject", false, "denied").is_retryable());
        assert!(!Error::invalid("x").is_retryable());
        let e = Error::NotFound {
            table: "t".into(),
            key: "pk=\"a\"".into(),
        };
        assert!(!e.is_retryable());
        assert!(e.is_not_found());
    }

    #[test]
    fn backend_display_includes_code() {
        let e = Error::Backend {
            service: "dynamodb",
            operation: "PutItem",
            code: Some("ValidationException".into()),
            retryable: false,
            message: "too big".into(),
            source: None,
        };
        assert_eq!(
            e.to_string(),
            "DynamoDB PutItem: ValidationException: too big"
        );
        let e = Error::backend("s3", "GetObject", true, "timed out");
        assert_eq!(e.to_string(), "S3 GetObject: timed out");
    }

    #[test]
    fn config_errors_are_one_line_and_not_retryable() {
        let e = Error::Config {
            service: "dynamodb",
            operation: "GetItem",
            message: "no AWS credentials found (tried Environment, Profile)".into(),
            source: Some("the credential provider was not enabled".into()),
        };
        assert_eq!(
            e.to_string(),
            "DynamoDB GetItem: no AWS credentials found (tried Environment, Profile)"
        );
        assert!(!e.is_retryable());
        assert!(!e.is_not_found());
        assert!(std::error::Error::source(&e).is_some());
        let copy = e.duplicate();
        assert_eq!(copy.to_string(), e.to_string());
        assert!(matches!(
            copy,
            Error::Config {
                source: Some(_),
                ..
            }
        ));
        // Inside a canceled transaction too.
        let canceled = Error::TransactionCanceled {
            action: 0,
            reason: Box::new(e),
        };
        assert!(!canceled.is_retryable());
        assert!(Error::TableNotFound { table: "t".into() }.is_not_found());
    }
}
