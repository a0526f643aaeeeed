//! DynamoDB + S3 through the AWS SDK for Rust.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb as ddb;
use aws_sdk_s3 as s3;
use ddb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType as DdbKeyType,
    LocalSecondaryIndex, PointInTimeRecoverySpecification, ProjectionType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableDescription, TableStatus,
    TransactWriteItem,
};
use s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use s3::types::{Delete, ObjectIdentifier};

use crate::backend::{
    Attempts, Backend, BatchPage, CompletedPart, Conditional, IndexSpec, MultipartInfo,
    MultipartStart, ObjectInfo, ObjectPage, ObjectRange, PutObject, PutOutcome, Query, QueryPage,
    Scan, Signal, StoredObject, TableSpec,
};
use crate::backend::{BucketSpec, CancelReason, TransactWrite, Transacted};
use crate::condition::{Condition, ItemUpdate, Placeholders};
use crate::error::{Error, Result};
use crate::model::{IndexKind, Item, KeyKind, Projection};

/// Settings of [`AwsBackend`] beyond what an `SdkConfig` carries.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AwsOptions {
    /// Send every request to this endpoint (an emulator, a VPC endpoint, ...).
    pub endpoint_url: Option<String>,
    /// Send DynamoDB requests here (overrides `endpoint_url` for DynamoDB).
    pub dynamodb_endpoint_url: Option<String>,
    /// Send S3 requests here (overrides `endpoint_url` for S3): an
    /// S3-compatible store beside DynamoDB.
    pub s3_endpoint_url: Option<String>,
    /// Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key`.
    /// Needed by most S3 emulators and S3-compatible servers.
    pub force_path_style: bool,
    /// Compute and validate S3 checksums only where the API requires them. Some
    /// S3-compatible servers (older MinIO, Ceph RGW 16) reject the CRC32 checksums
    /// the SDK adds by default. vhs still sends `Content-MD5` on every upload.
    pub checksums_when_required: bool,
    /// Server-side encryption of every object vhs writes.
    pub encryption: Option<Encryption>,
    /// Sent as `ExpectedBucketOwner` on every S3 call: S3 refuses the call if the
    /// bucket belongs to another account.
    pub expected_bucket_owner: Option<String>,
    /// Attempts per request, the first included, with the SDK's standard retry
    /// mode (exponential backoff with jitter) for throttling, 5xx and transient
    /// network errors. Default: the SDK's (3).
    pub max_attempts: Option<u32>,
    /// The backoff before the first retry (doubled for each next one, with
    /// jitter). Default: the SDK's (1 s).
    pub initial_backoff: Option<Duration>,
    /// Time allowed to connect. Default: the SDK's.
    pub connect_timeout: Option<Duration>,
    /// Time allowed for one attempt of a request. Default: none.
    pub attempt_timeout: Option<Duration>,
    /// Time allowed for a request, all attempts included. Default: none.
    pub operation_timeout: Option<Duration>,
}

/// Server-side encryption of the objects vhs writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS, with the given key (or the account's default `aws/s3` key).
    Kms {
        /// KMS key id or ARN.
        key_id: Option<String>,
    },
}

impl AwsOptions {
    /// Options for a local emulator at `url`: endpoint override and path-style S3.
    pub fn emulator(url: impl Into<String>) -> Self {
        AwsOptions {
            endpoint_url: Some(url.into()),
            force_path_style: true,
            ..AwsOptions::default()
        }
    }

    /// Sets [`AwsOptions::encryption`].
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Sets [`AwsOptions::expected_bucket_owner`].
    pub fn expected_bucket_owner(mut self, account_id: impl Into<String>) -> Self {
        self.expected_bucket_owner = Some(account_id.into());
        self
    }

    /// Sets [`AwsOptions::max_attempts`].
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Sets [`AwsOptions::initial_backoff`].
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = Some(backoff);
        self
    }

    /// Sets the connect, attempt and operation timeouts.
    pub fn timeouts(
        mut self,
        connect: Option<Duration>,
        attempt: Option<Duration>,
        operation: Option<Duration>,
    ) -> Self {
        self.connect_timeout = connect;
        self.attempt_timeout = attempt;
        self.operation_timeout = operation;
        self
    }

    /// Sets [`AwsOptions::endpoint_url`].
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Sets [`AwsOptions::force_path_style`].
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.force_path_style = yes;
        self
    }

    /// Sets [`AwsOptions::checksums_when_required`].
    pub fn checksums_when_required(mut self, yes: bool) -> Self {
        self.checksums_when_required = yes;
        self
    }
}

/// The DynamoDB + S3 backend.
#[derive(Clone)]
pub struct AwsBackend {
    dynamodb: ddb::Client,
    s3: s3::Client,
    /// Where DynamoDB requests go, named in transport errors.
    dynamodb_endpoint: String,
    /// Where S3 requests go, named in transport errors.
    s3_endpoint: String,
    region: Option<String>,
    encryption: Option<Encryption>,
    expected_bucket_owner: Option<String>,
}

impl fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The clients' configs hold credentials providers: print none of it.
        f.debug_struct("AwsBackend")
            .field("region", &self.region)
            .field("encryption", &self.encryption)
            .field("expected_bucket_owner", &self.expected_bucket_owner)
            .finish_non_exhaustive()
    }
}

impl AwsBackend {
    /// A backend from a loaded `aws_config::SdkConfig`, with default options.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::with_options(config, AwsOptions::default())
    }

    /// A backend from an `SdkConfig` and [`AwsOptions`].
    pub fn with_options(config: &aws_config::SdkConfig, options: AwsOptions) -> Self {
        let mut d = ddb::config::Builder::from(config);
        let mut s = s3::config::Builder::from(config).force_path_style(options.force_path_style);
        if let Some(url) = options
            .dynamodb_endpoint_url
            .as_ref()
            .or(options.endpoint_url.as_ref())
        {
            d = d.endpoint_url(url);
        }
        if let Some(url) = options
            .s3_endpoint_url
            .as_ref()
            .or(options.endpoint_url.as_ref())
        {
            s = s.endpoint_url(url);
        }
        if options.checksums_when_required {
            s = s
                .request_checksum_calculation(s3::config::RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(s3::config::ResponseChecksumValidation::WhenRequired);
        }
        if options.max_attempts.is_some() || options.initial_backoff.is_some() {
            let mut retry = aws_config::retry::RetryConfig::standard();
            if let Some(n) = options.max_attempts {
                retry = retry.with_max_attempts(n.max(1));
            }
            if let Some(b) = options.initial_backoff {
                retry = retry.with_initial_backoff(b);
            }
            d = d.retry_config(retry.clone());
            s = s.retry_config(retry);
        }
        if options.connect_timeout.is_some()
            || options.attempt_timeout.is_some()
            || options.operation_timeout.is_some()
        {
            let mut t = aws_config::timeout::TimeoutConfig::builder();
            if let Some(v) = options.connect_timeout {
                t = t.connect_timeout(v);
            }
            if let Some(v) = options.attempt_timeout {
                t = t.operation_attempt_timeout(v);
            }
            if let Some(v) = options.operation_timeout {
                t = t.operation_timeout(v);
            }
            let t = t.build();
            d = d.timeout_config(t.clone());
            s = s.timeout_config(t);
        }
        let region = config.region().map(|r| r.as_ref());
        let any = options.endpoint_url.as_deref().or(config.endpoint_url());
        let ddb_url = options.dynamodb_endpoint_url.as_deref().or(any);
        let s3_url = options.s3_endpoint_url.as_deref().or(any);
        AwsBackend {
            dynamodb_endpoint: endpoint_name(ddb_url, "dynamodb", region),
            s3_endpoint: endpoint_name(s3_url, "s3", region),
            dynamodb: ddb::Client::from_conf(d.build()),
            s3: s3::Client::from_conf(s.build()),
            region: config.region().map(|r| r.to_string()),
            encryption: options.encryption,
            expected_bucket_owner: options.expected_bucket_owner,
        }
    }

    /// A backend from clients you configured yourself.
    pub fn from_clients(dynamodb: ddb::Client, s3: s3::Client) -> Self {
        let region = s3.config().region().map(|r| r.to_string());
        AwsBackend {
            dynamodb_endpoint: endpoint_name(
                None,
                "dynamodb",
                dynamodb.config().region().map(|r| r.as_ref()),
            ),
            s3_endpoint: endpoint_name(None, "s3", region.as_deref()),
            dynamodb,
            s3,
            region,
            encryption: None,
            expected_bucket_owner: None,
        }
    }

    /// Encrypts every object written with `encryption`.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Sends `ExpectedBucketOwner` on every S3 call.
    pub fn with_expected_bucket_owner(mut self, account_id: impl Into<String>) -> Self {
        self.expected_bucket_owner = Some(account_id.into());
        self
    }

    /// The DynamoDB client, for calls vhs does not make (e.g. TransactWriteItems).
    pub fn dynamodb(&self) -> &ddb::Client {
        &self.dynamodb
    }

    /// The S3 client.
    pub fn s3(&self) -> &s3::Client {
        &self.s3
    }
}

