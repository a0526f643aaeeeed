//! `#[derive(Model)]` for [vhs](https://docs.rs/vhs): a struct stored as one
//! DynamoDB item whose `#[large]` fields live in S3.
//!
//! Use it through the `vhs` crate, which re-exports it as `vhs::Model`.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `vhs::Model` for a struct with named fields.
///
/// ```
/// use chrono::{DateTime, Utc};
/// use serde::{Deserialize, Serialize};
/// use vhs::Model;
///
/// #[derive(Model, Serialize, Deserialize)]
/// #[vhs(table = "documents")]
/// struct Document {
///     #[vhs(hash_key)]
///     pk: String,
///     #[vhs(range_key)]
///     sk: String,
///     #[vhs(version)]
///     version: u64,
///     #[vhs(rename = "updateAt")]
///     update_at: DateTime<Utc>,
///     #[large]
///     html: Option<String>,
///     #[large(content_type = "image/png")]
///     image: Option<Vec<u8>>,
///     data: serde_json::Value,
/// }
/// ```
///
/// # Attributes
///
/// On the struct:
/// - `#[vhs(table = "...")]`: the table name; defaults to the struct's name.
/// - `#[vhs(crate = "path::to::vhs")]`: where the `vhs` crate is, if not `::vhs`.
/// - `#[vhs(index(name = "...", keys_only))]`, `#[vhs(index(name = "...", include =
///   ["attr", ...]))]`: the projection of a secondary index the fields declare
///   (default: every attribute). A typed query of such an index reads its keys
///   from the index and the items from the table (one BatchGetItem per page).
///
/// On a field:
/// - `#[vhs(hash_key)]`: the hash (partition) key; exactly one field. Its type is
///   `String` or an integer type.
/// - `#[vhs(range_key)]`: the range (sort) key; optional, same types.
/// - `#[vhs(version)]`: the version attribute, for optimistic locking; at most
///   one field, not a key and not `#[large]`. Its type is an integer type (`u64`
///   is the natural choice). It is stored like an ordinary attribute, but it is
///   the store that writes it, so the update builder has no setter for it; an
///   update states the version it read with `if_version` instead.
/// - `#[vhs(updated_at)]`: every create and update the store makes sets this
///   attribute to the time of the write (canonical UTC text, like a timestamp
///   key); at most one field, not a key, `#[large]` or the version. Its type is
///   `chrono::DateTime<Utc>` or `DateTime<FixedOffset>`, or an `Option` of one
///   (what you set is replaced). The update builder has no setter for it.
/// - `#[vhs(ttl)]`: the item's expiry, for DynamoDB's time to live: at most
///   one field, not a key, `#[large]`, the version or `updated_at`. Its type is
///   `u64` or `i64` epoch seconds, `chrono::DateTime<Utc>` or
///   `DateTime<FixedOffset>`, or an `Option` of one; it is stored as a Number
///   of epoch seconds. Reads treat an item whose expiry has passed as absent,
///   `ensure_table` enables time to live on the attribute, and an update that
///   sets a later time extends the item's life.
/// - `#[vhs(rename = "...")]`: the attribute name; defaults to the field's name.
/// - `#[large]`, `#[large(content_type = "...")]`: the value is stored as an S3
///   object and the item holds a pointer to it. The field's type is `Option<T>`
///   where `T` is `Vec<u8>`, `bytes::Bytes`, `String` or `vhs::Json<U>`; `None`
///   means no object and no attribute. The content type defaults to the one of `T`.
/// - `#[large(inline_below = N)]` (with or without `content_type`): a value of
///   fewer than `N` bytes (1 to 409,600) is kept in the item itself as a binary
///   attribute, with no object: reading an item whose values are all inline takes
///   one round trip. Larger values go to S3 as usual. Values already stored keep
///   their form until rewritten, so the option can be added or removed at any time.
/// - `#[large(compress = "zstd")]` or `"gzip"`: a value stored as an object is
///   compressed first; the object's key records the codec (`.../enc=zstd/md5=...`,
///   the MD5 being that of the compressed bytes), so readers decompress it whatever
///   the model says today. Values kept in the item (`inline_below`) are never
///   compressed.
///
/// - `#[vhs(gsi_hash = "index")]`, `#[vhs(gsi_range = "index")]`: the field is
///   the hash (range) key of the global secondary index `index`; a field may be
///   a key of several indexes, the table's keys included (repeat the option).
///   `#[vhs(lsi = "index")]`: the field is the range key of the local secondary
///   index `index` (whose hash key is the table's; the model needs a range key).
///   `Store::ensure_table` creates them (projection: all attributes, unless
///   `index(...)` on the struct says otherwise). An index
///   key's type is `String`, an integer type or a `chrono` `DateTime<Utc>` /
///   `DateTime<FixedOffset>`, or an `Option` of one (`None` leaves the item out
///   of the index); a `#[large]` field cannot be one.
///
/// Keys of the table and of indexes are written in their key form: a
/// `DateTime` as canonical UTC text with nanoseconds
/// (`2026-11-23T07:00:00.000000000Z`, see `vhs::canonical_time`), so that text
/// order is time order whatever offset the value had.
///
/// Every other field is an ordinary attribute, converted with serde.
///
/// # Generated items
///
/// - `impl vhs::Model for Document`.
/// - One `vhs::Attr` constant per field that is not `#[large]`, named after the
///   field in capitals (`Document::UPDATE_AT`), for conditions, query key
///   conditions and filters: `Document::PK.eq("p1")`. Its value type is the
///   field's without `Option` (`str` for `String`).
/// - Associated functions on `Document`: `key(pk, sk)` builds a typed key (or
///   `key(pk)` without a range key), `changes()` starts an update, and
///   `create_large`, `get_large`, `get_large_consistent`, `update_large`,
///   `delete_large` call the `Store` methods of the same names.
/// - `DocumentUpdate`, with the struct's visibility: a typed update builder with a
///   `set_<field>` method for every field that is neither a key nor the version,
///   and a `condition` method; for a model with a version field, also
///   `if_version(version)`: the update succeeds only if the stored version is
///   still `version`, and writes `version + 1`. It converts into
///   `vhs::Changes<Document>`.
#[proc_macro_derive(Model, attributes(vhs, large))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

/// Collects every error found in the input so they are all reported at once.
#[derive(Default)]
struct Errors {
    error: Option<syn::Error>,
    len: usize,
}

impl Errors {
    fn push(&mut self, error: syn::Error) {
        self.len += 1;
        match &mut self.error {
            Some(first) => first.combine(error),
            None => self.error = Some(error),
        }
    }

    /// How many errors were pushed.
    fn len(&self) -> usize {
        self.len
    }

    fn finish(self) -> syn::Result<()> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
