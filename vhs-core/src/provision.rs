//! Provisioning a table and its bucket: the plan, then the calls
//! ([`Store::plan_provision`], [`Store::provision`]), what `vhs provision` runs.

use crate::backend::BackendExt as _;
use crate::backend::{BucketSpec, TableSpec};
use crate::error::{Error, Result};
use crate::model::IndexKind;
use crate::store::Store;

/// What [`Store::plan_provision`] found, and what provisioning changes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionPlan {
    /// The table as it exists (keys, indexes, stream), `None` if it does not.
    pub table: Option<TableSpec>,
    /// What provisioning changes on the existing table, one line each (`add
    /// global index by_email`, `enable the stream`, `enable point-in-time
    /// recovery`); empty for a new table, which is created whole.
    pub table_changes: Vec<String>,
    /// Whether the bucket exists. Its settings are applied either way (they
    /// are idempotent, and reading them back would take four more calls).
    pub bucket_exists: bool,
}

impl Store {
    /// Reads what exists (DescribeTable, HeadBucket) and says what
    /// [`Store::provision`] would do; changes nothing. [`Error::InvalidInput`]
    /// if the table exists with other keys than `table`, or without a local
    /// index `table` declares (those come only with the table), or if
    /// `bucket` is versioned with a noncurrent expiry shorter than the
    /// point-in-time recovery window ([`BucketSpec::check`]), before any call.
    pub async fn plan_provision(
        &self,
        table: &TableSpec,
        bucket: &BucketSpec,
    ) -> Result<ProvisionPlan> {
        self.check_transitions(bucket)?;
        bucket.check()?;
        let existing = self.backend().describe_table(&table.name).await?;
        let mut changes = Vec::new();
        if let Some(found) = &existing {
            if found.hash_key != table.hash_key || found.range_key != table.range_key {
                return Err(Error::invalid(format!(
                    "table {} exists with keys {:?} / {:?}, not the {:?} / {:?} asked for",
                    table.name, found.hash_key, found.range_key, table.hash_key, table.range_key
                )));
            }
            for index in &table.indexes {
                if found.indexes.iter().any(|f| f.name == index.name) {
                    continue;
                }
                if index.kind == IndexKind::Local {
                    return Err(Error::invalid(format!(
                        "table {} exists without local index {}: local indexes are created with the table only",
                        table.name, index.name
                    )));
                }
                changes.push(format!("add global index {}", index.name));
            }
            if table.streams && !found.streams {
                changes.push("enable the stream (NEW_AND_OLD_IMAGES)".to_owned());
            }
            if table.point_in_time_recovery {
                changes.push("enable point-in-time recovery".to_owned());
            }
            if let Some(attr) = &table.time_to_live {
                match self.backend().describe_time_to_live(&table.name).await? {
                    Some(found) if &found == attr => {}
                    Some(found) => {
                        return Err(Error::invalid(format!(
                            "table {} has time to live on attribute `{found}`, not `{attr}`: disable it first",
                            table.name
                        )))
                    }
                    None => changes.push(format!("enable time to live on `{attr}`")),
                }
            }
        }
        Ok(ProvisionPlan {
            table: existing,
            table_changes: changes,
            bucket_exists: self.backend().bucket_exists(&bucket.name).await?,
        })
    }

    /// Plans ([`Store::plan_provision`]), then creates or updates the bucket
    /// ([`Store::ensure_bucket_with`]) and the table
    /// ([`Store::ensure_table_spec`]), in that order: the table's protocol
    /// settings are recorded in the bucket. Idempotent. Returns the plan: what
    /// was found before.
    pub async fn provision(&self, table: &TableSpec, bucket: &BucketSpec) -> Result<ProvisionPlan> {
        let plan = self.plan_provision(table, bucket).await?;
        self.ensure_bucket_with(bucket).await?;
        self.ensure_table_spec(table).await?;
        Ok(plan)
    }
}
