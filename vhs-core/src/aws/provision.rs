//! Tables and buckets: creating, describing, configuring, deleting.

use super::*;

#[async_trait]
impl ProvisionCalls for AwsBackend {
    async fn get_bucket_versioning(
        &self,
        bucket: &str,
    ) -> Result<crate::backend::BucketVersioning> {
        self.bucket_versioning(bucket).await
    }

    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        const OP: &str = Op::CreateTable.name();
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

    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        const OP: &str = Op::DescribeTable.name();
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
            time_to_live: None,
        }))
    }

    async fn update_time_to_live(&self, table: &str, attr: &str) -> Result<()> {
        const OP: &str = Op::UpdateTimeToLive.name();
        self.dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(built(
                "dynamodb",
                OP,
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| self.ddb_error(OP, table, e))?;
        Ok(())
    }

    async fn describe_time_to_live(&self, table: &str) -> Result<Option<String>> {
        use aws_sdk_dynamodb::types::TimeToLiveStatus;
        const OP: &str = Op::DescribeTimeToLive.name();
        let out = self
            .dynamodb
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| self.ddb_error(OP, table, e))?;
        Ok(out
            .time_to_live_description
            .and_then(|d| match d.time_to_live_status {
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => d.attribute_name,
                _ => None,
            }))
    }

    async fn delete_table(&self, table: &str) -> Result<bool> {
        const OP: &str = Op::DeleteTable.name();
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
            Err(e) => Err(self.s3_error(Op::CreateBucket.name(), bucket, e)),
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
            Err(e) => Err(self.s3_error(Op::HeadBucket.name(), bucket, e)),
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
        if spec.versioning {
            self.enable_versioning(&spec.name).await?;
        }
        let housekeeping = spec.abort_incomplete_multipart_days.is_some()
            || spec.noncurrent_version_expiry_days.is_some();
        if !housekeeping && spec.transitions.is_empty() {
            return Ok(());
        }
        const OP: &str = Op::ConfigureBucket.name();
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
                .filter(|r| {
                    r.id() != Some(BucketSpec::LIFECYCLE_RULE_ID)
                        && !spec
                            .transitions
                            .iter()
                            .any(|t| r.id() == Some(t.rule_id().as_str()))
                })
                .collect(),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(self.s3_error("GetBucketLifecycleConfiguration", &spec.name, e)),
        };
        for t in &spec.transitions {
            rules.push(transition_rule(t)?);
        }
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
        if housekeeping {
            rules.push(built("s3", OP, rule.build())?);
        }
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
                .map_err(|e| self.ddb_error(Op::DescribeTable.name(), table, e))?;
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
            Op::CreateTable.name(),
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
}

/// The lifecycle rule of a [`Transition`]: the objects under the table's
/// prefix tagged with its table and attribute move to its class after its days.
fn transition_rule(t: &Transition) -> Result<s3::types::LifecycleRule> {
    use s3::types::{
        ExpirationStatus, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter, Tag,
        Transition as S3Transition, TransitionStorageClass,
    };
    const OP: &str = Op::ConfigureBucket.name();
    let tag = |k: &str, v: &str| built("s3", OP, Tag::builder().key(k).value(v).build());
    let prefix = if t.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", t.prefix)
    };
    let filter = LifecycleRuleFilter::builder()
        .and(
            LifecycleRuleAndOperator::builder()
                .prefix(prefix)
                .tags(tag(crate::TABLE_TAG, &t.table)?)
                .tags(tag(crate::ATTR_TAG, &t.attr)?)
                .build(),
        )
        .build();
    built(
        "s3",
        OP,
        LifecycleRule::builder()
            .id(t.rule_id())
            .status(ExpirationStatus::Enabled)
            .filter(filter)
            .transitions(
                S3Transition::builder()
                    .days(t.days as i32)
                    .storage_class(TransitionStorageClass::from(t.storage_class.as_str()))
                    .build(),
            )
            .build(),
    )
}

/// A stream of new and old images.
fn stream_specification() -> Result<ddb::types::StreamSpecification> {
    built(
        "dynamodb",
        Op::CreateTable.name(),
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
            Op::CreateTable.name(),
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
