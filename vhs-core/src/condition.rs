//! Backend-neutral conditions and updates.
//!
//! Conditions are data, not expression strings: the DynamoDB backend renders them
//! into a `ConditionExpression` with placeholder names and values (so no attribute
//! name can break the expression), and the in-memory backend evaluates them directly.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::model::Item;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// A condition on top-level attributes of the stored item.
///
/// ```
/// use vhs_core::Condition;
/// let c = Condition::eq("status", "draft").and(Condition::exists("owner"));
/// # let _ = c;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `attribute_exists(name)`
    Exists(String),
    /// `attribute_not_exists(name)`
    NotExists(String),
    /// `name <op> value`
    Compare(String, Cmp, AttributeValue),
    /// `begins_with(name, prefix)`
    BeginsWith(String, String),
    /// `name BETWEEN low AND high` (both bounds included).
    Between(String, AttributeValue, AttributeValue),
    /// `contains(name, operand)`: the string attribute contains the string
    /// `operand`; the set or list attribute has `operand` as a member.
    Contains(String, AttributeValue),
    /// `name IN (v1, v2, ...)`: the attribute equals one of the values (1 to
    /// [`MAX_IN_VALUES`]).
    In(String, Vec<AttributeValue>),
    /// `size(name) <op> n`: the size of the attribute (UTF-8 bytes of a string,
    /// bytes of a binary, elements of a list, map or set) compared with `n`.
    Size(String, Cmp, u64),
    /// `attribute_type(name, type)`: the attribute has the DynamoDB type
    /// `type` (`S`, `SS`, `N`, `NS`, `B`, `BS`, `BOOL`, `NULL`, `L` or `M`).
    AttributeType(String, String),
    /// A condition whose value could not be encoded (from a typed
    /// [`Attr`](crate::Attr)): the store refuses it with
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) before sending
    /// anything, and it never holds.
    Invalid(String),
    /// All of them hold.
    And(Vec<Condition>),
    /// At least one holds.
    Or(Vec<Condition>),
    /// It does not hold.
    Not(Box<Condition>),
}

/// Most values of one `IN` condition (DynamoDB's limit).
pub const MAX_IN_VALUES: usize = 100;

/// The DynamoDB type names [`Condition::attribute_type`] accepts.
pub const ATTRIBUTE_TYPES: [&str; 10] = ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];

/// The DynamoDB type name of a value (`S`, `N`, `SS`, ...).
pub fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        _ => "unknown",
    }
}

/// DynamoDB's `size(..)` of a value: UTF-8 bytes of a string, bytes of a
/// binary, elements of a list, map or set; `None` for other types.
pub fn size_of(value: &AttributeValue) -> Option<u64> {
    let n = match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.len(),
        AttributeValue::Bs(v) => v.len(),
        AttributeValue::L(v) => v.len(),
        AttributeValue::M(m) => m.len(),
        _ => return None,
    };
    Some(n as u64)
}

/// A `size(name)` being compared: built by [`Condition::size`].
#[derive(Debug, Clone)]
pub struct SizeOf(String);

impl SizeOf {
    fn cmp(self, op: Cmp, n: u64) -> Condition {
        Condition::Size(self.0, op, n)
    }
    /// The size is `n`.
    pub fn eq(self, n: u64) -> Condition {
        self.cmp(Cmp::Eq, n)
    }
    /// The size is not `n`.
    pub fn ne(self, n: u64) -> Condition {
        self.cmp(Cmp::Ne, n)
    }
    /// The size is less than `n`.
    pub fn lt(self, n: u64) -> Condition {
        self.cmp(Cmp::Lt, n)
    }
    /// The size is at most `n`.
    pub fn le(self, n: u64) -> Condition {
        self.cmp(Cmp::Le, n)
    }
    /// The size is greater than `n`.
    pub fn gt(self, n: u64) -> Condition {
        self.cmp(Cmp::Gt, n)
    }
    /// The size is at least `n`.
    pub fn ge(self, n: u64) -> Condition {
        self.cmp(Cmp::Ge, n)
    }
}

/// Conversion of plain Rust values into attribute values for conditions.
pub trait IntoAttributeValue {
    /// The value as a DynamoDB attribute.
    fn into_attribute_value(self) -> AttributeValue;
}

impl IntoAttributeValue for AttributeValue {
    fn into_attribute_value(self) -> AttributeValue {
        self
    }
}
impl IntoAttributeValue for &str {
    fn into_attribute_value(self) -> AttributeValue {
        AttributeValue::S(self.to_owned())
    }
}
impl IntoAttributeValue for String {
    fn into_attribute_value(self) -> AttributeValue {
        AttributeValue::S(self)
    }
}
impl IntoAttributeValue for bool {
    fn into_attribute_value(self) -> AttributeValue {
        AttributeValue::Bool(self)
    }
}
macro_rules! number_value {
    ($($t:ty),*) => {$(
        impl IntoAttributeValue for $t {
            fn into_attribute_value(self) -> AttributeValue {
                AttributeValue::N(self.to_string())
            }
        }
    )*};
}
number_value!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

