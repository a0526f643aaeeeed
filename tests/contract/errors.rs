//! Errors read as one line naming their cause: a stopped endpoint, missing
//! credentials, a missing region, a missing table or bucket, a bucket name S3
//! refuses. The fixture cases run on memory and on the emulator; the others
//! build their own `AwsBackend` (no fixture) and run once.

use std::time::Duration;

use futures::TryStreamExt;
use vhs::{AwsBackend, AwsOptions, Error, Model, Store};

use crate::fixture::Fixture;
use crate::models::Document;

/// One line, no debug dump, short; `source()` kept when `sdk` (an SDK error
/// underneath).
fn assert_one_line(e: &Error, sdk: bool) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(!text.contains('{'), "{text}");
    assert!(text.len() < 200, "{} chars: {text}", text.len());
    if sdk {
        assert!(std::error::Error::source(e).is_some(), "{text}");
    }
}

/// A store on `table`, in the fixture's bucket, through its backend.
fn store_on(fx: &Fixture, table: &str) -> Store {
    Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Document>(table)
        .build()
        .unwrap()
}

pub async fn missing_table_is_table_not_found_on_every_call(fx: Fixture) {
    let table = format!("{}-missing", fx.tables.0);
    let store = store_on(&fx, &table);
    let named = |e: Error| {
        assert_one_line(&e, false);
        assert!(!e.is_retryable(), "{e}");
        assert!(e.is_not_found(), "{e}");
        match e {
            Error::TableNotFound { table: t } => assert_eq!(t, table),
            other => panic!("expected TableNotFound, got {other}"),
        }
    };
    let doc = Document::sample("p", "s");
    named(store.create_large(&doc).await.unwrap_err());
    assert!(fx.objects().await.is_empty(), "its objects were removed");
    named(store.get_large(&doc.primary_key()).await.unwrap_err());
    named(store.delete_large(&doc.primary_key()).await.unwrap_err());
    named(
        store
            .batch_get_large(&[doc.primary_key(), Document::key("q", "s")])
            .await
            .unwrap_err(),
    );
    named(
        store
            .query::<Document>(Document::PK.eq("p"))
            .items()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err(),
    );
    named(
        store
            .scan::<Document>()
            .items()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err(),
    );
    // A transaction over the fixture's table and the missing one names the
    // missing one.
    let both = Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Document>(table.clone())
        .table_for::<crate::models::Note>(fx.store.table_name::<crate::models::Note>())
        .build()
        .unwrap();
    let err = both
        .transaction()
        .create(&crate::models::Note::new("N", "n"))
        .create(&doc)
        .commit()
        .await
        .unwrap_err();
    named(err);
    assert!(
        fx.store
            .get_large(&crate::models::Note::key("N"))
            .await
            .unwrap_err()
            .is_not_found(),
        "nothing written"
    );
}

pub async fn missing_bucket_names_the_bucket(fx: Fixture) {
    let bucket = format!("{}-missing", fx.bucket);
    let store = Store::builder(fx.faults.clone(), bucket.clone())
        .table_for::<Document>(fx.tables.0.clone())
        .build()
        .unwrap();
    let err = store
        .create_large(&Document::sample("p", "s"))
        .await
        .unwrap_err();
    assert_one_line(&err, false);
    assert!(!err.is_retryable(), "{err}");
    match &err {
        Error::Backend { code, message, .. } => {
            assert_eq!(code.as_deref(), Some("NoSuchBucket"), "{err}");
            assert_eq!(message, &format!("bucket {bucket} does not exist"));
        }
        other => panic!("expected NoSuchBucket, got {other}"),
    }
    assert!(
        fx.item(&Document::key("p", "s")).await.is_none(),
        "nothing written"
    );
}

pub async fn bucket_names_s3_refuses_are_refused_by_build(fx: Fixture) {
    let build = |bucket: &str| {
        Store::builder(fx.faults.clone(), bucket)
            .table_for::<Document>(fx.tables.0.clone())
            .build()
    };
    let long = "a".repeat(64);
    for (bucket, rule) in [
        ("Bad_Bucket!", "lowercase letters, digits"),
        ("", "3 to 63 characters"),
        ("ab", "3 to 63 characters"),
        (long.as_str(), "3 to 63 characters"),
        ("my/bucket", "not '/'"),
        ("-bucket", "start and end"),
        ("bucket-", "start and end"),
        ("my..bucket", "two adjacent periods"),
        ("192.168.5.4", "IP address"),
        ("xn--bucket", "prefix \"xn--\""),
        ("sthree-bucket", "prefix \"sthree-\""),
        ("bucket-s3alias", "suffix \"-s3alias\""),
        ("bucket--ol-s3", "suffix \"--ol-s3\""),
        ("bucket.mrap", "suffix \".mrap\""),
    ] {
        let err = build(bucket).unwrap_err();
        assert_one_line(&err, false);
        assert!(matches!(err, Error::InvalidInput { .. }), "{bucket}: {err}");
        let text = err.to_string();
        assert!(text.contains(&format!("{bucket:?}")), "{text}");
        assert!(text.contains(rule), "{bucket}: {text}");
    }
    for bucket in ["abc", "my-bucket", "my.bucket.1", &"a".repeat(63), "10.0.0"] {
        build(bucket).unwrap_or_else(|e| panic!("{bucket}: {e}"));
    }
    assert_eq!(
        fx.faults.calls().len(),
        0,
        "nothing sent (fixture setup calls were reset)"
    );
}

