//! `vhs provision`: the table and bucket specs from the command line, the plan,
//! and the equivalent CloudFormation template.

use serde_json::{json, Map, Value};
use vhs::{BucketSpec, IndexKind, IndexSpec, KeyKind, Projection, TableSpec};

use crate::cli::{Provision, Variant};

/// `NAME:S` or `NAME:N`.
fn key_def(text: &str) -> Result<(String, KeyKind), String> {
    let (name, kind) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: write a key as NAME:S or NAME:N"))?;
    let kind = match kind {
        "S" | "s" => KeyKind::String,
        "N" | "n" => KeyKind::Number,
        other => {
            return Err(format!(
                "{text:?}: key type {other:?} is not S or N (vhs keys are strings or numbers)"
            ))
        }
    };
    if name.is_empty() {
        return Err(format!("{text:?}: the key name is empty"));
    }
    Ok((name.to_owned(), kind))
}

/// The table `provision` asks for.
pub fn table_spec(name: &str, args: &Provision) -> Result<TableSpec, String> {
    let explicit_keys = args.hash_key != "pk:S" || args.range_key.is_some();
    let (hash_key, range_key) = match args.variant {
        Variant::Plain => (
            key_def(&args.hash_key)?,
            args.range_key.as_deref().map(key_def).transpose()?,
        ),
        Variant::Single | Variant::Multi if explicit_keys || !args.gsi.is_empty() => {
            return Err(
                "--hash-key, --range-key and --gsi are for --variant plain: the versioned stores' tables have fixed keys"
                    .to_owned(),
            )
        }
        Variant::Single => (("id".to_owned(), KeyKind::String), None),
        Variant::Multi => (
            ("id".to_owned(), KeyKind::String),
            Some(("version".to_owned(), KeyKind::Number)),
        ),
    };
    let mut indexes = Vec::new();
    for gsi in &args.gsi {
        let (index, keys) = gsi
            .split_once('=')
            .ok_or_else(|| format!("--gsi {gsi:?}: write NAME=HASH:T[,RANGE:T]"))?;
        let mut keys = keys.split(',');
        let hash = key_def(keys.next().unwrap_or_default())?;
        let range = keys.next().map(key_def).transpose()?;
        if keys.next().is_some() {
            return Err(format!("--gsi {gsi:?}: an index has at most two keys"));
        }
        indexes.push(IndexSpec {
            name: index.to_owned(),
            kind: IndexKind::Global,
            hash_key: hash,
            range_key: range,
            projection: Projection::All,
        });
    }
    Ok(TableSpec {
        range_key,
        indexes,
        streams: args.streams,
        point_in_time_recovery: args.point_in_time_recovery || args.backup_consistent,
        time_to_live: args.ttl.then(|| vhs::TTL_ATTRIBUTE.to_owned()),
        ..TableSpec::new(name, hash_key)
    })
}

/// The `--transition` rules asked for: attribute, days, class.
pub fn transitions(args: &Provision) -> Result<Vec<(String, u32, String)>, String> {
    args.transition
        .iter()
        .map(|text| {
            let bad = || {
                format!("--transition {text:?}: write ATTR=DAYS:CLASS, e.g. body=30:STANDARD_IA")
            };
            let (attr, rest) = text.split_once('=').ok_or_else(bad)?;
            let (days, class) = rest.split_once(':').ok_or_else(bad)?;
            let days = days.parse::<u32>().map_err(|_| bad())?;
            if attr.is_empty() || class.is_empty() {
                return Err(bad());
            }
            Ok((attr.to_owned(), days, class.to_owned()))
        })
        .collect()
}

/// The bucket `provision` asks for. With `--backup-consistent`, versioned and
/// keeping noncurrent versions 35 days unless `--noncurrent-expiry` says
/// otherwise (a value under 35 is refused by [`BucketSpec::check`], before
/// anything is written).
pub fn bucket_spec(bucket: &str, prefix: &str, args: &Provision) -> BucketSpec {
    let days = |d: u32| (d > 0).then_some(d);
    let default_expiry = if args.backup_consistent {
        BucketSpec::PITR_WINDOW_DAYS
    } else {
        30
    };
    BucketSpec {
        abort_incomplete_multipart_days: days(args.abort_multipart_after),
        noncurrent_version_expiry_days: days(args.noncurrent_expiry.unwrap_or(default_expiry)),
        versioning: args.backup_consistent,
        ..BucketSpec::new(bucket, prefix)
    }
}