/// The outcome of a write sent with `If-None-Match: *` (PutObject,
/// CompleteMultipartUpload): a 412 (`PreconditionFailed`, not a modeled error)
/// means the object already existed.
fn put_outcome<T, E>(
    backend: &AwsBackend,
    sent: std::result::Result<T, SdkError<E, s3::config::http::HttpResponse>>,
    operation: &'static str,
    bucket: &str,
) -> Result<PutOutcome>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(PutOutcome::Created),
        Err(e)
            if e.code() == Some("PreconditionFailed")
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
        {
            Ok(PutOutcome::AlreadyExisted)
        }
        Err(e) => Err(backend.s3_error(operation, bucket, e)),
    }
}

/// Maps an SDK error to a vhs error, the endpoint unnamed; the backend's own
/// calls go through [`AwsBackend::ddb_error`] and [`AwsBackend::s3_error`],
/// which name the endpoint, the table and the bucket.
fn sdk_error<E>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, s3::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify(service, operation, None, err)
}

/// The endpoint named in transport errors: the configured URL, else the AWS
/// endpoint of the service in the region.
fn endpoint_name(configured: Option<&str>, service: &str, region: Option<&str>) -> String {
    match (configured, region) {
        (Some(url), _) => url.to_owned(),
        (None, Some(region)) => format!("https://{service}.{region}.amazonaws.com"),
        (None, None) => format!("the {service} endpoint"),
    }
}

impl AwsBackend {
    /// Maps an SDK error of a DynamoDB call on `table`: a
    /// `ResourceNotFoundException` is [`Error::TableNotFound`].
    fn ddb_error<E>(
        &self,
        operation: &'static str,
        table: &str,
        err: SdkError<E, s3::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let missing = err.code() == Some("ResourceNotFoundException");
        let e = classify("dynamodb", operation, Some(&self.dynamodb_endpoint), err);
        if missing {
            return Error::TableNotFound {
                table: table.to_owned(),
            };
        }
        e
    }

    /// Maps an SDK error of an S3 call on `bucket`: a `NoSuchBucket` stays an
    /// [`Error::Backend`] with that code, its message naming the bucket.
    fn s3_error<E>(
        &self,
        operation: &'static str,
        bucket: &str,
        err: SdkError<E, s3::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match classify("s3", operation, Some(&self.s3_endpoint), err) {
            Error::Backend {
                service,
                operation,
                code: Some(code),
                retryable,
                source,
                ..
            } if code == "NoSuchBucket" => Error::Backend {
                service,
                operation,
                code: Some(code),
                retryable,
                message: format!("bucket {bucket} does not exist"),
                source,
            },
            e => e,
        }
    }

    /// The tables of a multi-table call DynamoDB said one of does not exist:
    /// the first that DescribeTable does not find (all of them when none).
    async fn missing_table(&self, tables: &[&str]) -> String {
        for table in tables {
            if let Ok(None) = self.describe_table(table).await {
                return (*table).to_owned();
            }
        }
        tables.join(" or ")
    }
}

/// The longest text taken from a lower layer into a message.
const DETAIL_MAX: usize = 120;

/// Service codes that say the credentials were refused: (code, what to say).
const CREDENTIALS_CODES: &[(&str, &str)] = &[
    ("ExpiredTokenException", "AWS credentials expired"),
    ("ExpiredToken", "AWS credentials expired"),
    ("TokenRefreshRequired", "AWS credentials expired"),
    ("UnrecognizedClientException", "AWS credentials invalid"),
    ("InvalidClientTokenId", "AWS credentials invalid"),
    ("InvalidAccessKeyId", "AWS credentials invalid"),
    ("InvalidToken", "AWS credentials invalid"),
    ("SignatureDoesNotMatch", "AWS credentials invalid"),
    ("InvalidSignatureException", "AWS credentials invalid"),
    ("MissingAuthenticationToken", "AWS credentials missing"),
    (
        "MissingAuthenticationTokenException",
        "AWS credentials missing",
    ),
];

/// Maps an SDK error to [`Error::Backend`] (a service's answer, a transport
/// failure: one line, retryable as its kind says) or [`Error::Config`]
/// (credentials, region, endpoint configuration: never retryable), found by
/// walking its `source()` chain. `endpoint` is named in transport errors.
fn classify<E>(
    service: &'static str,
    operation: &'static str,
    endpoint: Option<&str>,
    err: SdkError<E, s3::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    if let SdkError::ServiceError(_) = &err {
        // The service's own words; the SDK's rendering adds a debug dump of
        // the error metadata and the raw response.
        let message = err
            .message()
            .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
            .or_else(|| status.map(|s| format!("HTTP {s}")))
            .unwrap_or_else(|| "no message".to_owned());
        if let Some((c, what)) = code
            .as_deref()
            .and_then(|c| CREDENTIALS_CODES.iter().find(|(k, _)| *k == c))
        {
            return Error::Config {
                service,
                operation,
                message: format!("{what}: {c}: {message}"),
                source: Some(Box::new(err)),
            };
        }
        let retryable = status.is_some_and(|s| s >= 500 || s == 429)
            || code.as_deref().is_some_and(|c| {
                matches!(
                    c,
                    "ThrottlingException"
                        | "Throttling"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "InternalError"
                        | "ServiceUnavailable"
                        | "SlowDown"
                        | "RequestTimeout"
                        | "TransactionConflictException"
                        // A resend whose first send (same client request
                        // token) is still being applied.
                        | "TransactionInProgressException"
                        | "ConditionalRequestConflict"
                )
            });
        return Error::Backend {
            service,
            operation,
            code,
            retryable,
            message,
            source: Some(Box::new(err)),
        };
    }
    match failure(&err, endpoint) {
        Failure::Config(message) => Error::Config {
            service,
            operation,
            message,
            source: Some(Box::new(err)),
        },
        Failure::Other { message, retryable } => Error::Backend {
            service,
            operation,
            code,
            retryable,
            message,
            source: Some(Box::new(err)),
        },
    }
}

/// What a failure other than a service's answer was.
#[derive(Debug, PartialEq)]
enum Failure {
    /// Credentials, region or endpoint configuration.
    Config(String),
    /// Transport (retryable) or a request that could not be built.
    Other { message: String, retryable: bool },
}

