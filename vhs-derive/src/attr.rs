//! Parsing of `#[vhs(...)]` and `#[large(...)]`.
//!
//! Each attribute is parsed on its own: an error in one is recorded and the others
//! are still read, so every mistake is reported in one compilation.

use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Error, Expr, ExprLit, Lit, LitStr, Meta, Path, Result, Token};

use crate::Errors;

/// `#[vhs(...)]` on the struct.
pub struct ContainerAttrs {
    pub table: Option<LitStr>,
    pub krate: Option<Path>,
    /// `index(name = "...", keys_only)` / `index(name = "...", include = [...])`.
    pub projections: Vec<IndexProjection>,
}

/// What a secondary index holds besides the keys, when not every attribute.
pub struct IndexProjection {
    pub name: LitStr,
    /// The attributes it holds (none: `keys_only`).
    pub include: Vec<LitStr>,
}

/// `#[vhs(...)]` and `#[large(...)]` on a field.
pub struct FieldAttrs<'a> {
    /// The `hash_key` word, kept for error spans.
    pub hash_key: Option<Path>,
    /// The `range_key` word, kept for error spans.
    pub range_key: Option<Path>,
    /// The `version` word, kept for error spans.
    pub version: Option<Path>,
    /// The `updated_at` word, kept for error spans.
    pub updated_at: Option<Path>,
    /// The `ttl` word, kept for error spans.
    pub ttl: Option<Path>,
    pub rename: Option<LitStr>,
    pub large: Option<Large<'a>>,
    /// `gsi_hash = "index"`, once per global index the field is the hash key of.
    pub gsi_hash: Vec<LitStr>,
    /// `gsi_range = "index"`, once per global index the field is the range key of.
    pub gsi_range: Vec<LitStr>,
    /// `lsi = "index"`, once per local index the field is the range key of.
    pub lsi: Vec<LitStr>,
}

impl FieldAttrs<'_> {
    /// Every index name the field is a key of, with its role.
    pub fn index_keys(&self) -> impl Iterator<Item = (IndexRole, &LitStr)> {
        (self.gsi_hash.iter().map(|n| (IndexRole::GsiHash, n)))
            .chain(self.gsi_range.iter().map(|n| (IndexRole::GsiRange, n)))
            .chain(self.lsi.iter().map(|n| (IndexRole::Lsi, n)))
    }
}

/// What a field is to a secondary index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IndexRole {
    GsiHash,
    GsiRange,
    Lsi,
}

/// `#[large]` or `#[large(content_type = "...", inline_below = N, compress = "...")]`.
pub struct Large<'a> {
    pub original: &'a Attribute,
    pub content_type: Option<LitStr>,
    /// Values shorter than this many bytes are kept in the item.
    pub inline_below: Option<u64>,
    /// `compress = "zstd"` or `"gzip"`.
    pub compress: Option<LitStr>,
    /// `checksum = "md5"`, `"sha256"` or `"crc64nvme"`.
    pub checksum: Option<LitStr>,
    /// `storage_class = "STANDARD_IA"`, one of [`STORAGE_CLASSES`].
    pub storage_class: Option<LitStr>,
}

/// The algorithms `checksum` accepts (the names of `vhs::ChecksumAlgorithm`).
pub const CHECKSUMS: [&str; 3] = ["md5", "sha256", "crc64nvme"];

/// The storage classes `storage_class` accepts: those whose objects GetObject
/// reads without a restore (not GLACIER nor DEEP_ARCHIVE).
pub const STORAGE_CLASSES: [&str; 5] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
];

/// The codecs `compress` accepts (the names of `vhs::Encoding`).
pub const CODECS: [&str; 2] = ["zstd", "gzip"];

/// DynamoDB's item size limit: a value kept in the item cannot be larger.
const MAX_INLINE: u64 = 400 * 1024;

const CONTAINER_KEYS: &str = "`table`, `crate` or `index(...)`";
const FIELD_KEYS: &str =
    "`hash_key`, `range_key`, `version`, `updated_at`, `ttl`, `rename`, `gsi_hash`, `gsi_range` or `lsi`";

