//! The derive input as a small model: the struct and its fields, each with its
//! attribute name and role.

use quote::quote;
use syn::ext::IdentExt;
use syn::{
    Data, DeriveInput, Error, Fields, GenericArgument, Generics, Ident, PathArguments, Type,
    Visibility,
};

use crate::attr::{self, ContainerAttrs, FieldAttrs};
use crate::Errors;

/// A secondary index, gathered from the fields that name it.
pub struct Index<'a> {
    pub name: String,
    pub global: bool,
    /// The first mention, for error spans.
    pub span: &'a syn::LitStr,
    pub hash: Vec<&'a Field<'a>>,
    pub range: Vec<&'a Field<'a>>,
}

pub struct Input<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub generics: &'a Generics,
    pub attrs: ContainerAttrs,
    pub fields: Vec<Field<'a>>,
    /// Whether an attribute of a field could not be parsed, in which case checks
    /// across fields (like "no hash key") would only add noise.
    pub field_attr_errors: bool,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub attrs: FieldAttrs<'a>,
    /// The attribute name: `rename`, else the field's name without `r#`.
    pub name: String,
    pub role: Role<'a>,
}

#[derive(Clone, Copy)]
pub enum Role<'a> {
    HashKey,
    RangeKey,
    /// A `#[large]` field of type `Option<inner>`.
    Large {
        inner: &'a Type,
    },
    /// The `#[vhs(version)]` field: an ordinary attribute that the store writes.
    Version,
    Plain,
}

impl<'a> Input<'a> {
    /// `None` (with the error recorded) unless the input is a struct with named
    /// fields.
    pub fn from_syn(node: &'a DeriveInput, errors: &mut Errors) -> Option<Self> {
        let data = match &node.data {
            Data::Struct(data) => data,
            Data::Enum(data) => {
                let (enum_token, ident) = (data.enum_token, &node.ident);
                errors.push(Error::new_spanned(
                    quote!(#enum_token #ident),
                    "`#[derive(Model)]` only supports structs with named fields, not enums",
                ));
                return None;
            }
            Data::Union(data) => {
                let (union_token, ident) = (data.union_token, &node.ident);
                errors.push(Error::new_spanned(
                    quote!(#union_token #ident),
                    "`#[derive(Model)]` only supports structs with named fields, not unions",
                ));
                return None;
            }
        };
        let fields = match &data.fields {
            Fields::Named(fields) => fields,
            Fields::Unnamed(fields) => {
                errors.push(Error::new_spanned(
                    fields,
                    "`#[derive(Model)]` does not support tuple structs: every field needs a name, which is its attribute name",
                ));
                return None;
            }
            Fields::Unit => {
                errors.push(Error::new_spanned(
                    &node.ident,
                    "`#[derive(Model)]` does not support unit structs: a model needs named fields, one of them the hash key",
                ));
                return None;
            }
        };
        let attrs = attr::container(&node.attrs, errors);
        let errors_before = errors.len();
        let fields = fields
            .named
            .iter()
            .filter_map(|field| Field::from_syn(field, errors))
            .collect();
        Some(Input {
            ident: &node.ident,
            vis: &node.vis,
            generics: &node.generics,
            attrs,
            fields,
            field_attr_errors: errors.len() > errors_before,
        })
    }

    /// The table name: `table`, else the struct's name.
    pub fn table(&self) -> String {
        match &self.attrs.table {
            Some(table) => table.value(),
            None => self.ident.unraw().to_string(),
        }
    }

    pub fn hash_key(&self) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| matches!(field.role, Role::HashKey))
    }