/// Classifies a failure that is not a service's answer from the SDK error's
/// variant and its `source()` chain, in one line.
fn failure<E, R>(err: &SdkError<E, R>, endpoint: Option<&str>) -> Failure
where
    E: std::error::Error + 'static,
    R: fmt::Debug,
{
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(std::error::Error::source(err), |e| e.source()).collect();
    let innermost = chain
        .last()
        .map(|e| detail(&e.to_string()))
        .unwrap_or_else(|| detail(&err.to_string()));
    if let Some(message) = config_failure(&chain, &innermost, endpoint) {
        return Failure::Config(message);
    }
    let at = endpoint.unwrap_or("the endpoint");
    let io = chain
        .iter()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .map(io_phrase);
    let dns = chain.iter().any(|e| e.to_string() == "dns error");
    let connect = dns
        || chain.iter().any(|e| {
            let s = e.to_string();
            s == "tcp connect error" || s == "client error (Connect)"
        });
    let cause = match (dns, io) {
        (true, _) => format!("DNS lookup failed: {innermost}"),
        (false, Some(io)) => io,
        (false, None) => innermost.clone(),
    };
    let (message, retryable) = match err {
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (format!("cannot connect to {at}: timed out"), true)
        }
        SdkError::DispatchFailure(d) if d.is_io() && connect => {
            (format!("cannot connect to {at}: {cause}"), true)
        }
        SdkError::DispatchFailure(d) if d.is_io() => {
            (format!("connection to {at} failed: {cause}"), true)
        }
        SdkError::DispatchFailure(_) => (format!("request not sent: {innermost}"), false),
        SdkError::TimeoutError(_) => (format!("request to {at} timed out: {innermost}"), true),
        SdkError::ResponseError(_) => (format!("bad response from {at}: {cause}"), true),
        SdkError::ConstructionFailure(_) => {
            (format!("cannot build the request: {innermost}"), false)
        }
        _ => (innermost, false),
    };
    Failure::Other { message, retryable }
}

