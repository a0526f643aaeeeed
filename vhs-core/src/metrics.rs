//! The name of every metric vhs emits, written once: the README's "Metrics"
//! section lists their types, labels and meaning. The values are emitted
//! through the `metrics` facade: by the store's `Metered` backend layer
//! (requests, latency, bytes), and where the store, the protocol engine, GC and
//! verify count what they did.

/// Counter: backend requests, by `service` (`dynamodb`, `s3`), `operation`
/// (the API operation, e.g. `PutItem`) and `outcome` (`ok`,
/// `condition_failed`, `transaction_canceled`, `retryable_error`, `error`).
pub const BACKEND_REQUESTS: &str = "vhs_backend_requests_total";
/// Histogram: seconds from sending a backend request to its answer (waiting
/// for the store's concurrency limit excluded), by `service` and `operation`.
pub const BACKEND_REQUEST_SECONDS: &str = "vhs_backend_request_seconds";
/// Counter: object body bytes sent (PutObject, UploadPart), by `service`.
pub const BACKEND_BYTES_SENT: &str = "vhs_backend_bytes_sent_total";
/// Counter: object body bytes received (GetObject, whole or ranged), by
/// `service`.
pub const BACKEND_BYTES_RECEIVED: &str = "vhs_backend_bytes_received_total";
/// Counter: attempts repeated by a store retry loop, by `operation`.
pub const RETRIES: &str = "vhs_retries_total";
/// Counter: protocol writes whose outcome was unknown (the answer lost or
/// timed out, or a retryable error), which the protocol then settles by
/// reading the item; by `operation` (`PutItem`, `UpdateItem`,
/// `DeleteItem`, `TransactWriteItems`). One it cannot settle reaches the
/// caller as [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown).
pub const OUTCOMES_UNKNOWN: &str = "vhs_outcomes_unknown_total";
/// Counter: objects a cleanup deleted.
pub const CLEANUP_DELETED_OBJECTS: &str = "vhs_cleanup_deleted_objects_total";
/// Counter: objects a cleanup failed to delete, left for GC.
pub const CLEANUP_LEFTOVER_OBJECTS: &str = "vhs_cleanup_leftover_objects_total";
/// Counter: deletion marks a cleanup could not remove, left for GC to take over.
pub const CLEANUP_MARKS_LEFT: &str = "vhs_cleanup_marks_left_total";
/// Counter: orphaned objects GC deleted (dry runs not counted).
pub const GC_DELETED_OBJECTS: &str = "vhs_gc_deleted_objects_total";
/// Counter: orphans GC failed to delete, left for its next run.
pub const GC_FAILED_OBJECTS: &str = "vhs_gc_failed_objects_total";
/// Counter: problems verify found, by `kind` (`dangling`, `integrity`,
/// `bad_pointer`, `foreign_pointer`, `orphan`).
pub const VERIFY_PROBLEMS: &str = "vhs_verify_problems_total";
