//! How SDK errors become one-line [`Error`]s: service, operation, code,
//! message; credentials and configuration problems as [`Error::Config`].

use super::*;

/// The longest text taken from a lower layer into a message.
pub(super) const DETAIL_MAX: usize = 120;

/// Service codes that say the credentials were refused: (code, what to say).
pub(super) const CREDENTIALS_CODES: &[(&str, &str)] = &[
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
pub(super) fn classify<E>(
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
pub(super) enum Failure {
    /// Credentials, region or endpoint configuration.
    Config(String),
    /// Transport (retryable) or a request that could not be built.
    Other { message: String, retryable: bool },
}

/// Classifies a failure that is not a service's answer from the SDK error's
/// variant and its `source()` chain, in one line.
pub(super) fn failure<E, R>(err: &SdkError<E, R>, endpoint: Option<&str>) -> Failure
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
pub(super) fn config_failure(
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
pub(super) fn tried_providers(report: &str) -> Option<String> {
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
pub(super) fn io_phrase(e: &std::io::Error) -> String {
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
pub(super) fn detail(text: &str) -> String {
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