impl Condition {
    /// The attribute exists.
    pub fn exists(name: impl Into<String>) -> Self {
        Condition::Exists(name.into())
    }
    /// The attribute does not exist.
    pub fn not_exists(name: impl Into<String>) -> Self {
        Condition::NotExists(name.into())
    }
    /// The attribute equals `value`.
    pub fn eq(name: impl Into<String>, value: impl IntoAttributeValue) -> Self {
        Condition::Compare(name.into(), Cmp::Eq, value.into_attribute_value())
    }
    /// The attribute differs from `value` (or is absent).
    pub fn ne(name: impl Into<String>, value: impl IntoAttributeValue) -> Self {
        Condition::Compare(name.into(), Cmp::Ne, value.into_attribute_value())
    }
    /// The attribute is less than `value`.
    pub fn lt(name: impl Into<String>, value: impl IntoAttributeValue) -> Self {
        Condition::Compare(name.into(), Cmp::Lt, value.into_attribute_value())
    }
    /// The attribute is at most `value`.
    pub fn le(name: impl Into<String>, value: impl IntoAttributeValue) -> Self {
        Condition::Compare(name.into(), Cmp::Le, value.into_attribute_value())
    }
    /// The attribute is greater than `value`.
    pub fn gt(name: impl Into<String>, value: impl IntoAttributeValue) -> Self {
        Condition::Compare(name.into(), Cmp::Gt, value.into_attribute_value())
    }
    /// The attribute is at least `value`.
    pub fn ge(name: impl Into<String>, value: impl IntoAttributeValue) -> Self {
        Condition::Compare(name.into(), Cmp::Ge, value.into_attribute_value())
    }
    /// The string attribute starts with `prefix`.
    pub fn begins_with(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        Condition::BeginsWith(name.into(), prefix.into())
    }
    /// DynamoDB's `contains(name, operand)`: the string attribute contains the
    /// string `operand`, or the set or list attribute has `operand` as a member
    /// (`Condition::contains("tags", "rust")` on a string set or a list of
    /// strings, `Condition::contains("scores", 7)` on a number set or list).
    pub fn contains(name: impl Into<String>, operand: impl IntoAttributeValue) -> Self {
        Condition::Contains(name.into(), operand.into_attribute_value())
    }
    /// `name IN (values)`: the attribute equals one of `values` (1 to
    /// [`MAX_IN_VALUES`] of them; otherwise the condition is refused with
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) before anything is sent).
    pub fn is_in<V: IntoAttributeValue>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let name = name.into();
        let values: Vec<AttributeValue> = values
            .into_iter()
            .map(IntoAttributeValue::into_attribute_value)
            .collect();
        if values.is_empty() || values.len() > MAX_IN_VALUES {
            return Condition::Invalid(format!(
                "`{name}` IN takes 1 to {MAX_IN_VALUES} values, not {}",
                values.len()
            ));
        }
        Condition::In(name, values)
    }
    /// DynamoDB's `size(name)`, to compare: `Condition::size("tags").gt(2)`.
    /// The size of a string is its UTF-8 length in bytes, of a binary its
    /// bytes, of a list, map or set its elements; a missing attribute, or a
    /// number or boolean, makes the comparison false.
    pub fn size(name: impl Into<String>) -> SizeOf {
        SizeOf(name.into())
    }
    /// `attribute_type(name, type)`: the attribute exists with the DynamoDB
    /// type `type` (`"S"`, `"SS"`, `"N"`, `"NS"`, `"B"`, `"BS"`, `"BOOL"`,
    /// `"NULL"`, `"L"`, `"M"`; another name is refused with
    /// [`Error::InvalidInput`](crate::Error::InvalidInput)).
    pub fn attribute_type(name: impl Into<String>, type_name: &str) -> Self {
        let name = name.into();
        if !ATTRIBUTE_TYPES.contains(&type_name) {
            return Condition::Invalid(format!(
                "`{type_name}` is not a DynamoDB type for attribute_type on `{name}`; one of {ATTRIBUTE_TYPES:?}"
            ));
        }
        Condition::AttributeType(name, type_name.to_owned())
    }
    /// The attribute is between `low` and `high`, both included.
    pub fn between(
        name: impl Into<String>,
        low: impl IntoAttributeValue,
        high: impl IntoAttributeValue,
    ) -> Self {
        Condition::Between(
            name.into(),
            low.into_attribute_value(),
            high.into_attribute_value(),
        )
    }
    /// Both hold.
    pub fn and(self, other: Condition) -> Self {
        match self {
            Condition::And(mut all) => {
                all.push(other);
                Condition::And(all)
            }
            c => Condition::And(vec![c, other]),
        }
    }
    /// Either holds.
    pub fn or(self, other: Condition) -> Self {
        match self {
            Condition::Or(mut any) => {
                any.push(other);
                Condition::Or(any)
            }
            c => Condition::Or(vec![c, other]),
        }
    }
    /// Negation (also available as the `!` operator).
    pub fn negate(self) -> Self {
        Condition::Not(Box::new(self))
    }

    /// Evaluates the condition against an item (`None`: no item stored), with
    /// DynamoDB's semantics: comparisons with a missing attribute or a value of
    /// another type are false, except `<>` which is true.
    pub fn evaluate(&self, item: Option<&Item>) -> bool {
        let get = |name: &str| item.and_then(|i| i.get(name));
        match self {
            Condition::Exists(n) => get(n).is_some(),
            Condition::NotExists(n) => get(n).is_none(),
            Condition::Compare(n, op, v) => match (get(n).and_then(|a| compare(a, v)), op) {
                (None, Cmp::Ne) => true,
                (None, _) => false,
                (Some(o), Cmp::Eq) => o == Ordering::Equal,
                (Some(o), Cmp::Ne) => o != Ordering::Equal,
                (Some(o), Cmp::Lt) => o == Ordering::Less,
                (Some(o), Cmp::Le) => o != Ordering::Greater,
                (Some(o), Cmp::Gt) => o == Ordering::Greater,
                (Some(o), Cmp::Ge) => o != Ordering::Less,
            },
            Condition::BeginsWith(n, p) => {
                matches!(get(n), Some(AttributeValue::S(s)) if s.starts_with(p.as_str()))
            }
            Condition::Between(n, low, high) => get(n).is_some_and(|a| {
                compare(a, low).is_some_and(|o| o != Ordering::Less)
                    && compare(a, high).is_some_and(|o| o != Ordering::Greater)
            }),
            Condition::Contains(n, operand) => match (get(n), operand) {
                (Some(AttributeValue::S(s)), AttributeValue::S(text)) => s.contains(text.as_str()),
                (Some(AttributeValue::Ss(set)), AttributeValue::S(m)) => set.contains(m),
                (Some(AttributeValue::Ns(set)), AttributeValue::N(_)) => set.iter().any(|m| {
                    compare(&AttributeValue::N(m.clone()), operand) == Some(Ordering::Equal)
                }),
                (Some(AttributeValue::Bs(set)), AttributeValue::B(b)) => set.contains(b),
                (Some(AttributeValue::L(list)), _) => list
                    .iter()
                    .any(|e| e == operand || compare(e, operand) == Some(Ordering::Equal)),
                _ => false,
            },
            Condition::In(n, values) => get(n).is_some_and(|a| {
                values
                    .iter()
                    .any(|v| compare(a, v) == Some(Ordering::Equal))
            }),
            Condition::Size(n, op, want) => match get(n).and_then(size_of) {
                None => false,
                Some(size) => {
                    let o = size.cmp(want);
                    match op {
                        Cmp::Eq => o == Ordering::Equal,
                        Cmp::Ne => o != Ordering::Equal,
                        Cmp::Lt => o == Ordering::Less,
                        Cmp::Le => o != Ordering::Greater,
                        Cmp::Gt => o == Ordering::Greater,
                        Cmp::Ge => o != Ordering::Less,
                    }
                }
            },
            Condition::AttributeType(n, t) => get(n).is_some_and(|a| type_name(a) == t),
            Condition::Invalid(_) => false,
            Condition::And(all) => all.iter().all(|c| c.evaluate(item)),
            Condition::Or(any) => any.iter().any(|c| c.evaluate(item)),
            Condition::Not(c) => !c.evaluate(item),
        }
    }

    /// The first value that could not be encoded ([`Condition::Invalid`]), as
    /// an error to report before anything is sent.
    pub fn check(&self) -> crate::error::Result<()> {
        match self {
            Condition::Invalid(reason) => Err(crate::error::Error::invalid(reason.clone())),
            Condition::And(all) | Condition::Or(all) => all.iter().try_for_each(Condition::check),
            Condition::Not(c) => c.check(),
            _ => Ok(()),
        }
    }

    /// Renders a `ConditionExpression`, adding placeholders to `names` and `values`.
    pub fn render(&self, placeholders: &mut Placeholders) -> String {
        match self {
            Condition::Exists(n) => format!("attribute_exists({})", placeholders.name(n)),
            Condition::NotExists(n) => format!("attribute_not_exists({})", placeholders.name(n)),
            Condition::Compare(n, op, v) => format!(
                "{} {} {}",
                placeholders.name(n),
                op.symbol(),
                placeholders.value(v.clone())
            ),
            Condition::BeginsWith(n, p) => format!(
                "begins_with({}, {})",
                placeholders.name(n),
                placeholders.value(AttributeValue::S(p.clone()))
            ),
            Condition::Between(n, low, high) => format!(
                "{} BETWEEN {} AND {}",
                placeholders.name(n),
                placeholders.value(low.clone()),
                placeholders.value(high.clone())
            ),
            Condition::Contains(n, operand) => format!(
                "contains({}, {})",
                placeholders.name(n),
                placeholders.value(operand.clone())
            ),
            Condition::In(n, values) => {
                let name = placeholders.name(n);
                let values: Vec<String> = values
                    .iter()
                    .map(|v| placeholders.value(v.clone()))
                    .collect();
                format!("{name} IN ({})", values.join(", "))
            }
            Condition::Size(n, op, size) => format!(
                "size({}) {} {}",
                placeholders.name(n),
                op.symbol(),
                placeholders.value(AttributeValue::N(size.to_string()))
            ),
            Condition::AttributeType(n, t) => format!(
                "attribute_type({}, {})",
                placeholders.name(n),
                placeholders.value(AttributeValue::S(t.clone()))
            ),
            Condition::Invalid(_) => {
                let n = placeholders.name("__vhs_none__");
                format!("attribute_exists({n}) AND attribute_not_exists({n})")
            }
            Condition::And(all) if all.is_empty() => {
                let n = placeholders.name("__vhs_none__");
                format!("attribute_exists({n}) OR attribute_not_exists({n})")
            }
            Condition::And(all) => join(all, " AND ", placeholders),
            Condition::Or(any) if any.is_empty() => {
                let n = placeholders.name("__vhs_none__");
                format!("attribute_exists({n}) AND attribute_not_exists({n})")
            }
            Condition::Or(any) => join(any, " OR ", placeholders),
            Condition::Not(c) => format!("NOT ({})", c.render(placeholders)),
        }
    }
}

