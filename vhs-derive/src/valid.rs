//! Checks across attributes and fields. Types that are only known to be wrong
//! after type checking (a key that is not `String` or an integer, a large value
//! that is not a `LargeValue`, a version that is not an integer) are left to trait
//! bounds in the generated code.

use std::collections::HashMap;

use syn::{Error, Generics};

use crate::ast::{option_inner, Field, Input};
use crate::Errors;

pub fn validate(input: &Input, errors: &mut Errors) {
    check_generics(input.generics, errors);
    check_keys(input, errors);
    check_version(input, errors);
    check_updated_at(input, errors);
    check_ttl(input, errors);
    for field in &input.fields {
        check_field(field, errors);
    }
    check_names(input, errors);
    check_indexes(input, errors);
    check_projections(input, errors);
}

fn check_projections(input: &Input, errors: &mut Errors) {
    let indexes = input.indexes();
    let mut seen: Vec<String> = Vec::new();
    for projection in &input.attrs.projections {
        let name = projection.name.value();
        let Some(index) = indexes.iter().find(|i| i.name == name) else {
            errors.push(Error::new_spanned(
                &projection.name,
                format!("no field is a key of index `{name}`: declare it with `gsi_hash`/`gsi_range` or `lsi` on the fields first"),
            ));
            continue;
        };
        if seen.contains(&name) {
            errors.push(Error::new_spanned(
                &projection.name,
                format!("duplicate projection of index `{name}`"),
            ));
        }
        seen.push(name.clone());
        for attr in &projection.include {
            let field = input.fields.iter().find(|f| f.name == attr.value());
            let key = field.is_some_and(|f| {
                f.is_key()
                    || index
                        .hash
                        .iter()
                        .chain(&index.range)
                        .any(|k| k.name == f.name)
            });
            if field.is_none() || key {
                errors.push(Error::new_spanned(
                    attr,
                    format!(
                        "`{}` is not a non-key attribute of this model: `include` lists attributes (by their names in the item) that are neither the table's keys nor the index's",
                        attr.value()
                    ),
                ));
            }
        }
    }
}

/// DynamoDB's rule for index names.
fn valid_index_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_indexes(input: &Input, errors: &mut Errors) {
    use crate::attr::IndexRole;
    for field in &input.fields {
        let mut seen: Vec<String> = Vec::new();
        for (role, name) in field.attrs.index_keys() {
            if field.attrs.large.is_some() {
                errors.push(Error::new_spanned(
                    name,
                    format!(
                        "a `#[large]` field cannot be a key of index `{}`: index keys are top-level attributes of the DynamoDB item, and a large value lives in S3",
                        name.value()
                    ),
                ));
                continue;
            }
            if !valid_index_name(&name.value()) {
                errors.push(Error::new_spanned(
                    name,
                    "index names are 3 to 255 characters: letters, digits, `_`, `-` and `.`",
                ));
                continue;
            }
            if seen.contains(&name.value()) {
                errors.push(Error::new_spanned(
                    name,
                    format!(
                        "field `{}` is already a key of index `{}`: a field is the hash key or the range key of an index, not both",
                        field.ident,
                        name.value()
                    ),
                ));
            }
            seen.push(name.value());
            if role == IndexRole::Lsi && input.range_key().is_none() && !input.field_attr_errors {
                errors.push(Error::new_spanned(
                    name,
                    "a local index needs a table with a range key: it is another range key for the table's hash key; declare a global index with `gsi_hash` and `gsi_range` instead",
                ));
            }
        }
    }
    for index in input.indexes() {
        let mentions: Vec<(IndexRole, &syn::LitStr)> = input
            .fields
            .iter()
            .flat_map(|f| f.attrs.index_keys())
            .filter(|(_, n)| n.value() == index.name)
            .collect();
        let lsi = mentions.iter().any(|(r, _)| *r == IndexRole::Lsi);
        let gsi = mentions.iter().any(|(r, _)| *r != IndexRole::Lsi);
        if lsi && gsi {
            errors.push(Error::new_spanned(
                index.span,
                format!(
                    "index `{}` is named both by `lsi` and by `gsi_hash`/`gsi_range`: an index is global or local",
                    index.name
                ),
            ));
            continue;
        }
        if gsi && index.hash.is_empty() {
            errors.push(Error::new_spanned(
                index.span,
                format!(
                    "global index `{}` has no hash key: mark a field `#[vhs(gsi_hash = \"{}\")]`",
                    index.name, index.name
                ),
            ));
        }
        for extra in index.hash.iter().skip(1) {
            errors.push(Error::new_spanned(
                extra.ident,
                format!(
                    "global index `{}` already has hash key `{}`: an index has one hash key",
                    index.name, index.hash[0].ident
                ),
            ));
        }
        for extra in index.range.iter().skip(1) {
            errors.push(Error::new_spanned(
                extra.ident,
                format!(
                    "index `{}` already has range key `{}`: an index has at most one range key",
                    index.name, index.range[0].ident
                ),
            ));
        }
    }
}