fn kind_letter(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::String => "S",
        KeyKind::Number => "N",
    }
}

/// One line describing a table spec.
pub fn describe_table(spec: &TableSpec) -> String {
    let key = |k: &(String, KeyKind)| format!("{}:{}", k.0, kind_letter(k.1));
    let mut text = format!("hash key {}", key(&spec.hash_key));
    if let Some(r) = &spec.range_key {
        text.push_str(&format!(", range key {}", key(r)));
    }
    for i in &spec.indexes {
        let kind = match i.kind {
            IndexKind::Global => "GSI",
            IndexKind::Local => "LSI",
        };
        text.push_str(&format!(", {kind} {} on {}", i.name, key(&i.hash_key)));
        if let Some(r) = &i.range_key {
            text.push_str(&format!(",{}", key(r)));
        }
    }
    text.push_str(", on-demand billing");
    if spec.streams {
        text.push_str(", stream NEW_AND_OLD_IMAGES");
    }
    if spec.point_in_time_recovery {
        text.push_str(", point-in-time recovery");
    }
    if let Some(attr) = &spec.time_to_live {
        text.push_str(&format!(", time to live on {attr}"));
    }
    text
}

/// One line describing a bucket spec.
pub fn describe_bucket(spec: &BucketSpec) -> String {
    let mut parts = Vec::new();
    if spec.block_public_access {
        parts.push("public access blocked".to_owned());
    }
    if spec.default_encryption {
        parts.push("default encryption SSE-S3".to_owned());
    }
    if spec.versioning {
        parts.push("versioning enabled".to_owned());
    }
    let scope = if spec.prefix.is_empty() {
        "the bucket".to_owned()
    } else {
        format!("{}/", spec.prefix)
    };
    if let Some(d) = spec.abort_incomplete_multipart_days {
        parts.push(format!(
            "incomplete multipart uploads under {scope} aborted after {d} days"
        ));
    }
    if let Some(d) = spec.noncurrent_version_expiry_days {
        parts.push(format!(
            "noncurrent versions under {scope} expired after {d} days"
        ));
    }
    for t in &spec.transitions {
        parts.push(format!(
            "objects of `{}` moved to {} after {} days (tags vhs-table={}, vhs-attr={})",
            t.attr, t.storage_class, t.days, t.table, t.attr
        ));
    }
    parts.join(", ")
}