/// A configuration failure in the chain (credentials, region, endpoint), as
/// a short phrase.
fn config_failure(
    chain: &[&(dyn std::error::Error + 'static)],
    innermost: &str,
    endpoint: Option<&str>,
) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    if let Some(c) = chain
        .iter()
        .find_map(|e| e.downcast_ref::<CredentialsError>())
    {
        return Some(match c {
            CredentialsError::CredentialsNotLoaded(_) => {
                match chain.iter().find_map(|e| tried_providers(&e.to_string())) {
                    Some(tried) => format!("no AWS credentials found (tried {tried})"),
                    None => format!("no AWS credentials found ({innermost})"),
                }
            }
            CredentialsError::ProviderTimedOut(t) => format!(
                "loading AWS credentials timed out after {:?}",
                t.timeout_duration()
            ),
            CredentialsError::InvalidConfiguration(_) => {
                format!("invalid AWS credentials configuration: {innermost}")
            }
            _ => format!("cannot load AWS credentials: {innermost}"),
        });
    }
    let texts: Vec<String> = chain.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
    if has("no identity resolver") {
        return Some("no AWS credentials provider configured".to_owned());
    }
    if has("missing signing region") || has("region must be set") {
        return Some("no AWS region configured (set AWS_REGION or a profile's region)".to_owned());
    }
    if has("Invalid region") || has("invalid region") {
        return Some(format!("invalid AWS region: {innermost}"));
    }
    if has("failed to apply endpoint") || has("endpoint is not a valid URI") {
        return Some(match endpoint {
            Some(url) => format!("invalid endpoint URL {url:?}: {innermost}"),
            None => format!("invalid endpoint URL: {innermost}"),
        });
    }
    None
}

/// The providers a credentials chain tried, from its report (`no credentials
/// found in chain. Attempted:` then one `  Name: why` line each).
fn tried_providers(report: &str) -> Option<String> {
    let mut lines = report.lines();
    if !lines.next()?.starts_with("no credentials found in chain") {
        return None;
    }
    let names: Vec<&str> = lines
        .filter_map(|l| l.trim().split(':').next())
        .filter(|n| !n.is_empty())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// An I/O error as a short phrase (`connection refused`), without the OS code.
fn io_phrase(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset".to_owned(),
        K::ConnectionAborted => "connection aborted".to_owned(),
        K::TimedOut => "timed out".to_owned(),
        K::BrokenPipe => "connection closed".to_owned(),
        K::UnexpectedEof => "connection closed before the response ended".to_owned(),
        _ => detail(&e.to_string()),
    }
}

/// Text from a lower layer made fit for a one-line message: its first line,
/// without an OS error code or anything from the first `{` or backtick on (a
/// debug dump), at most [`DETAIL_MAX`] characters.
fn detail(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let line = line.split(['{', '`']).next().unwrap_or_default();
    let line = match line.find(" (os error") {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.trim().trim_end_matches([':', ' ']);
    if line.chars().count() <= DETAIL_MAX {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(DETAIL_MAX).collect();
        format!("{cut}...")
    }
}

/// A stream of new and old images.
fn stream_specification() -> Result<ddb::types::StreamSpecification> {
    built(
        "dynamodb",
        "CreateTable",
        ddb::types::StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(ddb::types::StreamViewType::NewAndOldImages)
            .build(),
    )
}

fn scalar(kind: KeyKind) -> ScalarAttributeType {
    match kind {
        KeyKind::String => ScalarAttributeType::S,
        KeyKind::Number => ScalarAttributeType::N,
    }
}

/// The attribute definitions of the table's keys and of `indexes`' keys.
fn attribute_definitions(
    spec: &TableSpec,
    indexes: &[IndexSpec],
) -> Result<Vec<AttributeDefinition>> {
    let mut keys: Vec<&(String, KeyKind)> = vec![&spec.hash_key];
    keys.extend(spec.range_key.as_ref());
    for index in indexes {
        keys.push(&index.hash_key);
        keys.extend(index.range_key.as_ref());
    }
    let mut defs: Vec<AttributeDefinition> = Vec::new();
    for (name, kind) in keys {
        if defs.iter().any(|d| d.attribute_name() == name) {
            continue;
        }
        defs.push(built(
            "dynamodb",
            "CreateTable",
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(scalar(*kind))
                .build(),
        )?);
    }
    Ok(defs)
}

fn key_schema(
    operation: &'static str,
    hash: &(String, KeyKind),
    range: Option<&(String, KeyKind)>,
) -> Result<Vec<KeySchemaElement>> {
    std::iter::once((hash, DdbKeyType::Hash))
        .chain(range.map(|r| (r, DdbKeyType::Range)))
        .map(|((name, _), key_type)| {
            built(
                "dynamodb",
                operation,
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build(),
            )
        })
        .collect()
}

fn projection(p: &Projection) -> ddb::types::Projection {
    let b = ddb::types::Projection::builder();
    match p {
        Projection::All => b.projection_type(ProjectionType::All),
        Projection::KeysOnly => b.projection_type(ProjectionType::KeysOnly),
        Projection::Include(attrs) => b
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(attrs.clone())),
    }
    .build()
}

/// A `ProjectionExpression` of `names`.
fn projection_expression(names: Option<&Vec<String>>, p: &mut Placeholders) -> Option<String> {
    names.map(|names| {
        names
            .iter()
            .map(|n| p.name(n))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn built<T, E: std::error::Error + Send + Sync + 'static>(
    service: &'static str,
    operation: &'static str,
    r: std::result::Result<T, E>,
) -> Result<T> {
    r.map_err(|e| Error::Backend {
        service,
        operation,
        code: None,
        retryable: false,
        message: e.to_string(),
        source: Some(Box::new(e)),
    })
}

/// Renders a condition into (expression, names, values) placeholders.
fn condition_parts(
    condition: Option<&Condition>,
    placeholders: &mut Placeholders,
) -> Option<String> {
    condition.map(|c| c.render(placeholders))
}

fn non_empty<K, V>(m: HashMap<K, V>) -> Option<HashMap<K, V>> {
    (!m.is_empty()).then_some(m)
}

impl AwsBackend {
    /// Waits until the table and its indexes are ACTIVE (immediate on
    /// emulators; seconds to minutes on AWS); returns its description.
    async fn wait_active(&self, table: &str) -> Result<TableDescription> {
        for _ in 0..3000 {
            let out = self
                .dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| self.ddb_error("DescribeTable", table, e))?;
            let Some(described) = out.table else {
                break;
            };
            let table_active = matches!(described.table_status(), Some(TableStatus::Active) | None);
            let indexes_active = described
                .global_secondary_indexes()
                .iter()
                .all(|i| matches!(i.index_status(), Some(IndexStatus::Active) | None));
            if table_active && indexes_active {
                return Ok(described);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::backend(
            "dynamodb",
            "CreateTable",
            true,
            format!("table {table} and its indexes did not become ACTIVE within 10 minutes"),
        ))
    }

    /// The stream and point-in-time recovery a [`TableSpec`] asks for, on a
    /// table described as `described`.
    async fn table_options(&self, spec: &TableSpec, described: &TableDescription) -> Result<()> {
        let has_stream = described
            .stream_specification()
            .is_some_and(|s| s.stream_enabled());
        if spec.streams && !has_stream {
            self.dynamodb
                .update_table()
                .table_name(&spec.name)
                .stream_specification(stream_specification()?)
                .send()
                .await
                .map_err(|e| self.ddb_error("UpdateTable", &spec.name, e))?;
            self.wait_active(&spec.name).await?;
        }
        if spec.point_in_time_recovery {
            self.dynamodb
                .update_continuous_backups()
                .table_name(&spec.name)
                .point_in_time_recovery_specification(built(
                    "dynamodb",
                    "UpdateContinuousBackups",
                    PointInTimeRecoverySpecification::builder()
                        .point_in_time_recovery_enabled(true)
                        .build(),
                )?)
                .send()
                .await
                .map_err(|e| self.ddb_error("UpdateContinuousBackups", &spec.name, e))?;
        }
        Ok(())
    }

    /// The server-side encryption headers of object writes.
    fn sse(&self) -> (Option<s3::types::ServerSideEncryption>, Option<String>) {
        match &self.encryption {
            Some(Encryption::S3) => (Some(s3::types::ServerSideEncryption::Aes256), None),
            Some(Encryption::Kms { key_id }) => (
                Some(s3::types::ServerSideEncryption::AwsKms),
                key_id.clone(),
            ),
            None => (None, None),
        }
    }
}

#[async_trait]
impl Backend for AwsBackend {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        const OP: &str = "CreateTable";
        let mut req = self
            .dynamodb
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attribute_definitions(spec, &spec.indexes)?))
            .set_key_schema(Some(key_schema(
                OP,
                &spec.hash_key,
                spec.range_key.as_ref(),
            )?));
        if spec.streams {
            req = req.stream_specification(stream_specification()?);
        }
        for index in &spec.indexes {
            let keys = key_schema(OP, &index.hash_key, index.range_key.as_ref())?;
            let projection = projection(&index.projection);
            req = match index.kind {
                IndexKind::Global => req.global_secondary_indexes(built(
                    "dynamodb",
                    OP,
                    GlobalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .set_key_schema(Some(keys))
                        .projection(projection)
                        .build(),
                )?),
                IndexKind::Local => req.local_secondary_indexes(built(
                    "dynamodb",
                    OP,
                    LocalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .set_key_schema(Some(keys))
                        .projection(projection)
                        .build(),
                )?),
            };
        }
        let existed = match req.send().await {
            Ok(_) => false,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                true
            }
            Err(e) => return Err(self.ddb_error(OP, &spec.name, e)),
        };
        let mut described = self.wait_active(&spec.name).await?;
        if !existed {
            return self.table_options(spec, &described).await;
        }
        // An existing table: add the global indexes it lacks, one per UpdateTable.
        for index in &spec.indexes {
            let has = |names: Vec<&str>| names.contains(&index.name.as_str());
            let globals = described
                .global_secondary_indexes()
                .iter()
                .filter_map(|i| i.index_name())
                .collect();
            let locals = described
                .local_secondary_indexes()
                .iter()
                .filter_map(|i| i.index_name())
                .collect();
            if has(globals) || has(locals) {
                continue;
            }
            if index.kind == IndexKind::Local {
                return Err(Error::backend(
                    "dynamodb",
                    "UpdateTable",
                    false,
                    format!(
                        "table {} exists without local index {}: local indexes are created with the table only",
                        spec.name, index.name
                    ),
                ));
            }
            let create = built(
                "dynamodb",
                "UpdateTable",
                CreateGlobalSecondaryIndexAction::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(
                        "UpdateTable",
                        &index.hash_key,
                        index.range_key.as_ref(),
                    )?))
                    .projection(projection(&index.projection))
                    .build(),
            )?;
            self.dynamodb
                .update_table()
                .table_name(&spec.name)
                .set_attribute_definitions(Some(attribute_definitions(
                    spec,
                    std::slice::from_ref(index),
                )?))
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(create).build(),
                )
                .send()
                .await
                .map_err(|e| self.ddb_error("UpdateTable", &spec.name, e))?;
            described = self.wait_active(&spec.name).await?;
        }
        self.table_options(spec, &described).await
    }

    async fn delete_table(&self, table: &str) -> Result<bool> {
        const OP: &str = "DeleteTable";
        match self.dynamodb.delete_table().table_name(table).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(sdk_error("dynamodb", OP, e)),
        }
        // DynamoDB deletes in the background (status DELETING): wait until the
        // table is gone, so that it can be created again at once.
        for _ in 0..3000 {
            if self.describe_table(table).await?.is_none() {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::backend(
            "dynamodb",
            OP,
            true,
            format!("table {table} was still being deleted after 10 minutes"),
        ))
    }

    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        const OP: &str = "DescribeTable";
        let out = match self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.ddb_error(OP, table, e)),
        };
        let Some(d) = out.table else { return Ok(None) };
        let kind_of = |name: &str| -> Result<KeyKind> {
            match d
                .attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == name)
                .map(|a| a.attribute_type())
            {
                Some(ScalarAttributeType::S) => Ok(KeyKind::String),
                Some(ScalarAttributeType::N) => Ok(KeyKind::Number),
                other => Err(Error::backend(
                    "dynamodb",
                    OP,
                    false,
                    format!("key attribute {name} of table {table} has type {other:?}, which vhs does not support (S or N)"),
                )),
            }
        };
        let keys = |schema: &[KeySchemaElement]| -> Result<((String, KeyKind), Option<(String, KeyKind)>)> {
            let mut hash = None;
            let mut range = None;
            for k in schema {
                let key = (k.attribute_name().to_owned(), kind_of(k.attribute_name())?);
                match k.key_type() {
                    DdbKeyType::Hash => hash = Some(key),
                    _ => range = Some(key),
                }
            }
            let hash = hash.ok_or_else(|| {
                Error::backend("dynamodb", OP, false, format!("table {table} has no hash key"))
            })?;
            Ok((hash, range))
        };
        let projection_of =
            |p: Option<&ddb::types::Projection>| match p.and_then(|p| p.projection_type()) {
                Some(ProjectionType::KeysOnly) => Projection::KeysOnly,
                Some(ProjectionType::Include) => Projection::Include(
                    p.map(|p| p.non_key_attributes().to_vec())
                        .unwrap_or_default(),
                ),
                _ => Projection::All,
            };
        let (hash_key, range_key) = keys(d.key_schema())?;
        let mut indexes = Vec::new();
        for g in d.global_secondary_indexes() {
            let (hash_key, range_key) = keys(g.key_schema())?;
            indexes.push(IndexSpec {
                name: g.index_name().unwrap_or_default().to_owned(),
                kind: IndexKind::Global,
                hash_key,
                range_key,
                projection: projection_of(g.projection()),
            });
        }
        for l in d.local_secondary_indexes() {
            let (hash_key, range_key) = keys(l.key_schema())?;
            indexes.push(IndexSpec {
                name: l.index_name().unwrap_or_default().to_owned(),
                kind: IndexKind::Local,
                hash_key,
                range_key,
                projection: projection_of(l.projection()),
            });
        }
        Ok(Some(TableSpec {
            name: table.to_owned(),
            hash_key,
            range_key,
            indexes,
            streams: d.stream_specification().is_some_and(|s| s.stream_enabled()),
            point_in_time_recovery: false,
        }))
    }

    async fn get_item(&self, table: &str, key: &Item, consistent: bool) -> Result<Option<Item>> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| self.ddb_error("GetItem", table, e))?;
        Ok(out.item)
    }

    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        let mut p = Placeholders::default();
        let expr = condition_parts(condition, &mut p);
        let result = self
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(expr)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Conditional::Applied(
                out.attributes.filter(|a| !a.is_empty()),
            )),
            Err(e) => match e.as_service_error() {
                Some(ddb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                    c,
                )) => Ok(Conditional::Failed(c.item.clone())),
                _ => Err(self.ddb_error("PutItem", table, e)),
            },
        }
    }

    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        let mut p = Placeholders::default();
        let update_expr = (!update.is_empty()).then(|| update.render(&mut p));
        let expr = condition_parts(condition, &mut p);
        let result = self
            .dynamodb
            .update_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .set_update_expression(update_expr)
            .set_condition_expression(expr)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Conditional::Applied(out.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(
                    ddb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                        c,
                    ),
                ) => Ok(Conditional::Failed(c.item.clone())),
                _ => Err(self.ddb_error("UpdateItem", table, e)),
            },
        }
    }

    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        let mut p = Placeholders::default();
        let expr = condition_parts(condition, &mut p);
        let result = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .set_condition_expression(expr)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Conditional::Applied(
                out.attributes.filter(|a| !a.is_empty()),
            )),
            Err(e) => match e.as_service_error() {
                Some(
                    ddb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(
                        c,
                    ),
                ) => Ok(Conditional::Failed(c.item.clone())),
                _ => Err(self.ddb_error("DeleteItem", table, e)),
            },
        }
    }

    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        const OP: &str = "TransactWriteItems";
        // The part every kind of action has: its condition, the expression
        // placeholders, the stored item on a failed condition; then `build()`.
        macro_rules! conditional {
            ($builder:expr, $expr:expr, $p:expr) => {
                built(
                    "dynamodb",
                    OP,
                    $builder
                        .set_condition_expression($expr)
                        .set_expression_attribute_names(non_empty($p.names))
                        .set_expression_attribute_values(non_empty($p.values))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build(),
                )?
            };
        }
        let mut items = Vec::with_capacity(actions.len());
        for action in actions {
            let mut p = Placeholders::default();
            let item = match action {
                TransactWrite::Put {
                    table,
                    item,
                    condition,
                } => {
                    let expr = condition_parts(condition.as_ref(), &mut p);
                    let put = ddb::types::Put::builder()
                        .table_name(table)
                        .set_item(Some(item.clone()));
                    TransactWriteItem::builder()
                        .put(conditional!(put, expr, p))
                        .build()
                }
                TransactWrite::Update {
                    table,
                    key,
                    update,
                    condition,
                } => {
                    let update_expr = update.render(&mut p);
                    let expr = condition_parts(condition.as_ref(), &mut p);
                    let update = ddb::types::Update::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()))
                        .update_expression(update_expr);
                    TransactWriteItem::builder()
                        .update(conditional!(update, expr, p))
                        .build()
                }
                TransactWrite::Delete {
                    table,
                    key,
                    condition,
                } => {
                    let expr = condition_parts(condition.as_ref(), &mut p);
                    let delete = ddb::types::Delete::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()));
                    TransactWriteItem::builder()
                        .delete(conditional!(delete, expr, p))
                        .build()
                }
                TransactWrite::Check {
                    table,
                    key,
                    condition,
                } => {
                    let expr = Some(condition.render(&mut p));
                    let check = ddb::types::ConditionCheck::builder()
                        .table_name(table)
                        .set_key(Some(key.clone()));
                    TransactWriteItem::builder()
                        .condition_check(conditional!(check, expr, p))
                        .build()
                }
            };
            items.push(item);
        }
        let result = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Transacted::Committed),
            Err(e) => match e.as_service_error() {
                Some(
                    ddb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c),
                ) if !c.cancellation_reasons().is_empty() => Ok(Transacted::Canceled(
                    c.cancellation_reasons()
                        .iter()
                        .map(|r| CancelReason {
                            code: r.code().filter(|c| *c != "None").map(str::to_owned),
                            message: r.message().map(str::to_owned),
                            item: r.item().filter(|i| !i.is_empty()).cloned(),
                        })
                        .collect(),
                )),
                _ => match self.ddb_error(OP, "", e) {
                    Error::TableNotFound { .. } => {
                        let mut tables: Vec<&str> = actions.iter().map(|a| a.table()).collect();
                        tables.sort_unstable();
                        tables.dedup();
                        Err(Error::TableNotFound {
                            table: self.missing_table(&tables).await,
                        })
                    }
                    e => Err(e),
                },
            },
        }
    }

    async fn query(&self, request: &Query) -> Result<QueryPage> {
        let mut p = Placeholders::default();
        let name = p.name(&request.hash_key.0);
        let value = p.value(request.hash_key.1.clone());
        let mut key_condition = format!("{name} = {value}");
        if let Some(range) = &request.range {
            key_condition = format!("{key_condition} AND {}", range.render(&mut p));
        }
        let filter = condition_parts(request.filter.as_ref(), &mut p);
        let projection = projection_expression(request.projection.as_ref(), &mut p);
        let out = self
            .dynamodb
            .query()
            .table_name(&request.table)
            .set_index_name(request.index.clone())
            .key_condition_expression(key_condition)
            .set_filter_expression(filter)
            .set_projection_expression(projection)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .scan_index_forward(!request.descending)
            .set_limit(request.limit.map(|l| l.min(i32::MAX as usize) as i32))
            .set_exclusive_start_key(request.start.clone())
            .consistent_read(request.consistent)
            .send()
            .await
            .map_err(|e| self.ddb_error("Query", &request.table, e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        let (segment, total) = match request.segment {
            Some((s, t)) => (Some(s as i32), Some(t as i32)),
            None => (None, None),
        };
        let mut p = Placeholders::default();
        let filter = condition_parts(request.filter.as_ref(), &mut p);
        let projection = projection_expression(request.projection.as_ref(), &mut p);
        let out = self
            .dynamodb
            .scan()
            .table_name(&request.table)
            .set_segment(segment)
            .set_total_segments(total)
            .set_filter_expression(filter)
            .set_projection_expression(projection)
            .set_expression_attribute_names(non_empty(p.names))
            .set_expression_attribute_values(non_empty(p.values))
            .set_limit(request.limit.map(|l| l.min(i32::MAX as usize) as i32))
            .set_exclusive_start_key(request.start.clone())
            .consistent_read(request.consistent)
            .send()
            .await
            .map_err(|e| self.ddb_error("Scan", &request.table, e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: out.content_length().unwrap_or_default().max(0) as u64,
                last_modified: out
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
            })),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(self.s3_error("HeadObject", bucket, e)),
        }
    }

    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        let empty = |info: Option<ObjectInfo>| {
            info.map(|i| ObjectRange {
                body: bytes::Bytes::new(),
                total: i.size,
            })
        };
        if range.start >= range.end {
            return Ok(empty(self.head_object(bucket, key).await?));
        }
        let out = match self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            // 416: the range starts at or after the end.
            Err(e)
                if e.code() == Some("InvalidRange")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 416) =>
            {
                return Ok(empty(self.head_object(bucket, key).await?));
            }
            Err(e) => return Err(self.s3_error("GetObject", bucket, e)),
        };
        let ranged = out.content_range().and_then(|r| {
            r.rsplit('/')
                .next()
                .and_then(|total| total.trim().parse::<u64>().ok())
        });
        // A ranged answer starts at the range's start; a whole object at 0.
        let from = if ranged.is_some() { range.start } else { 0 };
        let Some(body) = self.read_body(bucket, key, out, from).await? else {
            return Ok(None);
        };
        Ok(Some(match ranged {
            Some(total) => ObjectRange { body, total },
            // The server sent the whole object: cut the range out of it.
            None => ObjectRange::cut(&body, range),
        }))
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        let config = s3::presigning::PresigningConfig::expires_in(expires_in).map_err(|e| {
            Error::invalid(format!(
                "a presigned URL cannot expire in {expires_in:?}: {e}"
            ))
        })?;
        let request = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .presigned(config)
            .await
            .map_err(|e| self.s3_error("GetObject (presign)", bucket, e))?;
        Ok(request.uri().to_owned())
    }

    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        consistent: bool,
    ) -> Result<BatchPage> {
        let request = built(
            "dynamodb",
            "BatchGetItem",
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys.to_vec()))
                .consistent_read(consistent)
                .build(),
        )?;
        let out = self
            .dynamodb
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| self.ddb_error("BatchGetItem", table, e))?;
        Ok(BatchPage {
            items: out
                .responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default(),
            unprocessed: out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default(),
        })
    }

    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        let mut req = self
            .s3
            .create_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .content_type(&request.content_type)
            .set_content_encoding(request.content_encoding.clone())
            .set_metadata(non_empty(request.metadata.clone()))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        let (sse, kms_key) = self.sse();
        req = req
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key);
        let out = req
            .send()
            .await
            .map_err(|e| self.s3_error("CreateMultipartUpload", &request.bucket, e))?;
        out.upload_id.ok_or_else(|| {
            Error::backend(
                "s3",
                "CreateMultipartUpload",
                true,
                "no upload id in the answer",
            )
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
        content_md5: &str,
    ) -> Result<String> {
        let out = self
            .s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .content_md5(content_md5)
            .content_length(body.len() as i64)
            .body(s3::primitives::ByteStream::from(body))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
            .map_err(|e| self.s3_error("UploadPart", bucket, e))?;
        out.e_tag
            .ok_or_else(|| Error::backend("s3", "UploadPart", true, "no ETag in the answer"))
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        let completed = s3::types::CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        s3::types::CompletedPart::builder()
                            .part_number(p.number as i32)
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let mut req = self
            .s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        if if_none_match {
            req = req.if_none_match("*");
        }
        put_outcome(self, req.send().await, "CompleteMultipartUpload", bucket)
    }

    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        match self
            .s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|e| e.is_no_such_upload())
                    || e.code() == Some("NoSuchUpload") =>
            {
                Ok(())
            }
            Err(e) => Err(self.s3_error("AbortMultipartUpload", bucket, e)),
        }
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .s3
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .set_expected_bucket_owner(self.expected_bucket_owner.clone())
                .send()
                .await
                .map_err(|e| self.s3_error("ListMultipartUploads", bucket, e))?;
            for u in out.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    uploads.push(MultipartInfo {
                        key: key.to_owned(),
                        upload_id: id.to_owned(),
                        initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                    });
                }
            }
            if out.is_truncated != Some(true) {
                break;
            }
            key_marker = out.next_key_marker.clone();
            id_marker = out.next_upload_id_marker.clone();
            if key_marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let mut req = self.s3.create_bucket().bucket(bucket);
        if let Some(region) = self.region.as_deref().filter(|r| *r != "us-east-1") {
            req = req.create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.s3_error("CreateBucket", bucket, e)),
        }
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        match self
            .s3
            .head_bucket()
            .bucket(bucket)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(self.s3_error("HeadBucket", bucket, e)),
        }
    }

    async fn configure_bucket(&self, spec: &BucketSpec) -> Result<()> {
        use s3::types::{
            AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
            LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
            PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
            ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
        };
        let owner = self.expected_bucket_owner.clone();
        if spec.block_public_access {
            self.s3
                .put_public_access_block()
                .bucket(&spec.name)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .set_expected_bucket_owner(owner.clone())
                .send()
                .await
                .map_err(|e| self.s3_error("PutPublicAccessBlock", &spec.name, e))?;
        }
        if spec.default_encryption {
            const OP: &str = "PutBucketEncryption";
            let by_default = built(
                "s3",
                OP,
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256)
                    .build(),
            )?;
            let config = built(
                "s3",
                OP,
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(by_default)
                            .bucket_key_enabled(true)
                            .build(),
                    )
                    .build(),
            )?;
            self.s3
                .put_bucket_encryption()
                .bucket(&spec.name)
                .server_side_encryption_configuration(config)
                .set_expected_bucket_owner(owner.clone())
                .send()
                .await
                .map_err(|e| self.s3_error(OP, &spec.name, e))?;
        }
        if spec.abort_incomplete_multipart_days.is_none()
            && spec.noncurrent_version_expiry_days.is_none()
        {
            return Ok(());
        }
        const OP: &str = "PutBucketLifecycleConfiguration";
        // Keep the rules someone else put on the bucket: replace only vhs's own.
        let mut rules: Vec<LifecycleRule> = match self
            .s3
            .get_bucket_lifecycle_configuration()
            .bucket(&spec.name)
            .set_expected_bucket_owner(owner.clone())
            .send()
            .await
        {
            Ok(out) => out
                .rules
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.id() != Some(BucketSpec::LIFECYCLE_RULE_ID))
                .collect(),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(self.s3_error("GetBucketLifecycleConfiguration", &spec.name, e)),
        };
        let mut rule = LifecycleRule::builder()
            .id(BucketSpec::LIFECYCLE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix(if spec.prefix.is_empty() {
                        String::new()
                    } else {
                        format!("{}/", spec.prefix.trim_end_matches('/'))
                    })
                    .build(),
            );
        if let Some(days) = spec.abort_incomplete_multipart_days {
            rule = rule.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days as i32)
                    .build(),
            );
        }
        if let Some(days) = spec.noncurrent_version_expiry_days {
            rule = rule.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days as i32)
                    .build(),
            );
        }
        rules.push(built("s3", OP, rule.build())?);
        self.s3
            .put_bucket_lifecycle_configuration()
            .bucket(&spec.name)
            .lifecycle_configuration(built(
                "s3",
                OP,
                BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build(),
            )?)
            .set_expected_bucket_owner(owner)
            .send()
            .await
            .map_err(|e| self.s3_error(OP, &spec.name, e))?;
        Ok(())
    }

    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        if request.body.is_empty() {
            // No byte to hold back: the request waits whole.
            request.complete_after.wait().await;
        }
        let mut req = self
            .s3
            .put_object()
            .bucket(&request.bucket)
            .key(request.key)
            .content_md5(request.content_md5)
            .content_type(request.content_type)
            .set_content_encoding(request.content_encoding)
            .set_metadata(non_empty(request.metadata))
            .content_length(request.body.len() as i64)
            .body(gated_body(request.body, &request.complete_after))
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        let (sse, kms_key) = self.sse();
        req = req
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key);
        if request.if_none_match {
            req = req.if_none_match("*");
        }
        put_outcome(self, req.send().await, "PutObject", &request.bucket)
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        let out = match self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.s3_error("GetObject", bucket, e)),
        };
        let metadata = out.metadata.clone().unwrap_or_default();
        let content_type = out.content_type.clone();
        let content_encoding = out.content_encoding.clone();
        let Some(body) = self.read_body(bucket, key, out, 0).await? else {
            return Ok(None);
        };
        Ok(Some(StoredObject {
            body,
            metadata,
            content_type,
            content_encoding,
        }))
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let objects = keys
            .iter()
            .map(|k| {
                built(
                    "s3",
                    "DeleteObjects",
                    ObjectIdentifier::builder().key(k).build(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let delete = built(
            "s3",
            "DeleteObjects",
            Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build(),
        )?;
        let request = self
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
        let sent = match attempts {
            Attempts::Retried => request.send().await,
            Attempts::Once => {
                request
                    .customize()
                    .config_override(s3::config::Builder::default().retry_config(
                        aws_config::retry::RetryConfig::standard().with_max_attempts(1),
                    ))
                    .send()
                    .await
            }
        };
        let out = sent.map_err(|e| self.s3_error("DeleteObjects", bucket, e))?;
        Ok(out
            .errors()
            .iter()
            .map(|e| {
                (
                    e.key().unwrap_or_default().to_owned(),
                    format!(
                        "{}: {}",
                        e.code().unwrap_or("Error"),
                        e.message().unwrap_or_default()
                    ),
                )
            })
            .collect())
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone())
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| self.s3_error("ListObjectsV2", bucket, e))?;
        Ok(ObjectPage {
            objects: out
                .contents()
                .iter()
                .map(|o| ObjectInfo {
                    key: o.key().unwrap_or_default().to_owned(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    last_modified: o
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                })
                .collect(),
            next: out
                .next_continuation_token
                .filter(|_| out.is_truncated == Some(true)),
        })
    }
}

/// How many times in a row a GetObject body may be cut without a byte of
/// progress before the read gives up (a cut that brought bytes resets the count).
const BODY_CUTS_WITHOUT_PROGRESS: u32 = 5;

impl AwsBackend {
    /// Reads the body of a GetObject answer whose first byte is byte `from` of
    /// the object, to its end. A transfer cut midway (a reset connection, a
    /// truncated body) resumes with a ranged GET from the byte reached,
    /// conditional on the ETag first seen: an object's key names its content,
    /// so the rest is the same bytes. `None`: the object was deleted meanwhile.
    /// Gives up, retryable, after [`BODY_CUTS_WITHOUT_PROGRESS`] cuts in a row
    /// that brought nothing.
    async fn read_body(
        &self,
        bucket: &str,
        key: &str,
        out: s3::operation::get_object::GetObjectOutput,
        from: u64,
    ) -> Result<Option<bytes::Bytes>> {
        let expected = out.content_length().and_then(|n| u64::try_from(n).ok());
        let etag = out.e_tag().map(str::to_owned);
        let mut body = out.body;
        // The whole body is kept: allocated once at the length the server
        // gave (up to 1 GiB), not grown by doubling.
        let mut buf =
            bytes::BytesMut::with_capacity(expected.map_or(0, |n| n.min(1 << 30) as usize));
        let mut cuts = 0u32;
        loop {
            let before = buf.len();
            let cut = loop {
                match body.try_next().await {
                    Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                    Ok(None) => match expected {
                        Some(n) if (buf.len() as u64) < n => {
                            break format!("the body ended after {} of {n} bytes", buf.len())
                        }
                        _ => return Ok(Some(buf.freeze())),
                    },
                    Err(e) => {
                        break format!("reading the body failed: {}", DisplayErrorContext(&e))
                    }
                }
            };
            // Without a length the server gave, a cut body can't be told from
            // a whole one: only a stream error gets here, and is retried from
            // the byte reached like any other.
            if buf.len() > before {
                cuts = 0;
            }
            cuts += 1;
            let reached = from + buf.len() as u64;
            if cuts > BODY_CUTS_WITHOUT_PROGRESS {
                return Err(Error::backend(
                    "s3",
                    "GetObject",
                    true,
                    format!("s3://{bucket}/{key}: {cut}, {cuts} times at byte {reached}"),
                ));
            }
            tracing::debug!(bucket, key, reached, cuts, %cut, "GetObject body cut; resuming");
            tokio::time::sleep(Duration::from_millis(20 << cuts.min(6))).await;
            let last = expected.map(|n| from + n - 1);
            let range = match last {
                Some(last) => format!("bytes={reached}-{last}"),
                None => format!("bytes={reached}-"),
            };
            let resumed = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(range)
                .set_if_match(etag.clone())
                .set_expected_bucket_owner(self.expected_bucket_owner.clone())
                .send()
                .await;
            match resumed {
                // The rest must start where the body was cut: a server that
                // ignored the range (a whole object) would be appended to the
                // bytes already read.
                Ok(out)
                    if out.content_range().is_some_and(|r| {
                        r.trim_start_matches("bytes ")
                            .split('-')
                            .next()
                            .and_then(|start| start.trim().parse::<u64>().ok())
                            == Some(reached)
                    }) =>
                {
                    body = out.body
                }
                Ok(_) => {
                    return Err(Error::backend(
                        "s3",
                        "GetObject",
                        true,
                        format!(
                            "s3://{bucket}/{key}: resuming at byte {reached}, the server did not answer that range"
                        ),
                    ))
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                    return Ok(None)
                }
                // Deleted and written again (same bytes, another ETag, as
                // a multipart upload of other part sizes gives): the caller
                // reads again from the start.
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                    return Err(Error::backend(
                        "s3",
                        "GetObject",
                        true,
                        format!("s3://{bucket}/{key} was written again while it was read"),
                    ));
                }
                Err(e) => {
                    let e = self.s3_error("GetObject", bucket, e);
                    if !e.is_retryable() || expected.is_none() {
                        return Err(e);
                    }
                    // A failed resume counts as a cut without progress.
                    body = s3::primitives::ByteStream::from_static(b"");
                    // The empty body ends at once and is judged short above.
                }
            }
        }
    }
}

