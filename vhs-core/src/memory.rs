//! An in-process backend with the semantics vhs relies on from DynamoDB and S3.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::task::yield_now;

use crate::backend::{
    item_size, Attempts, Backend, BatchPage, CompletedPart, Conditional, MultipartInfo,
    MultipartStart, ObjectInfo, ObjectPage, ObjectRange, PutObject, PutOutcome, Query, QueryPage,
    Scan, StoredObject, TableSpec, TransactWrite, Transacted, MAX_BATCH_GET, MAX_ITEM_BYTES,
    MAX_KEY_BYTES, MAX_PAGE_BYTES, MAX_PARTS, MAX_TRANSACT_ITEMS, MIN_PART_BYTES,
};
use crate::backend::{BucketSpec, CancelReason};
use crate::condition::{compare, Cmp, Condition, ItemUpdate};
use crate::error::{Error, Result};
use crate::model::{IndexKind, Item, KeyKind, KeyValue, Projection};
use aws_sdk_dynamodb::types::AttributeValue;

/// An in-memory DynamoDB + S3, for examples and for unit tests of code that uses vhs.
///
/// It behaves like the services where vhs depends on them: conditional writes,
/// `ALL_OLD` return values, the 400 KB item limit, the 1024-byte key limit,
/// `Content-MD5` checking, `If-None-Match: *`, and per-key DeleteObjects results.
/// Tables and buckets must be created before use, as on AWS. Clones share state.
/// Every call yields to the scheduler once, as a network call would, so that
/// concurrent callers interleave as they do against a server.
///
/// ```
/// use vhs_core::{Backend, MemoryBackend};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let backend = MemoryBackend::new();
/// backend.create_bucket("b").await.unwrap();
/// assert!(backend.get_object("b", "missing").await.unwrap().is_none());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    tables: HashMap<String, Table>,
    /// Client request tokens of applied transactions, with what they named.
    transactions: HashMap<String, Vec<(String, TableKey)>>,
    buckets: HashMap<String, BTreeMap<String, MemObject>>,
    uploads: BTreeMap<String, MemUpload>,
    next_upload: u64,
}

#[derive(Debug)]
struct MemUpload {
    bucket: String,
    key: String,
    content_type: String,
    content_encoding: Option<String>,
    metadata: HashMap<String, String>,
    parts: BTreeMap<u32, (String, bytes::Bytes)>,
    initiated: SystemTime,
}

fn s3_error(operation: &'static str, code: &str, message: impl Into<String>) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some(code.into()),
        retryable: false,
        message: message.into(),
        source: None,
    }
}

#[derive(Debug, Clone)]
struct MemObject {
    object: StoredObject,
    last_modified: SystemTime,
}

impl MemObject {
    fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size: self.object.body.len() as u64,
            last_modified: Some(self.last_modified),
        }
    }
}

/// An item's key as the table orders it.
type TableKey = (KeyValue, Option<KeyValue>);

#[derive(Debug)]
struct Table {
    spec: TableSpec,
    items: BTreeMap<TableKey, Item>,
}

impl Table {
    /// The table, or one of its indexes, as a query reads it.
    fn view(&self, index: Option<&str>, operation: &'static str) -> Result<View<'_>> {
        let mut keys = vec![self.spec.hash_key.0.clone()];
        keys.extend(self.spec.range_key.iter().map(|(n, _)| n.clone()));
        let Some(name) = index else {
            return Ok(View {
                hash: self.spec.hash_key.clone(),
                range: self.spec.range_key.clone(),
                keys,
                global: false,
                projection: None,
            });
        };
        let index = self
            .spec
            .indexes
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                validation(
                    operation,
                    format!("The table does not have the specified index: {name}"),
                )
            })?;
        keys.push(index.hash_key.0.clone());
        keys.extend(index.range_key.iter().map(|(n, _)| n.clone()));
        keys.dedup();
        Ok(View {
            hash: index.hash_key.clone(),
            range: index.range_key.clone(),
            keys,
            global: index.kind == IndexKind::Global,
            projection: Some(&index.projection),
        })
    }

    fn key_of(&self, item: &Item, operation: &'static str) -> Result<(KeyValue, Option<KeyValue>)> {
        let part = |(name, kind): &(String, KeyKind)| -> Result<KeyValue> {
            match (kind, item.get(name)) {
                (KeyKind::String, Some(AttributeValue::S(s))) if !s.is_empty() => {
                    Ok(KeyValue::String(s.clone()))
                }
                (KeyKind::Number, Some(AttributeValue::N(n))) => Ok(KeyValue::Number(n.clone())),
                _ => Err(validation(
                    operation,
                    format!("missing or invalid key attribute `{name}`"),
                )),
            }
        };
        let hash = part(&self.spec.hash_key)?;
        let range = self.spec.range_key.as_ref().map(part).transpose()?;
        Ok((hash, range))
    }
}

