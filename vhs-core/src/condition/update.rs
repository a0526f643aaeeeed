//! Backend-neutral updates: rendering and local application.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;

use super::expr::{compare_numbers, hash_value};
use super::{type_name, Placeholders};
use crate::model::Item;

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
pub(super) fn add_numbers(a: &str, b: &str) -> Option<String> {
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