/// A store through an `AwsBackend` on `config`, one attempt per request.
fn aws_store(config: &aws_config::SdkConfig, url: &str) -> Store {
    let backend = AwsBackend::with_options(
        config,
        AwsOptions::emulator(url.to_owned())
            .max_attempts(1)
            .timeouts(None, Some(Duration::from_secs(5)), None),
    );
    Store::builder(backend, "vhs-errors")
        .table_for::<Document>("documents")
        .build()
        .unwrap()
}

/// An SDK config with only what is given: no credentials or region from the
/// environment, no IMDS.
fn bare_config(url: &str, region: Option<&str>, credentials: bool) -> aws_config::SdkConfig {
    let mut b = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(url);
    b.set_region(region.map(|r| aws_config::Region::new(r.to_owned())));
    if credentials {
        b.set_credentials_provider(Some(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::for_tests(),
        )));
    }
    b.build()
}

/// The error of a read and of a write (DynamoDB first, then S3 through
/// `create_large`'s upload).
async fn read_and_write(store: &Store) -> (Error, Error) {
    let doc = Document::sample("p", "s");
    let read = store.get_large(&doc.primary_key()).await.unwrap_err();
    let write = store.create_large(&doc).await.unwrap_err();
    (read, write)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_endpoint_is_one_retryable_line_naming_it() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let store = aws_store(&bare_config(&url, Some("us-east-1"), true), &url);
    let (read, write) = read_and_write(&store).await;
    assert_eq!(
        read.to_string(),
        format!("DynamoDB GetItem: cannot connect to {url}: connection refused")
    );
    assert!(
        write
            .to_string()
            .ends_with(&format!(": cannot connect to {url}: connection refused")),
        "{write}"
    );
    for e in [read, write] {
        assert_one_line(&e, true);
        assert!(matches!(e, Error::Backend { .. }), "{e}");
        assert!(e.is_retryable(), "{e}");
    }
}

/// A credentials chain whose one provider finds nothing: a profile provider
/// over empty profile files (no environment, no network, no IMDS).
// `ProfileFiles` is the name aws-config exports for aws-runtime's
// `EnvConfigFiles` (deprecated there; aws-runtime is not a dependency).
#[allow(deprecated)]
fn empty_profile_chain() -> aws_config::meta::credentials::CredentialsProviderChain {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    let empty = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Config, "")
        .with_contents(ProfileFileKind::Credentials, "")
        .build();
    aws_config::meta::credentials::CredentialsProviderChain::first_try(
        "Profile",
        aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_files(empty)
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_is_one_config_line() {
    // The emulator accepts any credentials: with none, nothing is sent.
    let url = crate::emulator::endpoint().await;
    let store = aws_store(&bare_config(&url, Some("us-east-1"), false), &url);
    let (read, _) = read_and_write(&store).await;
    assert_eq!(
        read.to_string(),
        "DynamoDB GetItem: no AWS credentials provider configured"
    );
    let chain = empty_profile_chain();
    let config = {
        let mut b = bare_config(&url, Some("us-east-1"), false).to_builder();
        b.set_credentials_provider(Some(aws_sdk_s3::config::SharedCredentialsProvider::new(
            chain,
        )));
        b.build()
    };
    let store = aws_store(&config, &url);
    let (read, write) = read_and_write(&store).await;
    assert_eq!(
        read.to_string(),
        "DynamoDB GetItem: no AWS credentials found (tried Profile)"
    );
    for e in [read, write] {
        assert_one_line(&e, true);
        assert!(matches!(e, Error::Config { .. }), "{e}");
        assert!(!e.is_retryable(), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_region_is_one_config_line() {
    let url = crate::emulator::endpoint().await;
    let store = aws_store(&bare_config(&url, None, true), &url);
    let (read, write) = read_and_write(&store).await;
    assert_eq!(
        read.to_string(),
        "DynamoDB GetItem: no AWS region configured (set AWS_REGION or a profile's region)"
    );
    for e in [read, write] {
        assert_one_line(&e, true);
        assert!(matches!(e, Error::Config { .. }), "{e}");
        assert!(!e.is_retryable(), "{e}");
    }
}