// Conditions and updates are values: the protocol's model checker stores them
// in its states, which it hashes.
impl Eq for Condition {}

impl Hash for Condition {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Condition::Exists(n) | Condition::NotExists(n) | Condition::Invalid(n) => n.hash(state),
            Condition::Compare(n, op, v) => {
                n.hash(state);
                (*op as u8).hash(state);
                hash_value(v, state);
            }
            Condition::BeginsWith(n, p) | Condition::AttributeType(n, p) => {
                n.hash(state);
                p.hash(state);
            }
            Condition::Contains(n, v) => {
                n.hash(state);
                hash_value(v, state);
            }
            Condition::In(n, values) => {
                n.hash(state);
                values.iter().for_each(|v| hash_value(v, state));
            }
            Condition::Size(n, op, size) => {
                n.hash(state);
                (*op as u8).hash(state);
                size.hash(state);
            }
            Condition::Between(n, low, high) => {
                n.hash(state);
                hash_value(low, state);
                hash_value(high, state);
            }
            Condition::And(all) | Condition::Or(all) => all.hash(state),
            Condition::Not(c) => c.hash(state),
        }
    }
}

/// Hashes an attribute value by its content (map entries in key order).
pub(crate) fn hash_value<H: Hasher>(value: &AttributeValue, state: &mut H) {
    std::mem::discriminant(value).hash(state);
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.hash(state),
        AttributeValue::B(b) => b.as_ref().hash(state),
        AttributeValue::Bool(b) | AttributeValue::Null(b) => b.hash(state),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.hash(state),
        AttributeValue::Bs(v) => v.iter().for_each(|b| b.as_ref().hash(state)),
        AttributeValue::L(v) => v.iter().for_each(|e| hash_value(e, state)),
        AttributeValue::M(m) => hash_item(m, state),
        _ => {}
    }
}

