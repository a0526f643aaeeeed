//! DynamoDB + S3 through the AWS SDK for Rust.

mod athena;
mod errors;
mod items;
mod objects;
mod options;
mod presign;
mod provision;
mod streams;
mod versions;

use errors::*;
pub use options::{AwsOptions, Encryption};
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
    Attempts, Backend, BatchPage, Call, CompletedPart, Conditional, IndexSpec, ItemCalls,
    MultipartInfo, MultipartStart, ObjectCalls, ObjectInfo, ObjectPage, ObjectRange, Op,
    PresignCalls, ProvisionCalls, PutObject, PutOutcome, Query, QueryPage, Reply, Scan, Signal,
    StoredObject, TableSpec,
};
use crate::backend::{BucketSpec, CancelReason, TransactWrite, Transacted, Transition};
use crate::condition::{Condition, ItemUpdate, Placeholders};
use crate::error::{Error, Result};
use crate::model::{IndexKind, Item, KeyKind, Projection};

/// The DynamoDB + S3 backend.
#[derive(Clone)]
pub struct AwsBackend {
    dynamodb: ddb::Client,
    /// DynamoDB Streams (the change feed), same endpoint and settings as
    /// `dynamodb`.
    streams: aws_sdk_dynamodbstreams::Client,
    s3: s3::Client,
    /// Athena (GC and verify's Athena engine), at the shared endpoint
    /// ([`AwsOptions::endpoint_url`] or the `SdkConfig`'s), if any.
    athena: aws_sdk_athena::Client,
    /// Where DynamoDB requests go, named in transport errors.
    dynamodb_endpoint: String,
    /// Where S3 requests go, named in transport errors.
    s3_endpoint: String,
    region: Option<String>,
    encryption: Option<Encryption>,
    expected_bucket_owner: Option<String>,
    /// [`AwsOptions::composite_checksums_only`].
    composite_checksums_only: bool,
    /// What a browser POST policy is signed with (the S3 client's config does
    /// not hand its credentials out).
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
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
        let mut st = aws_sdk_dynamodbstreams::config::Builder::from(config);
        let mut a = aws_sdk_athena::config::Builder::from(config);
        if let Some(url) = options.endpoint_url.as_ref() {
            a = a.endpoint_url(url);
        }
        let mut s = s3::config::Builder::from(config).force_path_style(options.force_path_style);
        if let Some(url) = options
            .dynamodb_endpoint_url
            .as_ref()
            .or(options.endpoint_url.as_ref())
        {
            d = d.endpoint_url(url);
            st = st.endpoint_url(url);
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
            a = a.retry_config(retry.clone());
            st = st.retry_config(retry.clone());
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
            a = a.timeout_config(t.clone());
            st = st.timeout_config(t.clone());
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
            streams: aws_sdk_dynamodbstreams::Client::from_conf(st.build()),
            athena: aws_sdk_athena::Client::from_conf(a.build()),
            s3: s3::Client::from_conf(s.build()),
            region: config.region().map(|r| r.to_string()),
            encryption: options.encryption,
            expected_bucket_owner: options.expected_bucket_owner,
            composite_checksums_only: options.composite_checksums_only,
            credentials: config.credentials_provider(),
        }
    }

    /// A backend from clients you configured yourself. Its DynamoDB Streams
    /// client (the change feed) has the DynamoDB client's region and HTTP
    /// client but no credentials (an SDK client does not hand its own out):
    /// give one with [`with_streams_client`](Self::with_streams_client) to
    /// read a table's stream.
    pub fn from_clients(dynamodb: ddb::Client, s3: s3::Client) -> Self {
        let region = s3.config().region().map(|r| r.to_string());
        let c = dynamodb.config();
        let mut st = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest());
        if let Some(r) = c.region() {
            st = st.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(h) = c.http_client() {
            st = st.http_client(h);
        }
        if let Some(sleep) = c.sleep_impl() {
            st = st.sleep_impl(sleep);
        }
        let shared = st.build();
        let streams = aws_sdk_dynamodbstreams::Client::new(&shared);
        let athena = aws_sdk_athena::Client::new(&shared);
        AwsBackend {
            streams,
            athena,
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
            composite_checksums_only: false,
            credentials: None,
        }
    }

    /// The credentials browser POST uploads are signed with
    /// ([`UploadMethod::Post`](crate::UploadMethod::Post)), for a backend made
    /// [`from_clients`](Self::from_clients); one made from an `SdkConfig` uses
    /// its credentials provider.
    pub fn with_signing_credentials(
        mut self,
        provider: aws_credential_types::provider::SharedCredentialsProvider,
    ) -> Self {
        self.credentials = Some(provider);
        self
    }

    /// The DynamoDB Streams client the change feed reads with.
    pub fn with_streams_client(mut self, streams: aws_sdk_dynamodbstreams::Client) -> Self {
        self.streams = streams;
        self
    }

    /// Uses `athena` for GC and verify's Athena engine
    /// ([`Engine::Athena`](crate::maintenance::Engine::Athena)); a backend
    /// made [`from_clients`](Self::from_clients) has one without credentials.
    pub fn with_athena_client(mut self, athena: aws_sdk_athena::Client) -> Self {
        self.athena = athena;
        self
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

#[async_trait]
impl Backend for AwsBackend {
    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        call.serve(self).await
    }
}