pub fn container(attrs: &[Attribute], errors: &mut Errors) -> ContainerAttrs {
    let mut out = ContainerAttrs {
        table: None,
        krate: None,
        projections: Vec::new(),
    };
    for attr in attrs {
        if attr.path().is_ident("large") {
            errors.push(Error::new_spanned(
                attr,
                "`#[large]` goes on a field, not on the struct",
            ));
        }
        if !attr.path().is_ident("vhs") {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                let table = string(&meta, "table")?;
                set_once(&meta, &mut out.table, table)
            } else if meta.path.is_ident("crate") {
                let lit = string(&meta, "crate")?;
                let path = lit.parse_with(Path::parse_mod_style).map_err(|_| {
                    Error::new_spanned(
                        &lit,
                        "expected the path of the vhs crate, like `crate = \"my_crate::vhs\"`",
                    )
                })?;
                set_once(&meta, &mut out.krate, path)
            } else if meta.path.is_ident("index") {
                out.projections.push(index_projection(&meta)?);
                Ok(())
            } else if is_field_key(&meta.path) {
                Err(meta.error(format!(
                    "`{}` goes on a field, not on the struct",
                    path_str(&meta.path)
                )))
            } else {
                Err(meta.error(format!(
                    "unknown vhs attribute `{}`; expected {CONTAINER_KEYS} on the struct",
                    path_str(&meta.path)
                )))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    out
}

pub fn field<'a>(attrs: &'a [Attribute], errors: &mut Errors) -> FieldAttrs<'a> {
    let mut out = FieldAttrs {
        hash_key: None,
        range_key: None,
        version: None,
        updated_at: None,
        ttl: None,
        rename: None,
        large: None,
        gsi_hash: Vec::new(),
        gsi_range: Vec::new(),
        lsi: Vec::new(),
    };
    for attr in attrs {
        let parsed = if attr.path().is_ident("vhs") {
            attr.parse_nested_meta(|meta| field_key(&meta, &mut out))
        } else if attr.path().is_ident("large") {
            large(attr, &mut out)
        } else {
            Ok(())
        };
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    out
}

fn field_key(meta: &ParseNestedMeta, out: &mut FieldAttrs) -> Result<()> {
    if meta.path.is_ident("hash_key") {
        flag(meta, "hash_key")?;
        set_once(meta, &mut out.hash_key, meta.path.clone())
    } else if meta.path.is_ident("range_key") {
        flag(meta, "range_key")?;
        set_once(meta, &mut out.range_key, meta.path.clone())
    } else if meta.path.is_ident("version") {
        flag(meta, "version")?;
        set_once(meta, &mut out.version, meta.path.clone())
    } else if meta.path.is_ident("updated_at") {
        flag(meta, "updated_at")?;
        set_once(meta, &mut out.updated_at, meta.path.clone())
    } else if meta.path.is_ident("ttl") {
        flag(meta, "ttl")?;
        set_once(meta, &mut out.ttl, meta.path.clone())
    } else if meta.path.is_ident("rename") {
        let rename = string(meta, "rename")?;
        set_once(meta, &mut out.rename, rename)
    } else if meta.path.is_ident("gsi_hash") {
        out.gsi_hash.push(string(meta, "gsi_hash")?);
        Ok(())
    } else if meta.path.is_ident("gsi_range") {
        out.gsi_range.push(string(meta, "gsi_range")?);
        Ok(())
    } else if meta.path.is_ident("lsi") {
        out.lsi.push(string(meta, "lsi")?);
        Ok(())
    } else if meta.path.is_ident("large") {
        Err(meta.error("`large` is an attribute of its own: write `#[large]`"))
    } else if meta.path.is_ident("table") || meta.path.is_ident("crate") {
        Err(meta.error(format!(
            "`{}` goes on the struct, not on a field",
            path_str(&meta.path)
        )))
    } else {
        Err(meta.error(format!(
            "unknown vhs attribute `{}`; expected {FIELD_KEYS} on a field",
            path_str(&meta.path)
        )))
    }
}

fn large<'a>(attr: &'a Attribute, out: &mut FieldAttrs<'a>) -> Result<()> {
    if out.large.is_some() {
        return Err(Error::new_spanned(attr, "duplicate `#[large]` attribute"));
    }
    let mut content_type = None;
    let mut inline_below = None;
    let mut compress = None;
    let mut checksum = None;
    let mut storage_class = None;
    match &attr.meta {
        Meta::Path(_) => {}
        Meta::List(_) => attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("content_type") {
                let lit = string(&meta, "content_type")?;
                set_once(&meta, &mut content_type, lit)
            } else if meta.path.is_ident("inline_below") {
                let bytes = inline_bytes(&meta)?;
                set_once(&meta, &mut inline_below, bytes)
            } else if meta.path.is_ident("compress") {
                let lit = string(&meta, "compress")?;
                if !CODECS.contains(&lit.value().as_str()) {
                    return Err(Error::new_spanned(
                        &lit,
                        format!(
                            "unknown codec {:?}; `compress` takes \"zstd\" or \"gzip\"",
                            lit.value()
                        ),
                    ));
                }
                set_once(&meta, &mut compress, lit)
            } else if meta.path.is_ident("checksum") {
                let lit = string(&meta, "checksum")?;
                one_of(&lit, "algorithm", "checksum", &CHECKSUMS)?;
                set_once(&meta, &mut checksum, lit)
            } else if meta.path.is_ident("storage_class") {
                let lit = string(&meta, "storage_class")?;
                match lit.value().as_str() {
                    "GLACIER" | "DEEP_ARCHIVE" => {
                        return Err(Error::new_spanned(
                            &lit,
                            format!(
                                "objects in {} cannot be read without a restore; store them in a \
                                 readable class and move them with a lifecycle rule",
                                lit.value()
                            ),
                        ))
                    }
                    _ => one_of(&lit, "storage class", "storage_class", &STORAGE_CLASSES)?,
                }
                set_once(&meta, &mut storage_class, lit)
            } else {
                Err(meta.error(format!(
                    "unknown `#[large]` option `{}`; expected `content_type`, `inline_below`, \
                     `compress`, `checksum` or `storage_class`",
                    path_str(&meta.path)
                )))
            }
        })?,
        Meta::NameValue(_) => {
            return Err(Error::new_spanned(
                attr,
                "expected `#[large]` or `#[large(content_type = \"...\")]`",
            ))
        }
    }
    out.large = Some(Large {
        original: attr,
        content_type,
        inline_below,
        compress,
        checksum,
        storage_class,
    });
    Ok(())
}