/// Hashes an item by its content, attributes in name order.
pub(crate) fn hash_item<H: Hasher>(item: &Item, state: &mut H) {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    names.len().hash(state);
    for n in names {
        n.hash(state);
        hash_value(&item[n], state);
    }
}

impl std::ops::Not for Condition {
    type Output = Condition;
    fn not(self) -> Condition {
        self.negate()
    }
}

fn join(parts: &[Condition], sep: &str, placeholders: &mut Placeholders) -> String {
    parts
        .iter()
        .map(|c| format!("({})", c.render(placeholders)))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Orders two attribute values of the same scalar type as DynamoDB does
/// (numbers numerically, strings and binaries bytewise); `None` for other pairs.
pub(crate) fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::N(x), AttributeValue::N(y)) => compare_numbers(x, y),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (AttributeValue::Bool(x), AttributeValue::Bool(y)) if x == y => Some(Ordering::Equal),
        (AttributeValue::Null(_), AttributeValue::Null(_)) => Some(Ordering::Equal),
        (x, y) if std::mem::discriminant(x) == std::mem::discriminant(y) => {
            (x == y).then_some(Ordering::Equal)
        }
        _ => None,
    }
}

/// Numeric comparison of two decimal strings; integers compare exactly at any size.
fn compare_numbers(x: &str, y: &str) -> Option<Ordering> {
    if let (Ok(a), Ok(b)) = (x.trim().parse::<i128>(), y.trim().parse::<i128>()) {
        return Some(a.cmp(&b));
    }
    let (a, b) = (x.trim().parse::<f64>().ok()?, y.trim().parse::<f64>().ok()?);
    a.partial_cmp(&b)
}

/// Expression placeholders (`#n0` for names, `:v0` for values) built while rendering.
#[derive(Debug, Default, Clone)]
pub struct Placeholders {
    /// `ExpressionAttributeNames`.
    pub names: HashMap<String, String>,
    /// `ExpressionAttributeValues`.
    pub values: HashMap<String, AttributeValue>,
    tag: &'static str,
}

impl Placeholders {
    /// Placeholders whose names carry `tag` (e.g. `#vhs0`), so fragments rendered
    /// separately can be merged into one expression without clashes.
    pub fn with_tag(tag: &'static str) -> Self {
        Placeholders {
            tag,
            ..Default::default()
        }
    }

    /// The placeholder for an attribute name (reused when the name repeats).
    pub fn name(&mut self, name: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == name) {
            return k.clone();
        }
        let k = format!("#{}n{}", self.tag, self.names.len());
        self.names.insert(k.clone(), name.to_owned());
        k
    }

    /// A fresh placeholder for a value.
    pub fn value(&mut self, value: AttributeValue) -> String {
        let k = format!(":{}v{}", self.tag, self.values.len());
        self.values.insert(k.clone(), value);
        k
    }
}

/// The right-hand side of a `SET` that reads the stored attribute it sets.
#[derive(Debug, Clone, PartialEq)]
pub enum SetExpr {
    /// `name = if_not_exists(name, value)`: set only if the attribute is absent.
    IfNotExists(AttributeValue),
    /// `name = list_append(name, list)`: the list's elements appended; the
    /// attribute must exist and be a list.
    Append(AttributeValue),
    /// `name = list_append(if_not_exists(name, []), list)`: appended, or the
    /// attribute created with the list if absent.
    AppendOrCreate(AttributeValue),
}