/// The CloudFormation template creating what `provision` would.
pub fn cloudformation(table: &TableSpec, bucket: &BucketSpec) -> Value {
    let attr_type =
        |k: &(String, KeyKind)| json!({"AttributeName": k.0, "AttributeType": kind_letter(k.1)});
    let schema = |h: &(String, KeyKind), r: &Option<(String, KeyKind)>| {
        let mut s = vec![json!({"AttributeName": h.0, "KeyType": "HASH"})];
        if let Some(r) = r {
            s.push(json!({"AttributeName": r.0, "KeyType": "RANGE"}));
        }
        Value::Array(s)
    };
    let mut definitions: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let keys = std::iter::once(&table.hash_key)
        .chain(table.range_key.iter())
        .chain(
            table
                .indexes
                .iter()
                .flat_map(|i| std::iter::once(&i.hash_key).chain(i.range_key.iter())),
        );
    for k in keys {
        if seen.insert(k.0.clone()) {
            definitions.push(attr_type(k));
        }
    }
    let mut props = Map::new();
    props.insert("TableName".into(), json!(table.name));
    props.insert("BillingMode".into(), json!("PAY_PER_REQUEST"));
    props.insert("AttributeDefinitions".into(), Value::Array(definitions));
    props.insert(
        "KeySchema".into(),
        schema(&table.hash_key, &table.range_key),
    );
    let gsis: Vec<Value> = table
        .indexes
        .iter()
        .filter(|i| i.kind == IndexKind::Global)
        .map(|i| {
            json!({
                "IndexName": i.name,
                "KeySchema": schema(&i.hash_key, &i.range_key),
                "Projection": {"ProjectionType": "ALL"},
            })
        })
        .collect();
    if !gsis.is_empty() {
        props.insert("GlobalSecondaryIndexes".into(), Value::Array(gsis));
    }
    if table.streams {
        props.insert(
            "StreamSpecification".into(),
            json!({"StreamViewType": "NEW_AND_OLD_IMAGES"}),
        );
    }
    if table.point_in_time_recovery {
        props.insert(
            "PointInTimeRecoverySpecification".into(),
            json!({"PointInTimeRecoveryEnabled": true}),
        );
    }
    if let Some(attr) = &table.time_to_live {
        props.insert(
            "TimeToLiveSpecification".into(),
            json!({"AttributeName": attr, "Enabled": true}),
        );
    }
    let mut bucket_props = Map::new();
    bucket_props.insert("BucketName".into(), json!(bucket.name));
    if bucket.block_public_access {
        bucket_props.insert(
            "PublicAccessBlockConfiguration".into(),
            json!({
                "BlockPublicAcls": true,
                "IgnorePublicAcls": true,
                "BlockPublicPolicy": true,
                "RestrictPublicBuckets": true,
            }),
        );
    }
    if bucket.default_encryption {
        bucket_props.insert(
            "BucketEncryption".into(),
            json!({"ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                "BucketKeyEnabled": true,
            }]}),
        );
    }
    if bucket.versioning {
        bucket_props.insert(
            "VersioningConfiguration".into(),
            json!({"Status": "Enabled"}),
        );
    }
    let mut rule = Map::new();
    rule.insert("Id".into(), json!(BucketSpec::LIFECYCLE_RULE_ID));
    rule.insert("Status".into(), json!("Enabled"));
    if !bucket.prefix.is_empty() {
        rule.insert("Prefix".into(), json!(format!("{}/", bucket.prefix)));
    }
    if let Some(d) = bucket.abort_incomplete_multipart_days {
        rule.insert(
            "AbortIncompleteMultipartUpload".into(),
            json!({"DaysAfterInitiation": d}),
        );
    }
    if let Some(d) = bucket.noncurrent_version_expiry_days {
        rule.insert(
            "NoncurrentVersionExpiration".into(),
            json!({"NoncurrentDays": d}),
        );
    }
    let mut rules = Vec::new();
    if rule.len() > 2 {
        rules.push(Value::Object(rule));
    }
    for t in &bucket.transitions {
        let mut rule = json!({
            "Id": t.rule_id(),
            "Status": "Enabled",
            "TagFilters": [
                {"Key": vhs::TABLE_TAG, "Value": t.table},
                {"Key": vhs::ATTR_TAG, "Value": t.attr},
            ],
            "Transitions": [{"StorageClass": t.storage_class, "TransitionInDays": t.days}],
        });
        if !t.prefix.is_empty() {
            rule["Prefix"] = json!(format!("{}/", t.prefix));
        }
        rules.push(rule);
    }
    if !rules.is_empty() {
        bucket_props.insert("LifecycleConfiguration".into(), json!({ "Rules": rules }));
    }
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("vhs store: table {} and bucket {} (generated by `vhs provision --format cloudformation`)", table.name, bucket.name),
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": Value::Object(props),
            },
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": Value::Object(bucket_props),
            },
        },
        "Outputs": {
            "TableArn": {"Value": {"Fn::GetAtt": ["Table", "Arn"]}},
            "BucketArn": {"Value": {"Fn::GetAtt": ["Bucket", "Arn"]}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn provision(args: &[&str]) -> Provision {
        let cli = Cli::parse_from(["vhs", "provision"].iter().chain(args));
        match cli.command {
            Command::Provision(p) => p,
            _ => unreachable!(),
        }
    }

    #[test]
    fn specs_follow_the_variant() {
        let multi = table_spec("t", &provision(&["--variant", "multi"])).unwrap();
        assert_eq!(multi.hash_key, ("id".into(), KeyKind::String));
        assert_eq!(multi.range_key, Some(("version".into(), KeyKind::Number)));
        let plain = table_spec(
            "t",
            &provision(&[
                "--hash-key",
                "user:S",
                "--range-key",
                "at:N",
                "--gsi",
                "by_email=email:S",
                "--streams",
            ]),
        )
        .unwrap();
        assert_eq!(plain.range_key, Some(("at".into(), KeyKind::Number)));
        assert_eq!(plain.indexes[0].hash_key, ("email".into(), KeyKind::String));
        assert!(plain.streams && !plain.point_in_time_recovery);
        let err = table_spec("t", &provision(&["--hash-key", "user:B"])).unwrap_err();
        assert!(err.contains("not S or N"), "{err}");
        let err = table_spec(
            "t",
            &provision(&["--variant", "single", "--range-key", "x:S"]),
        )
        .unwrap_err();
        assert!(err.contains("fixed keys"), "{err}");
    }

    #[test]
    fn backup_consistent_versions_the_bucket_for_the_pitr_window() {
        let args = provision(&["--backup-consistent"]);
        let (table, bucket) = (
            table_spec("docs", &args).unwrap(),
            bucket_spec("bkt", "vhs/docs", &args),
        );
        assert!(table.point_in_time_recovery && bucket.versioning);
        assert_eq!(bucket.noncurrent_version_expiry_days, Some(35));
        bucket.check().unwrap();
        let t = cloudformation(&table, &bucket);
        let b = &t["Resources"]["Bucket"]["Properties"];
        assert_eq!(b["VersioningConfiguration"]["Status"], "Enabled");
        let rule = &b["LifecycleConfiguration"]["Rules"][0];
        assert_eq!(rule["NoncurrentVersionExpiration"]["NoncurrentDays"], 35);
        assert_eq!(
            t["Resources"]["Table"]["Properties"]["PointInTimeRecoverySpecification"]
                ["PointInTimeRecoveryEnabled"],
            true
        );
        assert!(describe_bucket(&bucket).contains("versioning enabled"));
        // Longer is kept; shorter than the window is refused; without the
        // flag nothing is versioned and the default stays 30 days.
        let longer = bucket_spec(
            "bkt",
            "p",
            &provision(&["--backup-consistent", "--noncurrent-expiry", "90"]),
        );
        assert_eq!(longer.noncurrent_version_expiry_days, Some(90));
        let shorter = bucket_spec(
            "bkt",
            "p",
            &provision(&["--backup-consistent", "--noncurrent-expiry", "30"]),
        );
        let e = shorter.check().unwrap_err().to_string();
        assert!(e.contains("at least 35"), "{e}");
        let plain = bucket_spec("bkt", "p", &provision(&[]));
        assert!(!plain.versioning);
        assert_eq!(plain.noncurrent_version_expiry_days, Some(30));
        let t = cloudformation(&table_spec("docs", &provision(&[])).unwrap(), &plain);
        assert!(t["Resources"]["Bucket"]["Properties"]
            .get("VersioningConfiguration")
            .is_none());
    }

    #[test]
    fn template_holds_every_setting() {
        let args = provision(&["--gsi", "g=a:S,b:N", "--point-in-time-recovery"]);
        let t = cloudformation(
            &table_spec("docs", &args).unwrap(),
            &bucket_spec("bkt", "vhs/docs", &args),
        );
        let table = &t["Resources"]["Table"]["Properties"];
        assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(table["AttributeDefinitions"].as_array().unwrap().len(), 3);
        assert_eq!(
            table["GlobalSecondaryIndexes"][0]["KeySchema"][1]["AttributeName"],
            "b"
        );
        assert_eq!(
            table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true
        );
        let bucket = &t["Resources"]["Bucket"]["Properties"];
        let rule = &bucket["LifecycleConfiguration"]["Rules"][0];
        assert_eq!(rule["Prefix"], "vhs/docs/");
        assert_eq!(
            rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
            7
        );
        assert_eq!(
            bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"],
            true
        );
    }
}
