//! Bad input and hostile keys: every case of the README's table, each answered
//! with its error before anything is written where the input alone decides.

use vhs::{Error, Model};

use crate::fixture::Fixture;
use crate::models::{Document, Video};

/// Asserts the error and that no call reached the backend.
fn rejected_before_writing(fx: &Fixture, result: Result<impl std::fmt::Debug, Error>) -> Error {
    let err = result.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(fx.faults.calls().is_empty(), "{:?}", fx.faults.calls());
    err
}

pub async fn bad_inputs_are_rejected_before_writing(fx: Fixture) {
    // Empty hash key; empty range key.
    rejected_before_writing(&fx, fx.store.create_large(&Document::sample("", "s")).await);
    rejected_before_writing(&fx, fx.store.create_large(&Document::sample("p", "")).await);
    // A key whose escaped form makes the S3 key longer than 1024 bytes.
    let long = "é".repeat(200); // 400 bytes, 1200 escaped
    let err = rejected_before_writing(
        &fx,
        fx.store.create_large(&Document::sample(&long, "s")).await,
    );
    assert!(err.to_string().contains("1024"), "{err}");
    // An item over 400 KB after offloading.
    let mut big = Document::sample("p", "s");
    big.data = serde_json::json!("x".repeat(410 * 1024));
    let err = rejected_before_writing(&fx, fx.store.create_large(&big).await);
    assert!(err.to_string().contains("409600"), "{err}");
    // A large value larger than an S3 object can be (5 TiB): rejected before it is
    // hashed or sent. (A sparse file: its blocks are never written.)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(5 * 1024 * 1024 * 1024 * 1024 + 1).unwrap();
    drop(file);
    let huge = Video {
        id: "huge".into(),
        data: Some(vhs::Blob::from_file(&path).await.unwrap()),
        thumb: None,
    };
    let err = rejected_before_writing(&fx, fx.store.create_large(&huge).await);
    assert!(err.to_string().contains("5 TiB"), "{err}");
    assert!(fx.objects().await.is_empty());
}

pub async fn hostile_key_characters_round_trip(fx: Fixture) {
    let keys = [
        "..",
        ".",
        "a\0b",
        "\u{1}\u{7f}",
        "line\nbreak",
        "ünï/cødé",
        "%2F",
        "=",
        "/",
    ];
    for pk in keys {
        let doc = Document::sample(pk, pk);
        fx.store.create_large(&doc).await.unwrap();
        assert_eq!(
            fx.store.get_large(&doc.primary_key()).await.unwrap(),
            doc,
            "{pk:?}"
        );
    }
    let objects = fx.objects().await;
    assert_eq!(objects.len(), keys.len() * 2);
    for k in &objects {
        assert!(
            k.bytes().all(|b| b.is_ascii_graphic()),
            "key is plain ASCII: {k:?}"
        );
        assert!(
            !k.contains("/../") && !k.starts_with("../") && !k.contains("//"),
            "{k}"
        );
    }
    // A zero-byte value is a zero-byte object.
    let mut empty = Document::sample("empty", "s");
    empty.html = Some(String::new());
    fx.store.create_large(&empty).await.unwrap();
    assert_eq!(
        fx.store.get_large(&empty.primary_key()).await.unwrap(),
        empty
    );
}

pub async fn missing_table_and_bucket_are_backend_errors(fx: Fixture) {
    let missing_table = vhs::Store::builder(fx.faults.clone(), fx.bucket.clone())
        .table_for::<Document>("no-such-table")
        .build()
        .unwrap();
    let err = missing_table
        .create_large(&Document::sample("p", "s"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::TableNotFound { table } if table == "no-such-table"),
        "{err}"
    );
    assert!(!err.is_retryable(), "{err}");
    // The objects it uploaded were removed again.
    assert!(fx.objects().await.is_empty());
    let err = missing_table
        .get_large(&Document::key("p", "s"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TableNotFound { .. }), "{err}");

    let missing_bucket = vhs::Store::builder(fx.faults.clone(), "no-such-bucket-vhs")
        .table_for::<Document>(fx.tables.0.clone())
        .build()
        .unwrap();
    let err = missing_bucket
        .create_large(&Document::sample("p", "s"))
        .await
        .unwrap_err();
    match &err {
        Error::Backend { code, .. } => assert_eq!(code.as_deref(), Some("NoSuchBucket"), "{err}"),
        other => panic!("{other}"),
    }
    assert!(
        fx.item(&Document::key("p", "s")).await.is_none(),
        "nothing written"
    );
}

/// Emulator only: server-side encryption and `ExpectedBucketOwner` are sent on
/// the wire and accepted (the emulators do not enforce them), and nothing secret
/// shows in `Debug` output or errors.
pub async fn aws_options_and_no_secrets_in_debug() {
    let url = crate::emulator::endpoint().await;
    // Credentials of its own, long and unlike any other text (the harness's
    // `test`/`test` would be found in every bucket name).
    let credentials = aws_sdk_s3::config::Credentials::new(
        "AKIAVHSDEBUGCHECK01",
        "vhs-debug-check-secret-6f1c2e9a7b",
        None,
        None,
        "vhs-tests",
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(credentials)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&url)
        .load()
        .await;
    for encryption in [
        vhs::Encryption::S3,
        vhs::Encryption::Kms {
            key_id: Some("alias/vhs-test".into()),
        },
    ] {
        let options = vhs::AwsOptions::emulator(url.clone())
            .encryption(encryption)
            .max_attempts(5)
            .timeouts(
                Some(std::time::Duration::from_secs(5)),
                Some(std::time::Duration::from_secs(10)),
                Some(std::time::Duration::from_secs(30)),
            );
        let backend = vhs::AwsBackend::with_options(&config, options);
        let fx = Fixture::new(crate::fixture::Kind::Emulator).await;
        let store = vhs::Store::builder(backend, fx.bucket.clone())
            .table_for::<Document>(fx.tables.0.clone())
            .build()
            .unwrap();
        let doc = Document::sample("enc", "s");
        store.create_large(&doc).await.unwrap();
        assert_eq!(store.get_large(&doc.primary_key()).await.unwrap(), doc);
        store.delete_large(&doc.primary_key()).await.unwrap();

        let debug = format!("{store:?}");
        let creds = aws_credential_secret(&config).await;
        for secret in &creds {
            assert!(
                !debug.contains(secret.as_str()),
                "Debug shows a credential: {debug}"
            );
        }
        let err = vhs::Store::builder(
            vhs::AwsBackend::with_options(&config, vhs::AwsOptions::emulator(url.clone())),
            fx.bucket.clone(),
        )
        .table_for::<Document>("no-such-table")
        .build()
        .unwrap()
        .get_large(&Document::key("p", "s"))
        .await
        .unwrap_err();
        let shown = format!("{err} {err:?}");
        for secret in &creds {
            assert!(
                !shown.contains(secret.as_str()),
                "an error shows a credential: {shown}"
            );
        }
    }
}

async fn aws_credential_secret(config: &aws_config::SdkConfig) -> Vec<String> {
    use aws_sdk_s3::config::ProvideCredentials;
    let creds = config
        .credentials_provider()
        .unwrap()
        .provide_credentials()
        .await
        .unwrap();
    vec![
        creds.access_key_id().to_owned(),
        creds.secret_access_key().to_owned(),
    ]
}
