//! Rendering conditions into expressions, evaluating them locally, hashing them.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;

use super::{size_of, type_name, Cmp, Condition};
use crate::model::Item;

impl Condition {
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
            // One condition alone: no parentheses of its own (DynamoDB refuses
            // redundant ones, such as `((a = :v))` for a nested one).
            Condition::And(all) | Condition::Or(all) if all.len() == 1 => {
                all[0].render(placeholders)
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
pub(super) fn compare_numbers(x: &str, y: &str) -> Option<Ordering> {
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