/// An operation of an `UpdateItem` that reads the stored attribute it writes.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOp {
    /// `SET name = if_not_exists(..)` / `list_append(..)`.
    Set(SetExpr),
    /// `ADD name value`: a number (`N`) added to the number attribute, or a set
    /// (`SS`, `NS`, `BS`, non-empty) whose members are added to the set
    /// attribute; an absent attribute starts at 0 or the empty set.
    Add(AttributeValue),
    /// `DELETE name set`: the set's members removed from the set attribute
    /// (the attribute removed when it becomes empty).
    Delete(AttributeValue),
}

/// A backend-neutral `UpdateItem`: attributes to set, to remove, and numbers
/// to add to.
///
/// Each attribute name appears in at most one of its lists (DynamoDB refuses
/// an expression whose paths overlap).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemUpdate {
    /// `SET name = value`.
    pub set: Vec<(String, AttributeValue)>,
    /// `REMOVE name`.
    pub remove: Vec<String>,
    /// `ADD name number`: the number attribute increased by it (created with
    /// it if absent). vhs counts deletion marks this way: a count never
    /// returns to a value it had, whichever copy of a request lands when.
    pub add: Vec<(String, i64)>,
    /// The operations that read the attribute they write (`if_not_exists`,
    /// `list_append`, `ADD` of any number or set, `DELETE`).
    pub ops: Vec<(String, UpdateOp)>,
}

impl Eq for ItemUpdate {}

impl Hash for ItemUpdate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.set.len().hash(state);
        for (n, v) in &self.set {
            n.hash(state);
            hash_value(v, state);
        }
        self.remove.hash(state);
        self.add.hash(state);
        self.ops.len().hash(state);
        for (n, op) in &self.ops {
            n.hash(state);
            let (tag, v) = match op {
                UpdateOp::Set(SetExpr::IfNotExists(v)) => (0u8, v),
                UpdateOp::Set(SetExpr::Append(v)) => (1, v),
                UpdateOp::Set(SetExpr::AppendOrCreate(v)) => (2, v),
                UpdateOp::Add(v) => (3, v),
                UpdateOp::Delete(v) => (4, v),
            };
            tag.hash(state);
            hash_value(v, state);
        }
    }
}

/// Why an update cannot apply to an item, as DynamoDB words it.
const WRONG_TYPE: &str = "An operand in the update expression has an incorrect data type";

/// The sum of two DynamoDB numbers, exact for up to 38 significant digits
/// (fixed point at the larger scale of the two); `None` if either is not a
/// number or the sum does not fit.
fn add_numbers(a: &str, b: &str) -> Option<String> {
    fn parse(s: &str) -> Option<(i128, u32)> {
        let s = s.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let scale = u32::try_from(frac.len()).ok()?;
        let mut v: i128 = 0;
        for c in int.bytes().chain(frac.bytes()) {
            v = v.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
        }
        Some((if neg { -v } else { v }, scale))
    }
    let ((x, sx), (y, sy)) = (parse(a)?, parse(b)?);
    let scale = sx.max(sy);
    let x = x.checked_mul(10i128.checked_pow(scale - sx)?)?;
    let y = y.checked_mul(10i128.checked_pow(scale - sy)?)?;
    let sum = x.checked_add(y)?;
    if scale == 0 {
        return Some(sum.to_string());
    }
    let sign = if sum < 0 { "-" } else { "" };
    let digits = format!(
        "{:0>width$}",
        sum.unsigned_abs(),
        width = scale as usize + 1
    );
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    let frac = frac.trim_end_matches('0');
    Some(match frac.is_empty() {
        true => format!("{sign}{int}"),
        false => format!("{sign}{int}.{frac}"),
    })
}

/// The union (`add`) or difference of two sets of the same type; `None` if
/// they are not sets of one type.
fn combine_sets(
    stored: &AttributeValue,
    operand: &AttributeValue,
    add: bool,
) -> Option<AttributeValue> {
    fn merge<T: Clone + PartialEq>(mut a: Vec<T>, b: &[T], add: bool) -> Vec<T> {
        if add {
            for m in b {
                if !a.contains(m) {
                    a.push(m.clone());
                }
            }
        } else {
            a.retain(|m| !b.contains(m));
        }
        a
    }
    Some(match (stored, operand) {
        (AttributeValue::Ss(a), AttributeValue::Ss(b)) => {
            AttributeValue::Ss(merge(a.clone(), b, add))
        }
        (AttributeValue::Ns(a), AttributeValue::Ns(b)) => {
            // Numbers are members by value: `1` and `1.0` are one member.
            let same = |x: &String, y: &String| compare_numbers(x, y) == Some(Ordering::Equal);
            let mut out = a.clone();
            if add {
                for m in b {
                    if !out.iter().any(|x| same(x, m)) {
                        out.push(m.clone());
                    }
                }
            } else {
                out.retain(|x| !b.iter().any(|m| same(x, m)));
            }
            AttributeValue::Ns(out)
        }
        (AttributeValue::Bs(a), AttributeValue::Bs(b)) => {
            AttributeValue::Bs(merge(a.clone(), b, add))
        }
        _ => return None,
    })
}

fn is_set(value: &AttributeValue) -> bool {
    matches!(
        value,
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
    )
}

fn empty_set(value: &AttributeValue) -> bool {
    match value {
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.is_empty(),
        AttributeValue::Bs(v) => v.is_empty(),
        _ => false,
    }
}