fn check_generics(generics: &Generics, errors: &mut Errors) {
    if !generics.params.is_empty() {
        errors.push(Error::new_spanned(
            generics,
            "`#[derive(Model)]` does not support generic structs (type parameters, lifetimes or consts): a model is one concrete item type",
        ));
    }
}

fn check_keys(input: &Input, errors: &mut Errors) {
    let mut hash_key: Option<&Field> = None;
    let mut range_key: Option<&Field> = None;
    for field in &input.fields {
        if let Some(word) = &field.attrs.hash_key {
            match hash_key {
                Some(first) => errors.push(Error::new_spanned(
                    word,
                    format!(
                        "duplicate hash key: field `{}` is already `#[vhs(hash_key)]`; a model has exactly one hash key",
                        first.ident
                    ),
                )),
                None => hash_key = Some(field),
            }
            if let Some(word) = &field.attrs.range_key {
                errors.push(Error::new_spanned(
                    word,
                    format!(
                        "field `{}` cannot be both the hash key and the range key",
                        field.ident
                    ),
                ));
            }
        } else if let Some(word) = &field.attrs.range_key {
            match range_key {
                Some(first) => errors.push(Error::new_spanned(
                    word,
                    format!(
                        "duplicate range key: field `{}` is already `#[vhs(range_key)]`; a model has at most one range key",
                        first.ident
                    ),
                )),
                None => range_key = Some(field),
            }
        }
    }
    if hash_key.is_none() && !input.field_attr_errors {
        errors.push(Error::new_spanned(
            input.ident,
            "missing `#[vhs(hash_key)]`: exactly one field must be the hash key",
        ));
    }
}

fn check_version(input: &Input, errors: &mut Errors) {
    let mut version: Option<&Field> = None;
    for field in &input.fields {
        let Some(word) = &field.attrs.version else {
            continue;
        };
        // One error per `version` word: a misplaced one is not also a duplicate.
        if field.is_key() {
            errors.push(Error::new_spanned(
                word,
                "a key field cannot be `#[vhs(version)]`: the version changes on every write, and keys never change",
            ));
        } else if field.attrs.large.is_some() {
            errors.push(Error::new_spanned(
                word,
                "a `#[large]` field cannot be `#[vhs(version)]`: the version is an integer kept in the DynamoDB item, where writes check it",
            ));
        } else if let Some(first) = version {
            errors.push(Error::new_spanned(
                word,
                format!(
                    "duplicate version attribute: field `{}` is already `#[vhs(version)]`; a model has at most one version",
                    first.ident
                ),
            ));
        }
        version.get_or_insert(field);
    }
}

fn check_updated_at(input: &Input, errors: &mut Errors) {
    let mut first: Option<&Field> = None;
    for field in &input.fields {
        let Some(word) = &field.attrs.updated_at else {
            continue;
        };
        if field.is_key() || field.attrs.large.is_some() || field.attrs.version.is_some() {
            errors.push(Error::new_spanned(
                word,
                "`#[vhs(updated_at)]` goes on an ordinary field (not a key, `#[large]` or the version): the store sets it on every write",
            ));
        } else if let Some(first) = first {
            errors.push(Error::new_spanned(
                word,
                format!(
                    "duplicate `updated_at`: field `{}` is already `#[vhs(updated_at)]`",
                    first.ident
                ),
            ));
        } else {
            first = Some(field);
        }
    }
}