    pub fn range_key(&self) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| matches!(field.role, Role::RangeKey))
    }

    /// The `#[vhs(updated_at)]` field, if any.
    pub fn updated_at(&self) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| field.attrs.updated_at.is_some())
    }

    /// The `#[vhs(ttl)]` field, if any.
    pub fn ttl(&self) -> Option<&Field<'a>> {
        self.fields.iter().find(|field| field.attrs.ttl.is_some())
    }

    /// The `#[vhs(version)]` field, if any.
    pub fn version(&self) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| matches!(field.role, Role::Version))
    }

    /// The secondary indexes, in order of first mention. A local index's hash
    /// key is the table's.
    pub fn indexes(&'a self) -> Vec<Index<'a>> {
        use crate::attr::IndexRole;
        let mut out: Vec<Index> = Vec::new();
        for field in &self.fields {
            for (role, name) in field.attrs.index_keys() {
                let global = role != IndexRole::Lsi;
                let at = match out.iter().position(|i| i.name == name.value()) {
                    Some(at) => at,
                    None => {
                        out.push(Index {
                            name: name.value(),
                            global,
                            span: name,
                            hash: Vec::new(),
                            range: Vec::new(),
                        });
                        out.len() - 1
                    }
                };
                let index = &mut out[at];
                index.global &= global;
                match role {
                    IndexRole::GsiHash => index.hash.push(field),
                    IndexRole::GsiRange | IndexRole::Lsi => index.range.push(field),
                }
            }
        }
        out
    }

    /// The `#[large]` fields, in field order, which is the schema's order.
    pub fn large(&self) -> impl Iterator<Item = (&Field<'a>, &'a Type)> {
        self.fields.iter().filter_map(|field| match field.role {
            Role::Large { inner } => Some((field, inner)),
            _ => None,
        })
    }
}

impl<'a> Field<'a> {
    fn from_syn(node: &'a syn::Field, errors: &mut Errors) -> Option<Self> {
        let ident = node.ident.as_ref()?;
        let attrs = attr::field(&node.attrs, errors);
        let name = match &attrs.rename {
            Some(rename) => rename.value(),
            None => ident.unraw().to_string(),
        };
        let role = if attrs.hash_key.is_some() {
            Role::HashKey
        } else if attrs.range_key.is_some() {
            Role::RangeKey
        } else if attrs.large.is_some() {
            // Validation reports a `#[large]` field that is not an `Option`.
            Role::Large {
                inner: option_inner(&node.ty).unwrap_or(&node.ty),
            }
        } else if attrs.version.is_some() {
            // Validation reports a version on a key or `#[large]` field.
            Role::Version
        } else {
            Role::Plain
        };
        Some(Field {
            ident,
            ty: &node.ty,
            attrs,
            name,
            role,
        })
    }

    pub fn is_key(&self) -> bool {
        matches!(self.role, Role::HashKey | Role::RangeKey)
    }

    /// A key of the table or of a secondary index, or the `updated_at`
    /// timestamp: written in its key form (a timestamp as canonical text).
    pub fn is_any_key(&self) -> bool {
        self.is_key() || self.attrs.index_keys().next().is_some() || self.attrs.updated_at.is_some()
    }
}

/// `T` if `ty` is written `Option<T>` (or `std::option::Option<T>`, ...).
pub fn option_inner(ty: &Type) -> Option<&Type> {
    single_argument_of(ty, "Option")
}

/// `T` if `ty` is written `Vec<T>` (or `std::vec::Vec<T>`, ...).
pub fn vec_inner(ty: &Type) -> Option<&Type> {
    single_argument_of(ty, "Vec")
}

/// `T` if `ty` is a path ending in `name<T>`.
fn single_argument_of<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match (args.args.len(), args.args.first()?) {
        (1, GenericArgument::Type(inner)) => Some(inner),
        _ => None,
    }
}

/// Whether the type is written as one of Rust's number types (`u32`, `f64`, ...).
pub fn is_number(ty: &Type) -> bool {
    const NUMBERS: [&str; 14] = [
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
        "f32", "f64",
    ];
    match ungroup(ty) {
        Type::Path(path) if path.qself.is_none() && path.path.segments.len() == 1 => {
            let last = &path.path.segments[0];
            last.arguments.is_none() && NUMBERS.iter().any(|n| last.ident == n)
        }
        _ => false,
    }
}

/// Whether the type is written `String` (or `std::string::String`, ...).
pub fn is_string(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "String" && last.arguments.is_none()),
        _ => false,
    }
}

/// Types coming from `macro_rules!` fragments may be wrapped in invisible groups.
fn ungroup(mut ty: &Type) -> &Type {
    while let Type::Group(group) = ty {
        ty = &group.elem;
    }
    ty
}
