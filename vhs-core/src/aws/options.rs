//! [`AwsOptions`] and [`Encryption`]: settings beyond an `SdkConfig`.

use std::time::Duration;

/// Settings of [`AwsBackend`](super::AwsBackend) beyond what an `SdkConfig` carries.
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
    /// The server combines multipart checksums only as composites (ministack
    /// 1.5.33), and refuses the whole object's CRC-64/NVME that a
    /// full-object upload sends at its completion (`BadDigest`). With this set
    /// a `crc64nvme` attribute's multipart uploads still send each part's
    /// CRC, but declare no checksum type and send no whole-object CRC; vhs
    /// still checks the CRC its key names on every read. Default `false`
    /// (AWS S3: CRC-64/NVME multipart uploads are full-object).
    pub composite_checksums_only: bool,
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

    /// Sets [`AwsOptions::composite_checksums_only`].
    pub fn composite_checksums_only(mut self, yes: bool) -> Self {
        self.composite_checksums_only = yes;
        self
    }

    /// Sets [`AwsOptions::checksums_when_required`].
    pub fn checksums_when_required(mut self, yes: bool) -> Self {
        self.checksums_when_required = yes;
        self
    }
}