fn check_ttl(input: &Input, errors: &mut Errors) {
    let mut first: Option<&Field> = None;
    for field in &input.fields {
        let Some(word) = &field.attrs.ttl else {
            continue;
        };
        if field.is_key()
            || field.attrs.large.is_some()
            || field.attrs.version.is_some()
            || field.attrs.updated_at.is_some()
        {
            errors.push(Error::new_spanned(
                word,
                "`#[vhs(ttl)]` goes on an ordinary field (not a key, `#[large]`, the version or `updated_at`): DynamoDB's time to live reads a top-level Number attribute",
            ));
        } else if let Some(first) = first {
            errors.push(Error::new_spanned(
                word,
                format!(
                    "duplicate `ttl`: field `{}` is already `#[vhs(ttl)]`; DynamoDB's time to live reads one attribute per table",
                    first.ident
                ),
            ));
        } else {
            first = Some(field);
        }
        let misplaced = field.is_key() || field.attrs.large.is_some();
        if !misplaced && !is_ttl_type(field.ty) {
            errors.push(Error::new_spanned(
                field.ty,
                "a `#[vhs(ttl)]` field is `u64` or `i64` epoch seconds, a `chrono::DateTime<Utc>` or `DateTime<FixedOffset>`, or an `Option` of one: it is stored as a Number of epoch seconds",
            ));
        }
    }
}

/// Whether `ty` is written as a type `#[vhs(ttl)]` takes: `u64`, `i64`,
/// `DateTime<..>`, or an `Option` of one (the trait bound on the generated
/// code checks the `DateTime`'s time zone).
fn is_ttl_type(ty: &syn::Type) -> bool {
    let ty = option_inner(ty).unwrap_or(ty);
    let mut ty = ty;
    while let syn::Type::Group(group) = ty {
        ty = &group.elem;
    }
    let syn::Type::Path(path) = ty else {
        return false;
    };
    path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| {
            (last.arguments.is_none() && (last.ident == "u64" || last.ident == "i64"))
                || last.ident == "DateTime"
        })
}

fn check_field(field: &Field, errors: &mut Errors) {
    let Some(large) = &field.attrs.large else {
        return;
    };
    if field.is_key() {
        errors.push(Error::new_spanned(
            large.original,
            "a key field cannot be `#[large]`: keys are stored in the DynamoDB item",
        ));
    } else if option_inner(field.ty).is_none() {
        errors.push(Error::new_spanned(
            field.ty,
            "a `#[large]` field must have type `Option<T>`: `None` means no S3 object and no attribute",
        ));
    }
}

fn check_names(input: &Input, errors: &mut Errors) {
    let mut seen: HashMap<&str, &Field> = HashMap::new();
    for field in &input.fields {
        if field.name.starts_with("vhs:") {
            let message = format!(
                "attribute name `{}` is reserved: names starting with `vhs:` hold vhs's own bookkeeping (write tokens, deletion marks, placeholders); rename the field with `#[vhs(rename = \"...\")]`",
                field.name
            );
            errors.push(match &field.attrs.rename {
                Some(rename) => Error::new_spanned(rename, message),
                None => Error::new_spanned(field.ident, message),
            });
        }
        if let Some(first) = seen.insert(&field.name, field) {
            // Keep pointing at the first field for later duplicates.
            seen.insert(&first.name, first);
            let message = format!(
                "duplicate attribute name `{}`: field `{}` already uses it; give one of them another name with `#[vhs(rename = \"...\")]`",
                field.name, first.ident
            );
            errors.push(match &field.attrs.rename {
                Some(rename) => Error::new_spanned(rename, message),
                None => Error::new_spanned(field.ident, message),
            });
        }
    }
}
