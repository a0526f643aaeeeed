//! Backend-neutral conditions and updates.
//!
//! Conditions are data, not expression strings: the DynamoDB backend renders them
//! into a `ConditionExpression` with placeholder names and values (so no attribute
//! name can break the expression), and the in-memory backend evaluates them directly.

use aws_sdk_dynamodb::types::AttributeValue;

mod expr;
mod update;

#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod tests;

pub use expr::Placeholders;
pub(crate) use expr::{compare, hash_item};
pub use update::{ItemUpdate, SetExpr, UpdateOp};

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
}

impl std::ops::Not for Condition {
    type Output = Condition;
    fn not(self) -> Condition {
        self.negate()
    }
}
