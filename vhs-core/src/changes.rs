//! Changes to an item: the argument of `update_large`, and large values to stage.

use std::fmt;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use serde::Serialize;

use crate::blob::Blob;
use crate::condition::{Condition, IntoAttributeValue, SetExpr};
use crate::error::{Error, Result};
use crate::model::{derive_support, LargeValue, Model};

/// Large values to upload, by attribute: `Some(blob)` writes an object, `None`
/// removes the attribute. The argument of [`Store::put_s3`](crate::Store::put_s3).
pub struct LargeValues<M> {
    pub(crate) values: Vec<(usize, Option<Blob>)>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> LargeValues<M> {
    /// No values.
    pub fn new() -> Self {
        LargeValues {
            values: Vec::new(),
            _model: PhantomData,
        }
    }

    /// Every large attribute of `item` (`None` fields included, as removals).
    pub fn of(item: &M) -> Result<Self> {
        let values = item.encode_large()?.into_iter().enumerate().collect();
        Ok(LargeValues {
            values,
            _model: PhantomData,
        })
    }

    /// Sets the bytes of one large attribute by name (`None`: remove it).
    pub fn with(self, attr: &str, bytes: Option<Bytes>) -> Result<Self> {
        self.with_blob(attr, bytes.map(Blob::from))
    }

    /// Sets one large attribute by name to a [`Blob`] (bytes in memory or a file;
    /// `None`: remove it).
    pub fn with_blob(mut self, attr: &str, blob: Option<Blob>) -> Result<Self> {
        let index = M::SCHEMA.require_large(attr)?;
        self.insert(index, blob);
        Ok(self)
    }

    fn insert(&mut self, index: usize, bytes: Option<Blob>) {
        match self.values.iter_mut().find(|(i, _)| *i == index) {
            Some(slot) => slot.1 = bytes,
            None => self.values.push((index, bytes)),
        }
    }

    /// Whether no attribute is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<M: Model> Default for LargeValues<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> Clone for LargeValues<M> {
    fn clone(&self) -> Self {
        LargeValues {
            values: self.values.clone(),
            _model: PhantomData,
        }
    }
}

impl<M: Model> fmt::Debug for LargeValues<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (i, v) in &self.values {
            m.entry(&M::SCHEMA.large[*i].name, &v.as_ref().map(Blob::len));
        }
        m.finish()
    }
}

