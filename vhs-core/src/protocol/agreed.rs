//! The settings a table's processes agree on ([`Settings`]: the retention and
//! the clock skew bound), recorded once as a small object under the table's
//! prefix, so every process reads the same values whatever its own
//! configuration says.
//!
//! The first process that needs them and finds none records its own with
//! `If-None-Match: *`; every later one (and a loser of that race) reads what
//! was recorded. A table written by a version of vhs that recorded nothing
//! gets the first process's values.

use std::time::Duration;

use bytes::Bytes;

use super::clock::Settings;
use crate::backend::BackendExt as _;
use crate::backend::{Backend, PutObject, PutOutcome, Signal};
use crate::checksum::ChecksumAlgorithm;
use crate::error::{Error, Result};

/// The object's name under the table prefix. Not in the object key layout
/// (no `pk=`), so GC, verify and stats never take it for a value.
pub(crate) const SETTINGS_OBJECT: &str = "vhs-protocol.json";

/// The key of the settings object of the table whose prefix is `prefix`.
pub(crate) fn settings_key(prefix: &str) -> String {
    if prefix.is_empty() {
        SETTINGS_OBJECT.to_owned()
    } else {
        format!("{prefix}/{SETTINGS_OBJECT}")
    }
}

fn render(settings: &Settings) -> String {
    format!(
        "{{\"retention_ms\":{},\"max_clock_skew_ms\":{}}}\n",
        settings.retention_ms(),
        settings.skew_ms()
    )
}

fn parse(bytes: &[u8]) -> Option<Settings> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let ms = |name: &str| value.get(name)?.as_u64().map(Duration::from_millis);
    Some(Settings::new(ms("retention_ms")?, ms("max_clock_skew_ms")?))
}

/// The settings recorded for the table whose prefix is `prefix`, recording
/// `proposed` if there are none yet.
pub(crate) async fn load_or_record(
    backend: &dyn Backend,
    bucket: &str,
    prefix: &str,
    proposed: Settings,
) -> Result<Settings> {
    let key = settings_key(prefix);
    let bad = |bytes: &[u8]| Error::Backend {
        service: "s3",
        operation: "GetObject",
        code: None,
        retryable: false,
        message: format!(
            "s3://{bucket}/{key} does not hold vhs's protocol settings: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
        source: None,
    };
    for _ in 0..3 {
        if let Some(found) = backend.get_object(bucket, &key).await? {
            return parse(&found.body).ok_or_else(|| bad(&found.body));
        }
        let body = Bytes::from(render(&proposed));
        let put = PutObject {
            bucket: bucket.to_owned(),
            key: key.clone(),
            checksum: ChecksumAlgorithm::Md5.digest(&body),
            body,
            content_type: "application/json".to_owned(),
            content_encoding: None,
            metadata: Default::default(),
            storage_class: None,
            tags: Vec::new(),
            if_none_match: true,
            complete_after: Signal::open(),
        };
        if backend.put_object(put).await? == PutOutcome::Created {
            return Ok(proposed);
        }
        // Someone recorded theirs first: read them.
    }
    Err(Error::backend(
        "s3",
        "GetObject",
        true,
        format!("s3://{bucket}/{key}: recorded and deleted again while being read"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip() {
        let s = Settings::new(
            Duration::from_millis(3_600_000),
            Duration::from_millis(120_000),
        );
        assert_eq!(parse(render(&s).as_bytes()), Some(s));
        assert_eq!(parse(b"{}"), None);
        assert_eq!(settings_key(""), "vhs-protocol.json");
        assert_eq!(settings_key("a/b"), "a/b/vhs-protocol.json");
    }
}
