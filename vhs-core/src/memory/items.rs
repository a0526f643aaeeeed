//! Tables in memory: items, keys, indexes, queries and scans, conditional
//! writes and transactions.

use super::*;

/// An item's key as the table orders it.
pub(super) type TableKey = (KeyValue, Option<KeyValue>);

#[derive(Debug)]
pub(super) struct Table {
    pub(super) spec: TableSpec,
    pub(super) items: BTreeMap<TableKey, Item>,
    /// The table's stream, once `spec.streams` is on (`streams.rs`).
    pub(super) stream: Option<super::streams::MemStream>,
}

impl Table {
    /// Sets (`Some`) or removes (`None`) the item at `key` and returns the old
    /// one: every item mutation goes through here, so the stream records it
    /// (one record per change, none for a write that changes nothing). A TTL
    /// reaper's removal passes `by_ttl: true` (recorded with DynamoDB's service
    /// identity).
    pub(super) fn write(&mut self, key: TableKey, new: Option<Item>, by_ttl: bool) -> Option<Item> {
        let old = match &new {
            Some(item) => self.items.insert(key, item.clone()),
            None => self.items.remove(&key),
        };
        if self.spec.streams {
            let keys = self.key_attrs(new.as_ref().or(old.as_ref()));
            self.stream
                .get_or_insert_with(|| super::streams::MemStream::new(&self.spec.name))
                .record(keys, old.as_ref(), new.as_ref(), by_ttl);
        }
        old
    }

    /// The key attributes of `item` (empty for `None`).
    fn key_attrs(&self, item: Option<&Item>) -> Item {
        let Some(item) = item else {
            return Item::new();
        };
        std::iter::once(&self.spec.hash_key.0)
            .chain(self.spec.range_key.as_ref().map(|r| &r.0))
            .filter_map(|n| Some((n.clone(), item.get(n)?.clone())))
            .collect()
    }

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
pub(super) struct View<'a> {
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
pub(super) fn matches_kind(kind: KeyKind, value: &AttributeValue) -> bool {
    matches!(
        (kind, value),
        (KeyKind::String, AttributeValue::S(_)) | (KeyKind::Number, AttributeValue::N(_))
    )
}

/// A range key condition must be one comparison (not `<>`), `BETWEEN` or
/// `begins_with` (strings only) on the range key, with values of its type.
pub(super) fn check_range(view: &View, range: &Condition) -> Result<()> {
    let bad = |why: &str| {
        Err(validation(
            Op::Query.name(),
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
pub(super) fn check_indexes(spec: &TableSpec) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for index in &spec.indexes {
        if !(3..=255).contains(&index.name.len()) || !names.insert(&index.name) {
            return Err(validation(
                Op::CreateTable.name(),
                format!("invalid or duplicate index name {:?}", index.name),
            ));
        }
        if index.kind == IndexKind::Local
            && (index.hash_key != spec.hash_key || index.range_key.is_none())
        {
            return Err(validation(
                Op::CreateTable.name(),
                format!(
                    "local index {} must have the table's hash key and a range key",
                    index.name
                ),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl ItemCalls for MemoryBackend {
    async fn get_item(&self, table: &str, key: &Item, _consistent: bool) -> Result<Option<Item>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, Op::GetItem.name())?;
        let k = t.key_of(key, Op::GetItem.name())?;
        Ok(t.items.get(&k).cloned())
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
                Op::BatchGetItem.name(),
                format!("{} keys, more than {MAX_BATCH_GET}", keys.len()),
            ));
        }
        let mut state = self.lock();
        let t = state.table(table, Op::BatchGetItem.name())?;
        let mut seen = std::collections::HashSet::new();
        let mut page = BatchPage::default();
        let mut size = 0;
        for key in keys {
            let k = t.key_of(key, Op::BatchGetItem.name())?;
            if !seen.insert(k.clone()) {
                return Err(validation(
                    Op::BatchGetItem.name(),
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

    async fn put_item(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        yield_now().await;
        check_size(&item, Op::PutItem.name())?;
        let mut state = self.lock();
        let t = state.table(table, Op::PutItem.name())?;
        let k = t.key_of(&item, Op::PutItem.name())?;
        if let Some(c) = condition {
            if !c.evaluate(t.items.get(&k)) {
                return Ok(Conditional::Failed(t.items.get(&k).cloned()));
            }
        }
        Ok(Conditional::Applied(t.write(k, Some(item), false)))
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
        let t = state.table(table, Op::UpdateItem.name())?;
        let k = t.key_of(key, Op::UpdateItem.name())?;
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
                Op::UpdateItem.name(),
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
            .map_err(|why| validation(Op::UpdateItem.name(), why))?;
        check_size(&new, Op::UpdateItem.name())?;
        t.write(k, Some(new), false);
        Ok(Conditional::Applied(old))
    }

    async fn delete_item(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Conditional<Option<Item>>> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(table, Op::DeleteItem.name())?;
        let k = t.key_of(key, Op::DeleteItem.name())?;
        if let Some(c) = condition {
            if !c.evaluate(t.items.get(&k)) {
                return Ok(Conditional::Failed(t.items.get(&k).cloned()));
            }
        }
        Ok(Conditional::Applied(t.write(k, None, false)))
    }

    async fn query(&self, request: &Query) -> Result<QueryPage> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(&request.table, Op::Query.name())?;
        let view = t.view(request.index.as_deref(), Op::Query.name())?;
        if request.consistent && view.global {
            return Err(validation(
                Op::Query.name(),
                "Consistent reads are not supported on global secondary indexes",
            ));
        }
        let (name, value) = &request.hash_key;
        if *name != view.hash.0 || !matches_kind(view.hash.1, value) {
            return Err(validation(
                Op::Query.name(),
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

    async fn scan(&self, request: &Scan) -> Result<QueryPage> {
        yield_now().await;
        let mut state = self.lock();
        let t = state.table(&request.table, Op::Scan.name())?;
        let view = t.view(None, Op::Scan.name())?;
        let start = match &request.start {
            Some(item) => Some(t.key_of(item, Op::Scan.name())?),
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

    async fn transact_write(&self, actions: &[TransactWrite], token: &str) -> Result<Transacted> {
        const OP: &str = Op::TransactWriteItems.name();
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
            state.table(&table, OP)?.write(key, new, false);
        }
        state.transactions.insert(token.to_owned(), named);
        Ok(Transacted::Committed)
    }
}