impl ItemUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.add.is_empty() && self.ops.is_empty()
    }

    /// The operand of each `ADD` or `DELETE` operation `which` selects.
    fn op_values(
        &self,
        which: impl Fn(&UpdateOp) -> bool,
    ) -> impl Iterator<Item = (&String, &AttributeValue)> {
        self.ops
            .iter()
            .filter(move |(_, op)| which(op))
            .filter_map(|(n, op)| match op {
                UpdateOp::Add(v) | UpdateOp::Delete(v) => Some((n, v)),
                UpdateOp::Set(_) => None,
            })
    }

    /// Every attribute name the update writes, in any of its clauses.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.set
            .iter()
            .map(|(n, _)| n)
            .chain(&self.remove)
            .chain(self.add.iter().map(|(n, _)| n))
            .chain(self.ops.iter().map(|(n, _)| n))
    }

    /// Checks the operands on their own, as DynamoDB does before reading the
    /// item: an `ADD` takes a number or a non-empty set, a `DELETE` a
    /// non-empty set, a `list_append` a list, and no name appears twice.
    /// The message is DynamoDB's reason, for a `ValidationException`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for n in self.names() {
            if !seen.insert(n) {
                return Err(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; `{n}` appears twice"
                ));
            }
        }
        for (n, v) in self.op_values(|op| matches!(op, UpdateOp::Add(_))) {
            if !(matches!(v, AttributeValue::N(_)) || is_set(v)) || empty_set(v) {
                return Err(format!(
                    "Invalid UpdateExpression: {WRONG_TYPE}; ADD `{n}` takes a number or a non-empty set, not {}",
                    type_name(v)
                ));
            }
            if let AttributeValue::N(x) = v {
                if add_numbers(x, "0").is_none() {
                    return Err(format!("ADD `{n}`: `{x}` is not a number"));
                }
            }
        }
        for (n, v) in self.op_values(|op| matches!(op, UpdateOp::Delete(_))) {
            if !is_set(v) || empty_set(v) {
                return Err(format!(
                    "Invalid UpdateExpression: {WRONG_TYPE}; DELETE `{n}` takes a non-empty set, not {}",
                    type_name(v)
                ));
            }
        }
        for (n, op) in &self.ops {
            if let UpdateOp::Set(SetExpr::Append(v) | SetExpr::AppendOrCreate(v)) = op {
                if !matches!(v, AttributeValue::L(_)) {
                    return Err(format!(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append, operand type: {} (on `{n}`)",
                        type_name(v)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies the update to an item in place with DynamoDB's semantics, or
    /// says why DynamoDB would refuse it (a `ValidationException`'s message)
    /// and leaves the item unchanged: an `ADD` or `DELETE` to an attribute of
    /// another type, a `list_append` to an absent attribute or to one that is
    /// not a list. Every right-hand side reads the item as it was before.
    pub fn try_apply(&self, item: &mut Item) -> std::result::Result<(), String> {
        self.validate()?;
        let before = item.clone();
        let mut new = item.clone();
        let sets = self.ops.iter().filter_map(|(n, op)| match op {
            UpdateOp::Set(e) => Some((n, e)),
            _ => None,
        });
        for (n, e) in sets {
            let value = match (e, before.get(n)) {
                (SetExpr::IfNotExists(_), Some(_)) => continue,
                (SetExpr::IfNotExists(v), None) => v.clone(),
                (SetExpr::Append(_), None) => {
                    return Err(format!(
                        "The provided expression refers to an attribute that does not exist in the item (list_append on `{n}`)"
                    ))
                }
                (SetExpr::AppendOrCreate(v), None) => v.clone(),
                (
                    SetExpr::Append(AttributeValue::L(more))
                    | SetExpr::AppendOrCreate(AttributeValue::L(more)),
                    Some(AttributeValue::L(list)),
                ) => AttributeValue::L(list.iter().chain(more).cloned().collect()),
                (_, Some(other)) => {
                    return Err(format!(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append, operand type: {} (on `{n}`)",
                        type_name(other)
                    ))
                }
            };
            new.insert(n.clone(), value);
        }
        for (n, v) in self.op_values(|op| matches!(op, UpdateOp::Add(_))) {
            let value = match (before.get(n), v) {
                (None, _) => v.clone(),
                (Some(AttributeValue::N(now)), AttributeValue::N(by)) => {
                    AttributeValue::N(add_numbers(now, by).ok_or_else(|| {
                        format!("Number overflow: ADD `{n}` {now} + {by} does not fit 38 digits")
                    })?)
                }
                (Some(stored), _) => combine_sets(stored, v, true).ok_or_else(|| {
                    format!(
                        "{WRONG_TYPE}; ADD `{n}`: stored {}, operand {}",
                        type_name(stored),
                        type_name(v)
                    )
                })?,
            };
            new.insert(n.clone(), value);
        }
        for (n, v) in self.op_values(|op| matches!(op, UpdateOp::Delete(_))) {
            let Some(stored) = before.get(n) else {
                continue;
            };
            let left = combine_sets(stored, v, false).ok_or_else(|| {
                format!(
                    "{WRONG_TYPE}; DELETE `{n}`: stored {}, operand {}",
                    type_name(stored),
                    type_name(v)
                )
            })?;
            match empty_set(&left) {
                true => new.remove(n),
                false => new.insert(n.clone(), left),
            };
        }
        *item = new;
        self.apply_plain(item);
        Ok(())
    }

    /// Applies the update to an item in place; a part DynamoDB would refuse
    /// (see [`ItemUpdate::try_apply`]) leaves the item as it was.
    pub fn apply(&self, item: &mut Item) {
        let mut attempt = item.clone();
        if self.try_apply(&mut attempt).is_ok() {
            *item = attempt;
        } else {
            self.apply_plain(item);
        }
    }

    /// `SET name = value`, `REMOVE` and the integer `ADD`s. An integer `ADD`
    /// to an attribute that is not an integer replaces it (DynamoDB refuses
    /// that request; vhs never sends one).
    fn apply_plain(&self, item: &mut Item) {
        for (n, v) in &self.set {
            item.insert(n.clone(), v.clone());
        }
        for n in &self.remove {
            item.remove(n);
        }
        for (n, by) in &self.add {
            let now = match item.get(n) {
                Some(AttributeValue::N(v)) => v.parse::<i64>().unwrap_or(0),
                _ => 0,
            };
            item.insert(
                n.clone(),
                AttributeValue::N(now.saturating_add(*by).to_string()),
            );
        }
    }

    /// Renders an `UpdateExpression` (`SET ... REMOVE ...`).
    pub fn render(&self, placeholders: &mut Placeholders) -> String {
        let mut parts = Vec::new();
        let set_ops: Vec<(&String, &SetExpr)> = self
            .ops
            .iter()
            .filter_map(|(n, op)| match op {
                UpdateOp::Set(e) => Some((n, e)),
                _ => None,
            })
            .collect();
        if !self.set.is_empty() || !set_ops.is_empty() {
            let mut set: Vec<String> = self
                .set
                .iter()
                .map(|(n, v)| {
                    format!(
                        "{} = {}",
                        placeholders.name(n),
                        placeholders.value(v.clone())
                    )
                })
                .collect();
            for (n, e) in set_ops {
                let name = placeholders.name(n);
                let rhs = match e {
                    SetExpr::IfNotExists(v) => {
                        format!("if_not_exists({name}, {})", placeholders.value(v.clone()))
                    }
                    SetExpr::Append(v) => {
                        format!("list_append({name}, {})", placeholders.value(v.clone()))
                    }
                    SetExpr::AppendOrCreate(v) => {
                        let empty = placeholders.value(AttributeValue::L(Vec::new()));
                        format!(
                            "list_append(if_not_exists({name}, {empty}), {})",
                            placeholders.value(v.clone())
                        )
                    }
                };
                set.push(format!("{name} = {rhs}"));
            }
            parts.push(format!("SET {}", set.join(", ")));
        }
        if !self.remove.is_empty() {
            let rm: Vec<String> = self.remove.iter().map(|n| placeholders.name(n)).collect();
            parts.push(format!("REMOVE {}", rm.join(", ")));
        }
        let add_ops: Vec<_> = self
            .op_values(|op| matches!(op, UpdateOp::Add(_)))
            .collect();
        if !self.add.is_empty() || !add_ops.is_empty() {
            let add: Vec<String> = self
                .add
                .iter()
                .map(|(n, by)| (n, AttributeValue::N(by.to_string())))
                .chain(add_ops.into_iter().map(|(n, v)| (n, v.clone())))
                .map(|(n, v)| format!("{} {}", placeholders.name(n), placeholders.value(v)))
                .collect();
            parts.push(format!("ADD {}", add.join(", ")));
        }
        let delete_ops: Vec<_> = self
            .op_values(|op| matches!(op, UpdateOp::Delete(_)))
            .collect();
        if !delete_ops.is_empty() {
            let delete: Vec<String> = delete_ops
                .into_iter()
                .map(|(n, v)| format!("{} {}", placeholders.name(n), placeholders.value(v.clone())))
                .collect();
            parts.push(format!("DELETE {}", delete.join(", ")));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn evaluates_like_dynamodb() {
        let i = item(&[
            ("n", AttributeValue::N("10".into())),
            ("s", AttributeValue::S("draft-1".into())),
        ]);
        assert!(Condition::exists("n").evaluate(Some(&i)));
        assert!(!Condition::exists("n").evaluate(None));
        assert!(Condition::not_exists("n").evaluate(None));
        assert!(Condition::gt("n", 9).evaluate(Some(&i)));
        assert!(
            Condition::lt("n", 100).evaluate(Some(&i)),
            "numeric, not lexical"
        );
        assert!(
            !Condition::eq("n", "10").evaluate(Some(&i)),
            "type mismatch"
        );
        assert!(Condition::ne("missing", 1).evaluate(Some(&i)));
        assert!(!Condition::eq("missing", 1).evaluate(Some(&i)));
        assert!(Condition::begins_with("s", "draft").evaluate(Some(&i)));
        let c = Condition::eq("s", "x")
            .or(Condition::ge("n", 10))
            .and(!Condition::exists("z"));
        assert!(c.evaluate(Some(&i)));
    }

    #[test]
    fn renders_with_placeholders_only() {
        let mut p = Placeholders::default();
        let c = Condition::exists("pk").and(Condition::eq("a b", 1));
        let s = c.render(&mut p);
        assert_eq!(s, "(attribute_exists(#n0)) AND (#n1 = :v0)");
        assert_eq!(p.names["#n1"], "a b");
        let mut p = Placeholders::with_tag("u");
        let u = ItemUpdate {
            set: vec![("x".into(), AttributeValue::S("1".into()))],
            remove: vec!["y".into()],
            add: vec![("n".into(), 1)],
            ..ItemUpdate::default()
        };
        assert_eq!(
            u.render(&mut p),
            "SET #un0 = :uv0 REMOVE #un1 ADD #un2 :uv1"
        );
        let mut item = Item::new();
        u.apply(&mut item);
        u.apply(&mut item);
        assert_eq!(item["n"], AttributeValue::N("2".into()));
    }
}

#[cfg(test)]
mod calls_tests {
    use super::*;

    fn n(x: &str) -> AttributeValue {
        AttributeValue::N(x.into())
    }

    #[test]
    fn adds_decimal_numbers_exactly() {
        assert_eq!(add_numbers("1", "2").as_deref(), Some("3"));
        assert_eq!(add_numbers("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(add_numbers("-1.5", "1.5").as_deref(), Some("0"));
        assert_eq!(add_numbers("-0.25", "0.2").as_deref(), Some("-0.05"));
        assert_eq!(
            add_numbers("99999999999999999999999999999999999999", "1").as_deref(),
            Some("100000000000000000000000000000000000000")
        );
        assert_eq!(add_numbers("x", "1"), None);
    }

    #[test]
    fn applies_add_append_delete_like_dynamodb() {
        let mut item = Item::new();
        let add = UpdateOp::Add;
        let set = UpdateOp::Set;
        let u = ItemUpdate {
            ops: vec![
                (
                    "list".into(),
                    set(SetExpr::AppendOrCreate(AttributeValue::L(vec![n("1")]))),
                ),
                ("first".into(), set(SetExpr::IfNotExists(n("1")))),
                ("n".into(), add(n("5"))),
                (
                    "tags".into(),
                    add(AttributeValue::Ss(vec!["a".into(), "b".into()])),
                ),
            ],
            ..ItemUpdate::default()
        };
        u.try_apply(&mut item).unwrap();
        u.try_apply(&mut item).unwrap();
        assert_eq!(item["n"], n("10"));
        assert_eq!(
            item["tags"],
            AttributeValue::Ss(vec!["a".into(), "b".into()])
        );
        assert_eq!(item["list"], AttributeValue::L(vec![n("1"), n("1")]));
        assert_eq!(item["first"], n("1"));
        let one = |name: &str, op| ItemUpdate {
            ops: vec![(name.to_owned(), op)],
            ..ItemUpdate::default()
        };
        let strict = one("absent", set(SetExpr::Append(AttributeValue::L(vec![]))));
        let before = item.clone();
        assert!(strict.try_apply(&mut item).is_err());
        assert_eq!(item, before, "a refused update changes nothing");
        assert!(one("tags", add(n("1"))).try_apply(&mut item).is_err());
        item.insert("text".into(), AttributeValue::S("t".into()));
        let not_a_list = one(
            "text",
            set(SetExpr::Append(AttributeValue::L(vec![n("1")]))),
        );
        assert!(not_a_list.try_apply(&mut item).is_err());
        let delete = one(
            "tags",
            UpdateOp::Delete(AttributeValue::Ss(vec!["a".into(), "b".into()])),
        );
        delete.try_apply(&mut item).unwrap();
        assert!(!item.contains_key("tags"), "an emptied set is removed");
        let twice = ItemUpdate {
            set: vec![("n".into(), n("1"))],
            ops: vec![("n".into(), add(n("1")))],
            ..ItemUpdate::default()
        };
        assert!(twice.validate().is_err());
        let mut p = Placeholders::default();
        assert_eq!(
            u.render(&mut p),
            "SET #n0 = list_append(if_not_exists(#n0, :v0), :v1), #n1 = if_not_exists(#n1, :v2) ADD #n2 :v3, #n3 :v4"
        );
    }

    #[test]
    fn evaluates_new_conditions_like_dynamodb() {
        let mut i = Item::new();
        i.insert("s".into(), AttributeValue::S("héllo".into()));
        i.insert(
            "l".into(),
            AttributeValue::L(vec![AttributeValue::S("a".into()), n("2")]),
        );
        i.insert(
            "ns".into(),
            AttributeValue::Ns(vec!["1.0".into(), "3".into()]),
        );
        i.insert("n".into(), n("7"));
        let i = Some(&i);
        assert!(Condition::contains("l", "a").evaluate(i));
        assert!(Condition::contains("l", 2).evaluate(i));
        assert!(!Condition::contains("l", "b").evaluate(i));
        assert!(Condition::contains("ns", 1).evaluate(i));
        assert!(Condition::contains("s", "ll").evaluate(i));
        assert!(Condition::is_in("n", [1, 7]).evaluate(i));
        assert!(!Condition::is_in("n", [1, 8]).evaluate(i));
        assert!(Condition::size("s").eq(6).evaluate(i), "UTF-8 bytes");
        assert!(Condition::size("l").eq(2).evaluate(i));
        assert!(!Condition::size("n").ge(0).evaluate(i));
        assert!(!Condition::size("missing").ge(0).evaluate(i));
        assert!(Condition::attribute_type("ns", "NS").evaluate(i));
        assert!(!Condition::attribute_type("ns", "SS").evaluate(i));
        assert!(Condition::attribute_type("ns", "X").check().is_err());
        assert!(Condition::is_in("n", Vec::<i32>::new()).check().is_err());
        assert!(Condition::is_in("n", 0..101).check().is_err());
        let mut p = Placeholders::default();
        let c = Condition::is_in("n", [1, 2])
            .and(Condition::size("s").gt(3))
            .and(Condition::attribute_type("s", "S"));
        assert_eq!(
            c.render(&mut p),
            "(#n0 IN (:v0, :v1)) AND (size(#n1) > :v2) AND (attribute_type(#n1, :v3))"
        );
    }
}