/// An error on `lit` unless its value is one of `allowed`.
fn one_of(lit: &LitStr, what: &str, key: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&lit.value().as_str()) {
        return Ok(());
    }
    let list = allowed
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::new_spanned(
        lit,
        format!(
            "unknown {what} {:?}; `{key}` takes one of {list}",
            lit.value()
        ),
    ))
}

/// `index(name = "...", keys_only)` or `index(name = "...", include = ["a", "b"])`.
fn index_projection(meta: &ParseNestedMeta) -> Result<IndexProjection> {
    const FORM: &str = "expected `index(name = \"...\", keys_only)` or `index(name = \"...\", include = [\"attr\", ...])`";
    let mut name = None;
    let mut keys_only = None;
    let mut include: Option<Vec<LitStr>> = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            let lit = string(&inner, "name")?;
            set_once(&inner, &mut name, lit)
        } else if inner.path.is_ident("keys_only") {
            flag(&inner, "keys_only")?;
            set_once(&inner, &mut keys_only, inner.path.clone())
        } else if inner.path.is_ident("include") {
            let expr: Expr = inner.value()?.parse()?;
            let Expr::Array(array) = &expr else {
                return Err(Error::new_spanned(expr, FORM));
            };
            let mut attrs = Vec::new();
            for element in &array.elems {
                match element {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => attrs.push(lit.clone()),
                    other => return Err(Error::new_spanned(other, FORM)),
                }
            }
            if attrs.is_empty() {
                return Err(Error::new_spanned(
                    array,
                    "`include` names at least one attribute; for none, write `keys_only`",
                ));
            }
            set_once(&inner, &mut include, attrs)
        } else {
            Err(inner.error(FORM))
        }
    })?;
    let Some(name) = name else {
        return Err(meta.error(FORM));
    };
    match (keys_only, include) {
        (Some(_), None) => Ok(IndexProjection {
            name,
            include: Vec::new(),
        }),
        (None, Some(include)) => Ok(IndexProjection { name, include }),
        (Some(word), Some(_)) => Err(Error::new_spanned(
            word,
            "`keys_only` and `include` exclude each other: an index holds the keys only, or the keys and the attributes listed",
        )),
        (None, None) => Err(meta.error(FORM)),
    }
}

/// A key that takes no value, like `hash_key`.
fn flag(meta: &ParseNestedMeta, name: &str) -> Result<()> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        Ok(())
    } else {
        Err(meta.error(format!("`{name}` takes no value: write `#[vhs({name})]`")))
    }
}

/// The value of `name = "..."`: a non-empty string literal.
fn string(meta: &ParseNestedMeta, name: &str) -> Result<LitStr> {
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!("expected a value: `{name} = \"...\"`")));
    }
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            if lit.value().is_empty() {
                Err(Error::new_spanned(lit, format!("`{name}` cannot be empty")))
            } else {
                Ok(lit)
            }
        }
        other => Err(Error::new_spanned(
            other,
            format!("expected a string literal: `{name} = \"...\"`"),
        )),
    }
}

/// `inline_below = N`: a byte count from 1 to DynamoDB's 400 KB item limit.
fn inline_bytes(meta: &ParseNestedMeta) -> Result<u64> {
    const FORM: &str = "expected a size in bytes: `inline_below = 4096`";
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(FORM));
    }
    let expr: Expr = meta.value()?.parse()?;
    let Expr::Lit(ExprLit {
        lit: Lit::Int(lit), ..
    }) = &expr
    else {
        return Err(Error::new_spanned(expr, FORM));
    };
    let bytes: u64 = lit.base10_parse()?;
    if bytes == 0 || bytes > MAX_INLINE {
        return Err(Error::new_spanned(
            lit,
            format!(
                "`inline_below` must be from 1 to {MAX_INLINE} bytes (DynamoDB's 400 KB item limit)"
            ),
        ));
    }
    Ok(bytes)
}

fn set_once<T>(meta: &ParseNestedMeta, slot: &mut Option<T>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate `{}` attribute", path_str(&meta.path))));
    }
    *slot = Some(value);
    Ok(())
}

fn is_field_key(path: &Path) -> bool {
    [
        "hash_key",
        "range_key",
        "version",
        "updated_at",
        "ttl",
        "rename",
        "gsi_hash",
        "gsi_range",
        "lsi",
    ]
    .iter()
    .any(|key| path.is_ident(key))
}

fn path_str(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}