/// A table or an index, as a Query or a Scan reads it.
struct View<'a> {
    hash: (String, KeyKind),
    range: Option<(String, KeyKind)>,
    /// The table's key attributes, then the index's: what `last_key` holds.
    keys: Vec<String>,
    global: bool,
    /// The index's projection (`None` for the table).
    projection: Option<&'a Projection>,
}

impl View<'_> {
    /// Query order: by range key, ties (possible in an index) by the rest of the key.
    fn order(&self, a: &Item, b: &Item) -> std::cmp::Ordering {
        self.range
            .iter()
            .map(|(n, _)| n)
            .chain(self.keys.iter())
            .map(|n| match (a.get(n), b.get(n)) {
                (Some(x), Some(y)) => compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
                (x, y) => x.is_some().cmp(&y.is_some()),
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }

    /// One page read from `items` in order: at most `limit` items and
    /// [`MAX_PAGE_BYTES`] read, then filtered and projected.
    fn page(
        &self,
        items: Vec<&Item>,
        limit: Option<usize>,
        filter: Option<&Condition>,
        projection: Option<&[String]>,
    ) -> QueryPage {
        let limit = limit.unwrap_or(usize::MAX).max(1);
        let (mut page, mut read, mut bytes) = (QueryPage::default(), 0, 0);
        for (i, item) in items.iter().enumerate() {
            let size = item_size(item);
            if read > 0 && bytes + size > MAX_PAGE_BYTES {
                page.last_key = Some(self.key_item(items[i - 1]));
                return page;
            }
            read += 1;
            bytes += size;
            if filter.is_none_or(|f| f.evaluate(Some(item))) {
                page.items.push(self.project(item, projection));
            }
            if read == limit && i + 1 < items.len() {
                page.last_key = Some(self.key_item(item));
                return page;
            }
        }
        page
    }

    fn key_item(&self, item: &Item) -> Item {
        self.keys
            .iter()
            .filter_map(|n| Some((n.clone(), item.get(n)?.clone())))
            .collect()
    }

    /// The attributes of `item` the index holds, then those asked for.
    fn project(&self, item: &Item, asked: Option<&[String]>) -> Item {
        let held = |n: &String| match self.projection {
            None | Some(Projection::All) => true,
            Some(Projection::KeysOnly) => self.keys.contains(n),
            Some(Projection::Include(attrs)) => self.keys.contains(n) || attrs.contains(n),
        };
        item.iter()
            .filter(|(n, _)| held(n) && asked.is_none_or(|a| a.contains(n)))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

/// Whether `value` is of the key type `kind`.
fn matches_kind(kind: KeyKind, value: &AttributeValue) -> bool {
    matches!(
        (kind, value),
        (KeyKind::String, AttributeValue::S(_)) | (KeyKind::Number, AttributeValue::N(_))
    )
}

/// A range key condition must be one comparison (not `<>`), `BETWEEN` or
/// `begins_with` (strings only) on the range key, with values of its type.
fn check_range(view: &View, range: &Condition) -> Result<()> {
    let bad = |why: &str| {
        Err(validation(
            "Query",
            format!("Invalid KeyConditionExpression: {why}"),
        ))
    };
    let Some((key, kind)) = &view.range else {
        return bad("the table or index has no range key");
    };
    let (name, values): (&String, Vec<&AttributeValue>) = match range {
        Condition::Compare(_, Cmp::Ne, _) => return bad("<> is not a key condition"),
        Condition::Compare(n, _, v) => (n, vec![v]),
        Condition::Between(n, low, high) => {
            if compare(low, high) == Some(std::cmp::Ordering::Greater) {
                return bad("the BETWEEN bounds are in the wrong order");
            }
            (n, vec![low, high])
        }
        Condition::BeginsWith(n, _) if *kind == KeyKind::String => (n, Vec::new()),
        _ => return bad("only =, <, <=, >, >=, BETWEEN and begins_with apply to a range key"),
    };
    if name != key {
        return bad(&format!("`{name}` is not the range key `{key}`"));
    }
    if !values.iter().all(|v| matches_kind(*kind, v)) {
        return bad("a value has the wrong type for the range key");
    }
    Ok(())
}

/// Index names, key attributes and kinds as DynamoDB checks them.
fn check_indexes(spec: &TableSpec) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for index in &spec.indexes {
        if !(3..=255).contains(&index.name.len()) || !names.insert(&index.name) {
            return Err(validation(
                "CreateTable",
                format!("invalid or duplicate index name {:?}", index.name),
            ));
        }
        if index.kind == IndexKind::Local
            && (index.hash_key != spec.hash_key || index.range_key.is_none())
        {
            return Err(validation(
                "CreateTable",
                format!(
                    "local index {} must have the table's hash key and a range key",
                    index.name
                ),
            ));
        }
    }
    Ok(())
}

fn validation(operation: &'static str, message: impl Into<String>) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some("ValidationException".into()),
        retryable: false,
        message: message.into(),
        source: None,
    }
}

fn not_found(operation: &'static str, code: &str, what: &str) -> Error {
    Error::Backend {
        service: "memory",
        operation,
        code: Some(code.into()),
        retryable: false,
        message: format!("{what} does not exist"),
        source: None,
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters for tests; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The table `name`; [`Error::TableNotFound`] as the AWS backend reports
    /// DynamoDB's `ResourceNotFoundException`, whatever the operation.
    fn table(&mut self, name: &str, _operation: &'static str) -> Result<&mut Table> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| Error::TableNotFound {
                table: name.to_owned(),
            })
    }

    fn bucket(
        &mut self,
        name: &str,
        operation: &'static str,
    ) -> Result<&mut BTreeMap<String, MemObject>> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| not_found(operation, "NoSuchBucket", &format!("bucket {name}")))
    }
}