/// The body of a PutObject that sends all but its last byte at once and the last
/// one only after `signal` fired: the server cannot create the object before it
/// has the whole body, so the object comes into existence after the signal while
/// the transfer overlaps whatever the signal waits for. Rebuilt (with the same
/// signal) when the SDK retries.
fn gated_body(body: bytes::Bytes, signal: &Signal) -> s3::primitives::ByteStream {
    let Some(gate) = signal
        .0
        .clone()
        .filter(|_| !signal.is_open() && !body.is_empty())
    else {
        return s3::primitives::ByteStream::from(body);
    };
    s3::primitives::ByteStream::new(s3::primitives::SdkBody::retryable(move || {
        let split = body.len() - 1;
        s3::primitives::SdkBody::from_body_1_x(GatedBody {
            head: Some(body.slice(..split)),
            tail: Some(body.slice(split..)),
            gate: Some(gate.clone()),
        })
    }))
}

/// See [`gated_body`].
struct GatedBody {
    head: Option<bytes::Bytes>,
    tail: Option<bytes::Bytes>,
    gate: Option<futures_util::future::Shared<futures_util::future::BoxFuture<'static, ()>>>,
}

impl http_body::Body for GatedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Self::Data>, Self::Error>>>
    {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(head) = this.head.take().filter(|h| !h.is_empty()) {
            return Poll::Ready(Some(Ok(http_body::Frame::data(head))));
        }
        if let Some(gate) = this.gate.as_mut() {
            if std::pin::Pin::new(gate).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.gate = None;
        }
        Poll::Ready(this.tail.take().map(|t| Ok(http_body::Frame::data(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len =
            self.head.as_ref().map_or(0, |b| b.len()) + self.tail.as_ref().map_or(0, |b| b.len());
        http_body::SizeHint::with_exact(len as u64)
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};

    /// A port nothing listens on: bound, then released.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A credentials provider that never has credentials (as the environment
    /// provider without `AWS_ACCESS_KEY_ID`): no network, no IMDS.
    #[derive(Debug)]
    struct NoCredentials;

    impl ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(CredentialsError::not_loaded("not set")))
        }
    }

    /// An SDK config with no credentials nor region unless given: nothing
    /// is read from the environment.
    fn config(
        url: &str,
        region: Option<aws_config::Region>,
        credentials: Option<s3::config::SharedCredentialsProvider>,
    ) -> aws_config::SdkConfig {
        let mut b = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .endpoint_url(url);
        b.set_region(region);
        b.set_credentials_provider(credentials);
        b.build()
    }

    fn backend(config: aws_config::SdkConfig) -> AwsBackend {
        AwsBackend::with_options(
            &config,
            AwsOptions::default()
                .force_path_style(true)
                .max_attempts(1)
                .timeouts(None, Some(Duration::from_millis(500)), None),
        )
    }

    fn test_credentials() -> Option<s3::config::SharedCredentialsProvider> {
        Some(s3::config::SharedCredentialsProvider::new(
            s3::config::Credentials::for_tests(),
        ))
    }

    fn region() -> Option<aws_config::Region> {
        Some(aws_config::Region::new("us-east-1"))
    }

    fn key() -> Item {
        Item::from([("pk".to_owned(), ddb::types::AttributeValue::S("a".into()))])
    }

    async fn get_item(b: &AwsBackend) -> Error {
        b.get_item("docs", &key(), false).await.unwrap_err()
    }

    async fn put_object(b: &AwsBackend) -> Error {
        b.s3.put_object()
            .bucket("vhs-bucket")
            .key("k")
            .body(bytes::Bytes::from_static(b"x").into())
            .send()
            .await
            .map_err(|e| b.s3_error("PutObject", "vhs-bucket", e))
            .unwrap_err()
    }

    /// One line, no debug syntax, short, the SDK error in `source()`.
    fn assert_one_line(e: &Error) {
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.contains('{') && !text.contains('`'), "{text}");
        assert!(text.len() < 200, "{} chars: {text}", text.len());
        assert!(std::error::Error::source(e).is_some(), "{text}");
    }

    #[tokio::test]
    async fn stopped_endpoint_is_one_retryable_line_naming_it() {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let b = backend(config(&url, region(), test_credentials()));
        let e = get_item(&b).await;
        assert_one_line(&e);
        assert_eq!(
            e.to_string(),
            format!("DynamoDB GetItem: cannot connect to {url}: connection refused")
        );
        assert!(matches!(e, Error::Backend { code: None, .. }) && e.is_retryable());
        let e = put_object(&b).await;
        assert_one_line(&e);
        assert_eq!(
            e.to_string(),
            format!("S3 PutObject: cannot connect to {url}: connection refused")
        );
        assert!(e.is_retryable());
    }

    #[tokio::test]
    async fn unknown_host_is_a_retryable_dns_failure() {
        let url = "http://vhs-no-such-host.invalid:4566";
        let b = backend(config(url, region(), test_credentials()));
        let e = get_item(&b).await;
        assert_one_line(&e);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "DynamoDB GetItem: cannot connect to {url}: DNS lookup failed"
            )),
            "{text}"
        );
        assert!(e.is_retryable());
    }

    #[tokio::test]
    async fn silent_endpoint_is_a_retryable_timeout() {
        // Connections are accepted (the backlog) and never answered.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let b = backend(config(&url, region(), test_credentials()));
        let e = get_item(&b).await;
        assert_one_line(&e);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("DynamoDB GetItem: request to {url} timed out")),
            "{text}"
        );
        assert!(e.is_retryable());
        drop(listener);
    }

    #[tokio::test]
    async fn missing_credentials_is_a_config_error_naming_what_was_tried() {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let chain = aws_config::meta::credentials::CredentialsProviderChain::first_try(
            "Environment",
            NoCredentials,
        )
        .or_else("Profile", NoCredentials);
        let b = backend(config(
            &url,
            region(),
            Some(s3::config::SharedCredentialsProvider::new(chain)),
        ));
        for e in [get_item(&b).await, put_object(&b).await] {
            assert_one_line(&e);
            assert!(
                matches!(e, Error::Config { .. }) && !e.is_retryable(),
                "{e}"
            );
            assert!(
                e.to_string()
                    .ends_with(": no AWS credentials found (tried Environment, Profile)"),
                "{e}"
            );
        }
        // A lone provider: its reason.
        let b = backend(config(
            &url,
            region(),
            Some(s3::config::SharedCredentialsProvider::new(NoCredentials)),
        ));
        let e = get_item(&b).await;
        assert_one_line(&e);
        assert_eq!(
            e.to_string(),
            "DynamoDB GetItem: no AWS credentials found (not set)"
        );
        // No provider at all.
        let b = backend(config(&url, region(), None));
        let e = get_item(&b).await;
        assert_one_line(&e);
        assert_eq!(
            e.to_string(),
            "DynamoDB GetItem: no AWS credentials provider configured"
        );
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn missing_region_is_a_config_error() {
        let url = format!("http://127.0.0.1:{}", closed_port());
        let b = backend(config(&url, None, test_credentials()));
        for (e, service) in [
            (get_item(&b).await, "DynamoDB GetItem"),
            (put_object(&b).await, "S3 PutObject"),
        ] {
            assert_one_line(&e);
            assert!(
                matches!(e, Error::Config { .. }) && !e.is_retryable(),
                "{e}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "{service}: no AWS region configured (set AWS_REGION or a profile's region)"
                )
            );
        }
    }

    #[tokio::test]
    async fn invalid_endpoint_is_a_config_error() {
        let b = backend(config("not a url", region(), test_credentials()));
        let e = get_item(&b).await;
        assert_one_line(&e);
        assert!(
            matches!(e, Error::Config { .. }) && !e.is_retryable(),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "DynamoDB GetItem: invalid endpoint URL \"not a url\": invalid uri character"
        );
    }

    #[test]
    fn refused_credentials_are_config_errors_other_codes_backend() {
        use ddb::operation::get_item::GetItemError;
        let answer = |code: &str, status: u16| {
            let meta = s3::error::ErrorMetadata::builder()
                .code(code)
                .message("The security token included in the request is expired")
                .build();
            let raw = s3::config::http::HttpResponse::new(
                status.try_into().unwrap(),
                s3::primitives::SdkBody::empty(),
            );
            SdkError::service_error(GetItemError::generic(meta), raw)
        };
        let e = classify(
            "dynamodb",
            "GetItem",
            None,
            answer("ExpiredTokenException", 400),
        );
        assert_eq!(
            e.to_string(),
            "DynamoDB GetItem: AWS credentials expired: ExpiredTokenException: The security token included in the request is expired"
        );
        assert!(matches!(e, Error::Config { .. }) && !e.is_retryable());
        let e = classify(
            "dynamodb",
            "GetItem",
            None,
            answer("UnrecognizedClientException", 400),
        );
        assert!(
            matches!(e, Error::Config { .. }) && !e.is_retryable(),
            "{e}"
        );
        let e = classify(
            "dynamodb",
            "GetItem",
            None,
            answer("ThrottlingException", 400),
        );
        assert!(
            matches!(e, Error::Backend { .. }) && e.is_retryable(),
            "{e}"
        );
        let e = classify(
            "dynamodb",
            "GetItem",
            None,
            answer("ValidationException", 400),
        );
        assert!(
            matches!(e, Error::Backend { .. }) && !e.is_retryable(),
            "{e}"
        );
        let e = classify("dynamodb", "GetItem", None, answer("Whatever", 503));
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn details_are_one_short_line_without_dumps() {
        assert_eq!(
            detail("Connection refused (os error 111)"),
            "Connection refused"
        );
        assert_eq!(
            detail("failed to apply endpoint `x` to request `Request { body: .. }`"),
            "failed to apply endpoint"
        );
        assert_eq!(detail("first\nsecond"), "first");
        let long = "x".repeat(500);
        assert_eq!(detail(&long).chars().count(), DETAIL_MAX + 3);
        assert_eq!(
            tried_providers(
                "no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: not enabled"
            )
            .as_deref(),
            Some("Environment, Profile")
        );
        assert_eq!(tried_providers("something else"), None);
    }

    #[test]
    fn endpoints_are_named_as_configured_else_by_region() {
        assert_eq!(
            endpoint_name(Some("http://127.0.0.1:1"), "s3", Some("eu-west-1")),
            "http://127.0.0.1:1"
        );
        assert_eq!(
            endpoint_name(None, "dynamodb", Some("eu-west-1")),
            "https://dynamodb.eu-west-1.amazonaws.com"
        );
        assert_eq!(endpoint_name(None, "s3", None), "the s3 endpoint");
    }
}
