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
    /// `contains(name, text)`: the string attribute contains `text`, or the
    /// string set attribute has it as a member.
    Contains(String, String),
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
    /// The string attribute contains `text` (or the string set has it).
    pub fn contains(name: impl Into<String>, text: impl Into<String>) -> Self {
        Condition::Contains(name.into(), text.into())
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
            Condition::Contains(n, text) => match get(n) {
                Some(AttributeValue::S(s)) => s.contains(text.as_str()),
                Some(AttributeValue::Ss(set)) => set.iter().any(|m| m == text),
                _ => false,
            },
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
            Condition::Contains(n, text) => format!(
                "contains({}, {})",
                placeholders.name(n),
                placeholders.value(AttributeValue::S(text.clone()))
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
            Condition::BeginsWith(n, p) | Condition::Contains(n, p) => {
                n.hash(state);
                p.hash(state);
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

/// A backend-neutral `UpdateItem`: attributes to set, to remove, and numbers
/// to add to.
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
    }
}

impl ItemUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies the update to an item in place. An `ADD` to an attribute that
    /// is not an integer replaces it (DynamoDB refuses that request; vhs never
    /// sends one).
    pub fn apply(&self, item: &mut Item) {
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
        if !self.set.is_empty() {
            let set: Vec<String> = self
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
            parts.push(format!("SET {}", set.join(", ")));
        }
        if !self.remove.is_empty() {
            let rm: Vec<String> = self.remove.iter().map(|n| placeholders.name(n)).collect();
            parts.push(format!("REMOVE {}", rm.join(", ")));
        }
        if !self.add.is_empty() {
            let add: Vec<String> = self
                .add
                .iter()
                .map(|(n, by)| {
                    format!(
                        "{} {}",
                        placeholders.name(n),
                        placeholders.value(AttributeValue::N(by.to_string()))
                    )
                })
                .collect();
            parts.push(format!("ADD {}", add.join(", ")));
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