/// Changes to a stored item: new large values, ordinary attributes to set or
/// remove, atomic operations on ordinary attributes (`add`, `append_to_list`,
/// `set_if_not_exists`, `delete_from_set`), and an optional condition. The
/// argument of `update_large`.
///
/// Each ordinary attribute gets one operation: a later call naming the same
/// attribute replaces the earlier one (DynamoDB refuses an update naming an
/// attribute twice).
///
/// `#[derive(Model)]` generates a typed builder, `{Model}Update`, with one
/// `set_<field>` method per field (and `add_<field>`, `append_<field>`,
/// `set_<field>_if_not_exists` where the field's type fits), that converts
/// into this.
pub struct Changes<M> {
    pub(crate) large: LargeValues<M>,
    pub(crate) set: Vec<(&'static str, AttributeValue)>,
    pub(crate) remove: Vec<&'static str>,
    pub(crate) set_expr: Vec<(&'static str, SetExpr)>,
    pub(crate) add: Vec<(&'static str, AttributeValue)>,
    pub(crate) delete: Vec<(&'static str, AttributeValue)>,
    pub(crate) condition: Option<Condition>,
    pub(crate) expected_version: Option<u64>,
    pub(crate) error: Option<Error>,
}

impl<M: Model> Changes<M> {
    /// No changes.
    pub fn new() -> Self {
        Changes {
            large: LargeValues::new(),
            set: Vec::new(),
            remove: Vec::new(),
            set_expr: Vec::new(),
            add: Vec::new(),
            delete: Vec::new(),
            condition: None,
            expected_version: None,
            error: None,
        }
    }

    /// For a model with a `#[vhs(version)]` attribute: the version the caller read.
    /// The update succeeds only if the stored version is still `version`, and
    /// writes `version + 1`; otherwise [`Error::VersionConflict`].
    pub fn if_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Sets an ordinary (not large, not key) attribute; a value that serializes to
    /// null removes the attribute.
    pub fn set<T: Serialize + ?Sized>(mut self, name: &'static str, value: &T) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Removes an ordinary attribute.
    pub fn remove(mut self, name: &'static str) -> Self {
        self.forget(name);
        self.remove.push(name);
        self
    }

    /// DynamoDB's `ADD name value`, atomic on the service: a number (any Rust
    /// number) is added to the number attribute, a set (`AttributeValue::Ss`,
    /// `Ns` or `Bs`, non-empty) has its members added to the set attribute.
    /// An absent attribute starts at 0 or the empty set. A stored attribute of
    /// another type fails the update with DynamoDB's `ValidationException`.
    pub fn add(mut self, name: &'static str, value: impl IntoAttributeValue) -> Self {
        self.add_attr_value(name, value.into_attribute_value());
        self
    }

    /// `ADD name {members}` on a string set attribute: the members added (the
    /// set created if absent).
    pub fn add_to_string_set<S: Into<String>>(
        self,
        name: &'static str,
        members: impl IntoIterator<Item = S>,
    ) -> Self {
        let members = members.into_iter().map(Into::into).collect();
        self.add(name, AttributeValue::Ss(members))
    }

    /// DynamoDB's `DELETE name set`: the members of `set` (`AttributeValue::Ss`,
    /// `Ns` or `Bs`, non-empty) removed from the set attribute, which is
    /// removed when it becomes empty; an absent attribute stays absent.
    pub fn delete_from_set(mut self, name: &'static str, set: AttributeValue) -> Self {
        self.forget(name);
        self.delete.push((name, set));
        self
    }

    /// `DELETE name {members}` on a string set attribute.
    pub fn delete_from_string_set<S: Into<String>>(
        self,
        name: &'static str,
        members: impl IntoIterator<Item = S>,
    ) -> Self {
        let members = members.into_iter().map(Into::into).collect();
        self.delete_from_set(name, AttributeValue::Ss(members))
    }

    /// DynamoDB's `SET name = list_append(name, values)`: `values` (serialized
    /// as a list) appended to the list attribute, atomically. As on DynamoDB,
    /// the attribute must exist: an absent one fails the update with a
    /// `ValidationException` (use [`Changes::append_to_list_or_create`]).
    pub fn append_to_list<T: Serialize>(mut self, name: &'static str, values: &[T]) -> Self {
        self.append_attr(name, values, false);
        self
    }

    /// `SET name = list_append(if_not_exists(name, []), values)`: appended, or
    /// the list created with `values` if the attribute is absent.
    pub fn append_to_list_or_create<T: Serialize>(
        mut self,
        name: &'static str,
        values: &[T],
    ) -> Self {
        self.append_attr(name, values, true);
        self
    }

    /// DynamoDB's `SET name = if_not_exists(name, value)`: sets the attribute
    /// only if the stored item does not have it.
    pub fn set_if_not_exists<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        value: &T,
    ) -> Self {
        self.set_if_not_exists_attr(name, value);
        self
    }

    /// Sets a large attribute from its bytes (`None`: remove it and its object).
    pub fn set_large_bytes(self, name: &str, bytes: Option<Bytes>) -> Self {
        self.set_large_blob(name, bytes.map(Blob::from))
    }

    /// Sets a large attribute to a [`Blob`] (bytes in memory or a file; `None`:
    /// remove it and its object).
    pub fn set_large_blob(mut self, name: &str, blob: Option<Blob>) -> Self {
        match std::mem::take(&mut self.large).with_blob(name, blob) {
            Ok(l) => self.large = l,
            Err(e) => self.record(e),
        }
        self
    }

    /// Adds a condition on the stored item; several are combined with AND.
    pub fn condition(mut self, condition: Condition) -> Self {
        self.and_condition(condition);
        self
    }

    /// The large values these changes upload.
    pub fn large_values(&self) -> &LargeValues<M> {
        &self.large
    }

    /// Whether nothing is changed.
    pub fn is_empty(&self) -> bool {
        self.large.is_empty()
            && self.set.is_empty()
            && self.remove.is_empty()
            && self.set_expr.is_empty()
            && self.add.is_empty()
            && self.delete.is_empty()
    }

    /// Drops every operation on `name` (the next one replaces them).
    fn forget(&mut self, name: &str) {
        self.set.retain(|(n, _)| *n != name);
        self.remove.retain(|n| *n != name);
        self.set_expr.retain(|(n, _)| *n != name);
        self.add.retain(|(n, _)| *n != name);
        self.delete.retain(|(n, _)| *n != name);
    }

    #[doc(hidden)]
    pub fn set_attr<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) {
        match derive_support::to_attr(name, value) {
            Ok(AttributeValue::Null(_)) => {
                self.forget(name);
                self.remove.push(name);
            }
            Ok(v) => {
                self.forget(name);
                self.set.push((name, v));
            }
            Err(e) => self.record(e),
        }
    }

    /// Sets (or, for `None`, removes) the `#[vhs(ttl)]` attribute `name` as a
    /// Number of epoch seconds: a later time extends the item's life.
    #[doc(hidden)]
    pub fn set_ttl_attr<T: crate::model::TtlType>(&mut self, name: &'static str, value: &T) {
        self.forget(name);
        match value.to_ttl_value() {
            Some(v) => self.set.push((name, v)),
            None => self.remove.push(name),
        }
    }

    #[doc(hidden)]
    pub fn add_attr_value(&mut self, name: &'static str, value: AttributeValue) {
        self.forget(name);
        self.add.push((name, value));
    }

    #[doc(hidden)]
    pub fn add_attr<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) {
        match derive_support::to_attr(name, value) {
            Ok(v) => self.add_attr_value(name, v),
            Err(e) => self.record(e),
        }
    }

    #[doc(hidden)]
    pub fn append_attr<T: Serialize>(&mut self, name: &'static str, values: &[T], create: bool) {
        match derive_support::to_attr(name, values) {
            Ok(v) => {
                self.forget(name);
                self.set_expr.push((
                    name,
                    match create {
                        true => SetExpr::AppendOrCreate(v),
                        false => SetExpr::Append(v),
                    },
                ));
            }
            Err(e) => self.record(e),
        }
    }

    #[doc(hidden)]
    pub fn set_if_not_exists_attr<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) {
        match derive_support::to_attr(name, value) {
            // Nothing to set if absent: no change.
            Ok(AttributeValue::Null(_)) => self.forget(name),
            Ok(v) => {
                self.forget(name);
                self.set_expr.push((name, SetExpr::IfNotExists(v)));
            }
            Err(e) => self.record(e),
        }
    }

    #[doc(hidden)]
    pub fn set_large_value<T: LargeValue>(&mut self, index: usize, value: &Option<T>) {
        let name = M::SCHEMA.large[index].name;
        match derive_support::encode_large(name, value) {
            Ok(bytes) => self.large.insert(index, bytes),
            Err(e) => self.record(e),
        }
    }

    #[doc(hidden)]
    pub fn and_condition(&mut self, condition: Condition) {
        self.condition = Some(match self.condition.take() {
            Some(c) => c.and(condition),
            None => condition,
        });
    }

    fn record(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Checks the changes against the schema before anything is written.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(Error::invalid(format!("bad change: {e}")));
        }
        let schema = M::SCHEMA;
        let names = self
            .set
            .iter()
            .map(|(n, _)| *n)
            .chain(self.remove.iter().copied())
            .chain(self.set_expr.iter().map(|(n, _)| *n))
            .chain(self.add.iter().map(|(n, _)| *n))
            .chain(self.delete.iter().map(|(n, _)| *n));
        for name in names {
            if name == schema.hash_key.name || schema.range_key.is_some_and(|r| r.name == name) {
                return Err(Error::invalid(format!(
                    "`{name}` is a key attribute; keys cannot be changed by an update"
                )));
            }
            if name.starts_with("vhs:") {
                return Err(Error::invalid(format!(
                    "`{name}` is reserved: attributes starting with `vhs:` are vhs's own bookkeeping"
                )));
            }
            if schema.large_index(name).is_some() {
                return Err(Error::invalid(format!(
                    "`{name}` is a large attribute; set it with its large setter, not as an ordinary attribute"
                )));
            }
        }
        Ok(())
    }
}

impl<M: Model> Default for Changes<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Model> fmt::Debug for Changes<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("large", &self.large)
            .field("set", &self.set.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("remove", &self.remove)
            .field(
                "set_expr",
                &self.set_expr.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("add", &self.add.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field(
                "delete",
                &self.delete.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("condition", &self.condition)
            .finish()
    }
}