fn check_size(item: &Item, operation: &'static str) -> Result<()> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(validation(
            operation,
            format!("Item size of {size} bytes has exceeded the maximum allowed size"),
        ));
    }
    Ok(())
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn create_table(&self, spec: &TableSpec) -> Result<()> {
        yield_now().await;
        check_indexes(spec)?;
        let mut state = self.lock();
        let Some(table) = state.tables.get_mut(&spec.name) else {
            state.tables.insert(
                spec.name.clone(),
                Table {
                    spec: spec.clone(),
                    items: BTreeMap::new(),
                },
            );
            return Ok(());
        };
        for index in &spec.indexes {
            if table.spec.indexes.iter().any(|i| i.name == index.name) {
                continue;
            }
            if index.kind == IndexKind::Local {
                return Err(validation(
                    "UpdateTable",
                    format!(
                        "table {} exists without local index {}: local indexes are created with the table only",
                        spec.name, index.name
                    ),
                ));
            }
            table.spec.indexes.push(index.clone());
        }
        table.spec.streams |= spec.streams;
        table.spec.point_in_time_recovery |= spec.point_in_time_recovery;
        Ok(())
    }

    async fn delete_table(&self, table: &str) -> Result<bool> {
        yield_now().await;
        Ok(self.lock().tables.remove(table).is_some())
    }

    async fn describe_table(&self, table: &str) -> Result<Option<TableSpec>> {
        yield_now().await;
        Ok(self.lock().tables.get(table).map(|t| TableSpec {
            point_in_time_recovery: false,
            ..t.spec.clone()
        }))
    }

    async fn get_item(&self, table: &str, key: &Item, _consistent: bool) -> Result<Option<Item>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, "GetItem")?;
        let k = t.key_of(key, "GetItem")?;
        Ok(t.items.get(&k).cloned())
    }

    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        yield_now().await;
        check_size(&item, "PutItem")?;
        let mut state = self.lock();
        let t = state.table(table, "PutItem")?;
        let k = t.key_of(&item, "PutItem")?;
        if let Some(c) = condition {
            if !c.evaluate(t.items.get(&k)) {
                return Ok(Conditional::Failed(t.items.get(&k).cloned()));
            }
        }
        Ok(Conditional::Applied(t.items.insert(k, item)))
    }

    async fn query(&self, request: &Query) -> Result<QueryPage> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(&request.table, "Query")?;
        let view = t.view(request.index.as_deref(), "Query")?;
        if request.consistent && view.global {
            return Err(validation(
                "Query",
                "Consistent reads are not supported on global secondary indexes",
            ));
        }
        let (name, value) = &request.hash_key;
        if *name != view.hash.0 || !matches_kind(view.hash.1, value) {
            return Err(validation(
                "Query",
                format!(
                    "the key condition must name the hash key `{}` with a value of its type",
                    view.hash.0
                ),
            ));
        }
        if let Some(range) = &request.range {
            check_range(&view, range)?;
        }
        let mut items: Vec<&Item> = t
            .items
            .values()
            .filter(|i| i.get(name) == Some(value))
            .filter(|i| view.range.as_ref().is_none_or(|(r, _)| i.contains_key(r)))
            .filter(|i| request.range.as_ref().is_none_or(|c| c.evaluate(Some(i))))
            .collect();
        items.sort_by(|a, b| view.order(a, b));
        if request.descending {
            items.reverse();
        }
        if let Some(start) = &request.start {
            items.retain(|i| {
                let o = view.order(i, start);
                if request.descending {
                    o.is_lt()
                } else {
                    o.is_gt()
                }
            });
        }
        Ok(view.page(
            items,
            request.limit,
            request.filter.as_ref(),
            request.projection.as_deref(),
        ))
    }

    async fn update_item(
        &self,
        table: &str,
        key: &Item,
        update: &ItemUpdate,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Item>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, "UpdateItem")?;
        let k = t.key_of(key, "UpdateItem")?;
        let old = t.items.get(&k);
        if let Some(c) = condition {
            if !c.evaluate(old) {
                return Ok(Conditional::Failed(old.cloned()));
            }
        }
        let key_names = [
            Some(&t.spec.hash_key.0),
            t.spec.range_key.as_ref().map(|r| &r.0),
        ];
        let touches_key = update.names().any(|n| key_names.contains(&Some(n)));
        if touches_key {
            return Err(validation(
                "UpdateItem",
                "cannot update attribute: it is part of the key",
            ));
        }
        let old = old.cloned().unwrap_or_default();
        let mut new = if old.is_empty() {
            key.clone()
        } else {
            old.clone()
        };
        update
            .try_apply(&mut new)
            .map_err(|why| validation("UpdateItem", why))?;
        check_size(&new, "UpdateItem")?;
        t.items.insert(k, new);
        Ok(Conditional::Applied(old))
    }

    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        const OP: &str = "TransactWriteItems";
        yield_now().await;
        if actions.is_empty() || actions.len() > MAX_TRANSACT_ITEMS {
            return Err(validation(
                OP,
                format!(
                    "a transaction has 1 to {MAX_TRANSACT_ITEMS} actions, not {}",
                    actions.len()
                ),
            ));
        }
        let mut state = self.lock();
        // Every action's item, by table and key.
        let mut named: Vec<(String, TableKey)> = Vec::with_capacity(actions.len());
        for action in actions {
            let t = state.table(action.table(), OP)?;
            let key = match action {
                TransactWrite::Put { item, .. } => {
                    check_size(item, OP)?;
                    t.key_of(item, OP)?
                }
                TransactWrite::Update { key, update, .. } => {
                    let names = [
                        Some(&t.spec.hash_key.0),
                        t.spec.range_key.as_ref().map(|r| &r.0),
                    ];
                    if (update.set.iter().map(|(n, _)| n).chain(&update.remove))
                        .any(|n| names.contains(&Some(n)))
                    {
                        return Err(validation(
                            OP,
                            "cannot update attribute: it is part of the key",
                        ));
                    }
                    t.key_of(key, OP)?
                }
                TransactWrite::Delete { key, .. } | TransactWrite::Check { key, .. } => {
                    t.key_of(key, OP)?
                }
            };
            let id = (action.table().to_owned(), key);
            if named.contains(&id) {
                return Err(validation(
                    OP,
                    "Transaction request cannot include multiple operations on one item",
                ));
            }
            named.push(id);
        }
        if let Some(earlier) = state.transactions.get(token) {
            return if *earlier == named {
                Ok(Transacted::Committed)
            } else {
                Err(validation(
                    OP,
                    "IdempotentParameterMismatch: request token already in use for another request",
                ))
            };
        }
        let mut reasons = Vec::with_capacity(actions.len());
        let mut canceled = false;
        for (action, (table, key)) in actions.iter().zip(&named) {
            let stored = state.tables[table].items.get(key);
            let holds = action.condition().is_none_or(|c| c.evaluate(stored));
            canceled |= !holds;
            reasons.push(CancelReason {
                code: (!holds).then(|| "ConditionalCheckFailed".to_owned()),
                message: (!holds).then(|| "The conditional request failed".to_owned()),
                item: if holds { None } else { stored.cloned() },
            });
        }
        if canceled {
            return Ok(Transacted::Canceled(reasons));
        }
        let mut writes: Vec<(String, TableKey, Option<Item>)> = Vec::new();
        for (action, (table, key)) in actions.iter().zip(&named) {
            let stored = state.tables[table].items.get(key);
            let new = match action {
                TransactWrite::Put { item, .. } => Some(item.clone()),
                TransactWrite::Update {
                    key: key_item,
                    update,
                    ..
                } => {
                    let mut new = stored.cloned().unwrap_or_else(|| key_item.clone());
                    update
                        .try_apply(&mut new)
                        .map_err(|why| validation(OP, why))?;
                    check_size(&new, OP)?;
                    Some(new)
                }
                TransactWrite::Delete { .. } => None,
                TransactWrite::Check { .. } => continue,
            };
            writes.push((table.clone(), key.clone(), new));
        }
        for (table, key, new) in writes {
            let items = &mut state.table(&table, OP)?.items;
            match new {
                Some(item) => {
                    items.insert(key, item);
                }
                None => {
                    items.remove(&key);
                }
            }
        }
        state.transactions.insert(token.to_owned(), named);
        Ok(Transacted::Committed)
    }

    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, "DeleteItem")?;
        let k = t.key_of(key, "DeleteItem")?;
        if let Some(c) = condition {
            if !c.evaluate(t.items.get(&k)) {
                return Ok(Conditional::Failed(t.items.get(&k).cloned()));
            }
        }
        Ok(Conditional::Applied(t.items.remove(&k)))
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        yield_now().await;
        self.lock().buckets.entry(bucket.to_owned()).or_default();
        Ok(())
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        yield_now().await;
        Ok(self.lock().buckets.contains_key(bucket))
    }

    async fn configure_bucket(&self, spec: &BucketSpec) -> Result<()> {
        yield_now().await;
        const OP: &str = "PutBucketLifecycleConfiguration";
        if [
            spec.abort_incomplete_multipart_days,
            spec.noncurrent_version_expiry_days,
        ]
        .contains(&Some(0))
        {
            return Err(Error::Backend {
                service: "memory",
                operation: OP,
                code: Some("InvalidArgument".into()),
                retryable: false,
                message: "'Days' in a lifecycle rule must be a positive integer".into(),
                source: None,
            });
        }
        if !self.lock().buckets.contains_key(&spec.name) {
            return Err(Error::Backend {
                service: "memory",
                operation: "PutPublicAccessBlock",
                code: Some("NoSuchBucket".into()),
                retryable: false,
                message: "The specified bucket does not exist".into(),
                source: None,
            });
        }
        // Objects in memory are never public nor stored anywhere: the settings
        // hold by construction, and there are no versions or abandoned parts to
        // expire beyond what `abort_multipart_upload` removes.
        Ok(())
    }

    async fn put_object(&self, request: PutObject) -> Result<PutOutcome> {
        request.complete_after.wait().await;
        yield_now().await;
        if request.key.is_empty() || request.key.len() > MAX_KEY_BYTES {
            return Err(Error::Backend {
                service: "memory",
                operation: "PutObject",
                code: Some("KeyTooLongError".into()),
                retryable: false,
                message: format!("key of {} bytes", request.key.len()),
                source: None,
            });
        }
        if crate::blob::md5_of(&request.body).await.base64 != request.content_md5 {
            return Err(Error::Backend {
                service: "memory",
                operation: "PutObject",
                code: Some("BadDigest".into()),
                retryable: false,
                message: "the Content-MD5 you specified did not match what we received".into(),
                source: None,
            });
        }
        let mut state = self.lock();
        let objects = state.bucket(&request.bucket, "PutObject")?;
        if request.if_none_match && objects.contains_key(&request.key) {
            return Ok(PutOutcome::AlreadyExisted);
        }
        objects.insert(
            request.key,
            MemObject {
                object: StoredObject {
                    body: request.body,
                    metadata: request.metadata,
                    content_type: Some(request.content_type),
                    content_encoding: request.content_encoding,
                },
                last_modified: SystemTime::now(),
            },
        );
        Ok(PutOutcome::Created)
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<StoredObject>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, "GetObject")?
            .get(key)
            .map(|o| o.object.clone()))
    }

    async fn get_object_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<ObjectRange>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, "GetObject")?
            .get(key)
            .map(|o| ObjectRange::cut(&o.object.body, range)))
    }

    /// `memory://{bucket}/{key}?expires={unix seconds}`: names the object, but no
    /// HTTP client can fetch it (there is no server).
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String> {
        self.lock().bucket(bucket, "GetObject")?;
        let expires = SystemTime::now()
            .checked_add(expires_in)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok(format!("memory://{bucket}/{key}?expires={expires}"))
    }

    /// Answers at most 16 MB of items, as DynamoDB does; the keys beyond come
    /// back unprocessed.
    async fn batch_get_item(
        &self,
        table: &str,
        keys: &[Item],
        _consistent: bool,
    ) -> Result<BatchPage> {
        yield_now().await;
        const LIMIT: usize = 16 * 1024 * 1024;
        if keys.len() > MAX_BATCH_GET {
            return Err(validation(
                "BatchGetItem",
                format!("{} keys, more than {MAX_BATCH_GET}", keys.len()),
            ));
        }
        let mut state = self.lock();
        let t = state.table(table, "BatchGetItem")?;
        let mut seen = std::collections::HashSet::new();
        let mut page = BatchPage::default();
        let mut size = 0;
        for key in keys {
            let k = t.key_of(key, "BatchGetItem")?;
            if !seen.insert(k.clone()) {
                return Err(validation(
                    "BatchGetItem",
                    "Provided list of item keys contains duplicates",
                ));
            }
            if size >= LIMIT {
                page.unprocessed.push(key.clone());
                continue;
            }
            if let Some(item) = t.items.get(&k) {
                size += item_size(item);
                page.items.push(item.clone());
            }
        }
        Ok(page)
    }

    async fn create_multipart_upload(&self, request: &MultipartStart) -> Result<String> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(&request.bucket, "CreateMultipartUpload")?;
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        state.uploads.insert(
            id.clone(),
            MemUpload {
                bucket: request.bucket.clone(),
                key: request.key.clone(),
                content_type: request.content_type.clone(),
                content_encoding: request.content_encoding.clone(),
                metadata: request.metadata.clone(),
                parts: BTreeMap::new(),
                initiated: SystemTime::now(),
            },
        );
        Ok(id)
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
        yield_now().await;
        if number == 0 || u64::from(number) > MAX_PARTS {
            return Err(s3_error(
                "UploadPart",
                "InvalidArgument",
                format!("part number {number} is outside 1..={MAX_PARTS}"),
            ));
        }
        let md5 = crate::blob::md5_of(&body).await;
        if md5.base64 != content_md5 {
            return Err(s3_error(
                "UploadPart",
                "BadDigest",
                "the Content-MD5 you specified did not match what we received",
            ));
        }
        let mut state = self.lock();
        let upload = state
            .uploads
            .get_mut(upload_id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| s3_error("UploadPart", "NoSuchUpload", "no such upload"))?;
        let etag = format!("\"{}\"", md5.hex);
        upload.parts.insert(number, (etag.clone(), body));
        Ok(etag)
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match: bool,
    ) -> Result<PutOutcome> {
        yield_now().await;
        const OP: &str = "CompleteMultipartUpload";
        let mut state = self.lock();
        let upload = state
            .uploads
            .get(upload_id)
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| s3_error(OP, "NoSuchUpload", "no such upload"))?;
        if parts.is_empty() {
            return Err(s3_error(OP, "MalformedXML", "no parts"));
        }
        let mut body = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 && parts[i - 1].number >= part.number {
                return Err(s3_error(OP, "InvalidPartOrder", "parts out of order"));
            }
            let (etag, bytes) = upload
                .parts
                .get(&part.number)
                .filter(|(etag, _)| *etag == part.etag)
                .ok_or_else(|| s3_error(OP, "InvalidPart", format!("part {}", part.number)))?;
            if i + 1 < parts.len() && (bytes.len() as u64) < MIN_PART_BYTES {
                return Err(s3_error(
                    OP,
                    "EntityTooSmall",
                    format!("part {} ({etag}) is below the minimum size", part.number),
                ));
            }
            body.extend_from_slice(bytes);
        }
        let object = MemObject {
            object: StoredObject {
                body: body.into(),
                metadata: upload.metadata.clone(),
                content_type: Some(upload.content_type.clone()),
                content_encoding: upload.content_encoding.clone(),
            },
            last_modified: SystemTime::now(),
        };
        let objects = state.bucket(bucket, OP)?;
        if if_none_match && objects.contains_key(key) {
            // As S3: the upload stays open, to be aborted.
            return Ok(PutOutcome::AlreadyExisted);
        }
        objects.insert(key.to_owned(), object);
        state.uploads.remove(upload_id);
        Ok(PutOutcome::Created)
    }

    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        yield_now().await;
        let mut state = self.lock();
        if state
            .uploads
            .get(upload_id)
            .is_some_and(|u| u.bucket == bucket && u.key == key)
        {
            state.uploads.remove(upload_id);
        }
        Ok(())
    }

    async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<MultipartInfo>> {
        yield_now().await;
        let mut state = self.lock();
        state.bucket(bucket, "ListMultipartUploads")?;
        let mut uploads: Vec<MultipartInfo> = state
            .uploads
            .iter()
            .filter(|(_, u)| u.bucket == bucket && u.key.starts_with(prefix))
            .map(|(id, u)| MultipartInfo {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: Some(u.initiated),
            })
            .collect();
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(uploads)
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        yield_now().await;
        let mut state = self.lock();
        Ok(state
            .bucket(bucket, "HeadObject")?
            .get(key)
            .map(|o| o.info(key)))
    }

    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(&request.table, "Scan")?;
        let view = t.view(None, "Scan")?;
        let start = match &request.start {
            Some(item) => Some(t.key_of(item, "Scan")?),
            None => None,
        };
        let in_segment = |k: &(KeyValue, Option<KeyValue>)| match request.segment {
            None => true,
            Some((segment, total)) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&k.0, &mut h);
                std::hash::Hasher::finish(&h) % u64::from(total.max(1)) == u64::from(segment)
            }
        };
        let lower = match &start {
            Some(s) => std::ops::Bound::Excluded(s),
            None => std::ops::Bound::Unbounded,
        };
        let items: Vec<&Item> = t
            .items
            .range((lower, std::ops::Bound::Unbounded))
            .filter(|(k, _)| in_segment(k))
            .map(|(_, i)| i)
            .collect();
        Ok(view.page(
            items,
            request.limit,
            request.filter.as_ref(),
            request.projection.as_deref(),
        ))
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        _attempts: Attempts,
    ) -> Result<Vec<(String, String)>> {
        yield_now().await;
        if keys.len() > crate::backend::MAX_DELETE_BATCH {
            return Err(Error::Backend {
                service: "memory",
                operation: "DeleteObjects",
                code: Some("MalformedXML".into()),
                retryable: false,
                message: format!("{} keys in one request", keys.len()),
                source: None,
            });
        }
        let mut state = self.lock();
        let objects = state.bucket(bucket, "DeleteObjects")?;
        for k in keys {
            objects.remove(k);
        }
        Ok(Vec::new())
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ObjectPage> {
        yield_now().await;
        const PAGE: usize = 1000;
        let mut state = self.lock();
        let objects = state.bucket(bucket, "ListObjectsV2")?;
        let start = continuation.unwrap_or_default();
        let mut page: Vec<ObjectInfo> = objects
            .range::<String, _>((
                std::ops::Bound::Excluded(&start),
                std::ops::Bound::Unbounded,
            ))
            .filter(|(k, _)| k.starts_with(prefix))
            .take(PAGE + 1)
            .map(|(k, o)| o.info(k))
            .collect();
        let next = if page.len() > PAGE {
            page.truncate(PAGE);
            page.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ObjectPage {
            objects: page,
            next,
        })
    }
}
