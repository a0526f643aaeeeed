//! The generated code. Every path goes through `<vhs>::__private`, so a user needs
//! no direct dependency on the crates vhs is built on.
//!
//! Calls whose trait bounds check a field's type (`key_kind::<T>`,
//! `content_type::<T>`, `version_attr::<T>`, ...) are spanned at that type, so an
//! unsupported type is reported where it is written.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident};

use crate::ast::{is_number, is_string, option_inner, vec_inner, Field, Input, Role};
use crate::{valid, Errors};

pub fn derive(node: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let Some(input) = Input::from_syn(node, &mut errors) else {
        return to_compile_error(errors);
    };
    valid::validate(&input, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&input),
        Err(error) => error.to_compile_error(),
    }
}

fn to_compile_error(errors: Errors) -> TokenStream {
    match errors.finish() {
        Ok(()) => TokenStream::new(),
        Err(error) => error.to_compile_error(),
    }
}

fn expand(input: &Input) -> TokenStream {
    let krate = match &input.attrs.krate {
        Some(path) => quote!(#path),
        None => quote!(::vhs),
    };
    let p = quote!(#krate::__private);
    let model = impl_model(input, &p);
    let inherent = impl_inherent(input, &p);
    let update = update_builder(input, &p);
    quote! {
        #model
        #inherent
        #update
    }
}

fn impl_model(input: &Input, p: &TokenStream) -> TokenStream {
    let ident = input.ident;
    let table = input.table();

    let key_def = |field: &Field| {
        let name = &field.name;
        let ty = field.ty;
        let kind = quote_spanned!(ty.span()=> #p::key_kind::<#ty>());
        quote!(#p::KeyDef { name: #name, kind: #kind })
    };
    let hash_def = input.hash_key().map(key_def);
    let range_def = match input.range_key().map(key_def) {
        Some(def) => quote!(#p::Option::Some(#def)),
        None => quote!(#p::Option::None),
    };
    let large_defs = input.large().map(|(field, inner)| {
        let name = &field.name;
        let content_type = match field
            .attrs
            .large
            .as_ref()
            .and_then(|l| l.content_type.as_ref())
        {
            Some(lit) => quote!(#lit),
            None => quote_spanned!(inner.span()=> #p::content_type::<#inner>()),
        };
        let inline_below = field
            .attrs
            .large
            .as_ref()
            .and_then(|l| l.inline_below)
            .unwrap_or(0);
        let compress = match field.attrs.large.as_ref().and_then(|l| l.compress.as_ref()) {
            Some(codec) if codec.value() == "gzip" => {
                quote!(#p::Option::Some(#p::Encoding::Gzip))
            }
            Some(_) => quote!(#p::Option::Some(#p::Encoding::Zstd)),
            None => quote!(#p::Option::None),
        };
        let checksum = match field.attrs.large.as_ref().and_then(|l| l.checksum.as_ref()) {
            Some(lit) if lit.value() == "sha256" => quote!(#p::ChecksumAlgorithm::Sha256),
            Some(lit) if lit.value() == "crc64nvme" => quote!(#p::ChecksumAlgorithm::Crc64Nvme),
            _ => quote!(#p::ChecksumAlgorithm::Md5),
        };
        let storage_class = match field
            .attrs
            .large
            .as_ref()
            .and_then(|l| l.storage_class.as_ref())
        {
            Some(lit) => quote!(#p::Option::Some(#lit)),
            None => quote!(#p::Option::None),
        };
        let spool = quote_spanned!(inner.span()=> #p::spools::<#inner>());
        quote!(#p::LargeAttr {
            name: #name,
            content_type: #content_type,
            inline_below: #inline_below,
            compress: #compress,
            checksum: #checksum,
            storage_class: #storage_class,
            spool: #spool,
        })
    });
    let attribute_names = input
        .fields
        .iter()
        .filter(|f| matches!(f.role, Role::Plain | Role::Version))
        .map(|f| f.name.as_str());
    let version_def = match input.version() {
        Some(field) => {
            let (name, ty) = (&field.name, field.ty);
            let attr = quote_spanned!(ty.span()=> #p::version_attr::<#ty>(#name));
            quote!(#p::Option::Some(#attr))
        }
        None => quote!(#p::Option::None),
    };

    let index_defs = input.indexes().into_iter().map(|index| {
        let name = &index.name;
        let index_key = |field: &Field| {
            let (name, ty) = (&field.name, field.ty);
            let kind = quote_spanned!(ty.span()=> #p::index_key_kind::<#ty>());
            quote!(#p::KeyDef { name: #name, kind: #kind })
        };
        let (kind, hash) = if index.global {
            (
                quote!(#p::IndexKind::Global),
                index.hash.first().map(|f| index_key(f)),
            )
        } else {
            (quote!(#p::IndexKind::Local), hash_def.clone())
        };
        let range = match index.range.first() {
            Some(field) => {
                let def = index_key(field);
                quote!(#p::Option::Some(#def))
            }
            None => quote!(#p::Option::None),
        };
        let include = match input
            .attrs
            .projections
            .iter()
            .find(|projection| projection.name.value() == index.name)
        {
            Some(projection) => {
                let attrs = &projection.include;
                quote!(#p::Option::Some(&[#(#attrs),*]))
            }
            None => quote!(#p::Option::None),
        };
        quote!(#p::IndexDef {
            name: #name,
            kind: #kind,
            hash_key: #hash,
            range_key: #range,
            include: #include,
        })
    });

    let updated_at_def = match input.updated_at() {
        Some(field) => {
            let (name, ty) = (&field.name, field.ty);
            let attr = quote_spanned!(ty.span()=> #p::updated_at_attr::<#ty>(#name));
            quote!(#p::Option::Some(#attr))
        }
        None => quote!(#p::Option::None),
    };

    let ttl_def = match input.ttl() {
        Some(field) => {
            let (name, ty) = (&field.name, field.ty);
            let attr = quote_spanned!(ty.span()=> #p::ttl_attr::<#ty>(#name));
            quote!(#p::Option::Some(#attr))
        }
        None => quote!(#p::Option::None),
    };

    let key_value = |field: &Field| {
        let (member, ty) = (field.ident, field.ty);
        quote_spanned!(ty.span()=> #p::key_value::<#ty>(&self.#member))
    };
    let hash_value = input.hash_key().map(key_value);
    let range_value = match input.range_key().map(key_value) {
        Some(value) => quote!(#p::Option::Some(#value)),
        None => quote!(#p::Option::None),
    };

    let stored: Vec<&Field> = input
        .fields
        .iter()
        .filter(|field| !matches!(field.role, Role::Large { .. }))
        .collect();
    let capacity = Literal::usize_unsuffixed(stored.len());
    let put_attrs = stored.iter().map(|field| {
        let (member, ty, name) = (field.ident, field.ty, &field.name);
        if field.attrs.ttl.is_some() {
            // A Number of epoch seconds, whatever the field's type.
            quote_spanned!(ty.span()=> #p::put_ttl_attr::<#ty>(&mut item, #name, &self.#member);)
        } else if field.is_any_key() {
            // The key form: a timestamp as canonical UTC text that sorts.
            quote_spanned!(ty.span()=> #p::put_index_attr::<#ty>(&mut item, #name, &self.#member);)
        } else {
            quote_spanned!(ty.span()=> #p::put_attr::<#ty>(&mut item, #name, &self.#member)?;)
        }
    });
    let init_fields = input.fields.iter().map(|field| {
        let (member, ty, name) = (field.ident, field.ty, &field.name);
        match field.role {
            Role::Large { .. } => quote!(#member: #p::Option::None),
            _ if field.attrs.ttl.is_some() => {
                quote_spanned!(ty.span()=> #member: #p::take_ttl_attr::<#ty>(&mut item, #name)?)
            }
            _ => quote_spanned!(ty.span()=> #member: #p::take_attr::<#ty>(&mut item, #name)?),
        }
    });

    let encode_large = {
        let calls: Vec<TokenStream> = input
            .large()
            .map(|(field, inner)| {
                let (member, name) = (field.ident, &field.name);
                quote_spanned!(inner.span()=> #p::encode_large::<#inner>(#name, &self.#member)?)
            })
            .collect();
        if calls.is_empty() {
            quote!(#p::Result::Ok(#p::Vec::new()))
        } else {
            let capacity = Literal::usize_unsuffixed(calls.len());
            quote! {
                let mut values = #p::Vec::with_capacity(#capacity);
                #(values.push(#calls);)*
                #p::Result::Ok(values)
            }
        }
    };
    let decode_large = {
        // `index => self.field = #p::decoder::<Inner>("name", arg)?,` per large field.
        let arms_calling = |decoder: TokenStream, arg: TokenStream| -> Vec<TokenStream> {
            input
                .large()
                .enumerate()
                .map(|(index, (field, inner))| {
                    let (member, name) = (field.ident, &field.name);
                    let index = Literal::usize_unsuffixed(index);
                    let decode =
                        quote_spanned!(inner.span()=> #p::#decoder::<#inner>(#name, #arg)?);
                    quote!(#index => self.#member = #decode,)
                })
                .collect()
        };
        let arms = arms_calling(quote!(decode_large), quote!(bytes));
        let blob_arms = arms_calling(quote!(decode_large_blob), quote!(value));
        if arms.is_empty() {
            quote! {
                fn decode_large(&mut self, _index: usize, _bytes: #p::Bytes) -> #p::Result<()> {
                    #p::Result::Ok(())
                }
            }
        } else {
            quote! {
                fn decode_large(&mut self, index: usize, bytes: #p::Bytes) -> #p::Result<()> {
                    match index {
                        #(#arms)*
                        _ => {}
                    }
                    #p::Result::Ok(())
                }

                fn decode_large_blob(&mut self, index: usize, value: #p::Blob) -> #p::Result<()> {
                    match index {
                        #(#blob_arms)*
                        _ => {}
                    }
                    #p::Result::Ok(())
                }
            }
        }
    };

    quote! {
        #[automatically_derived]
        impl #p::Model for #ident {
            const SCHEMA: #p::Schema = #p::Schema {
                table: #table,
                hash_key: #hash_def,
                range_key: #range_def,
                large: &[#(#large_defs),*],
                attributes: &[#(#attribute_names),*],
                version: #version_def,
                indexes: &[#(#index_defs),*],
                updated_at: #updated_at_def,
                ttl: #ttl_def,
            };

            fn primary_key(&self) -> #p::Key<Self> {
                #p::Key::from_parts(#hash_value, #range_value)
            }

            fn to_item(&self) -> #p::Result<#p::Item> {
                let mut item = #p::Item::with_capacity(#capacity);
                #(#put_attrs)*
                #p::Result::Ok(item)
            }

            fn from_item(mut item: #p::Item) -> #p::Result<Self> {
                #p::Result::Ok(Self {
                    #(#init_fields,)*
                })
            }

            fn encode_large(&self) -> #p::Result<#p::Vec<#p::Option<#p::Blob>>> {
                #encode_large
            }

            #decode_large
        }
    }
}

fn impl_inherent(input: &Input, p: &TokenStream) -> TokenStream {
    let ident = input.ident;
    let model = ident.unraw().to_string();
    let update = update_ident(ident);

    // `key(pk, sk)`: `impl Into<String>` for string keys, the field's type otherwise.
    let mut params = Vec::new();
    let mut values = Vec::new();
    for field in input.hash_key().into_iter().chain(input.range_key()) {
        let (param, ty) = (field.ident, field.ty);
        if is_string(ty) {
            params.push(quote!(#param: impl #p::Into<#ty>));
            values.push(
                quote_spanned!(ty.span()=> #p::key_value::<#ty>(&#p::Into::<#ty>::into(#param))),
            );
        } else {
            params.push(quote!(#param: #ty));
            values.push(quote_spanned!(ty.span()=> #p::key_value::<#ty>(&#param)));
        }
    }
    let hash_value = values.first();
    let range_value = match values.get(1) {
        Some(value) => quote!(#p::Option::Some(#value)),
        None => quote!(#p::Option::None),
    };
    let key_doc = match (input.hash_key(), input.range_key()) {
        (Some(hash), Some(range)) => format!(
            "The key of the `{model}` with hash key `{}` and range key `{}`.",
            hash.name, range.name
        ),
        (Some(hash), None) => format!("The key of the `{model}` with hash key `{}`.", hash.name),
        _ => format!("The key of a `{model}`."),
    };

    let changes_doc = format!(
        "Starts the changes of an update of a `{model}`: set fields on the returned \
         builder and pass it to `update_large`."
    );
    let create_doc = format!(
        "Stores a new `{model}`: uploads its large values to S3, then writes the item. \
         Calls `Store::create_large`."
    );
    let from_upload_doc = format!(
        "Stores a new `{model}` whose large values clients uploaded with presigned \
         `tickets`. Calls `Store::create_large_from_upload`."
    );
    let update_from_upload_doc = format!(
        "Applies changes to a stored `{model}` and sets the large values clients \
         uploaded with presigned `tickets`. Calls `Store::update_large_from_upload`."
    );
    let presign_doc = format!(
        "A presigned upload of large attribute `attr` of a `{model}`, to commit with \
         `create_large_from_upload` or `update_large_from_upload`. Calls \
         `Store::presign_upload`."
    );
    let get_doc = format!("Reads a `{model}` and its large values. Calls `Store::get_large`.");
    let get_consistent_doc = format!(
        "Reads a `{model}` and its large values with a strongly consistent read. \
         Calls `Store::get_large_consistent`."
    );
    let update_doc = format!("Applies changes to a stored `{model}`. Calls `Store::update_large`.");
    let put_doc = format!(
        "Stores a `{model}`, creating it or replacing the stored one (the replaced \
         large values released through the deletion protocol). Calls `Store::put_large`."
    );
    let put_if_doc = format!(
        "Stores a `{model}` (create or replace) if `condition` holds on the stored \
         item, or on no item when there is none. Calls `Store::put_large_if`."
    );
    let exists_doc = format!(
        "Whether a `{model}` with this key exists (one GetItem, no large value read). \
         Calls `Store::exists`."
    );
    let delete_doc =
        format!("Deletes a `{model}` and its large values. Calls `Store::delete_large`.");
    let delete_if_doc = format!(
        "Deletes a `{model}` and its large values if the precondition (a condition, \
         and the version read for a versioned model) holds. Calls `Store::delete_large_if`."
    );

    let attrs = input
        .fields
        .iter()
        .filter(|f| !matches!(f.role, Role::Large { .. }))
        .map(|field| {
            let konst = format_ident!(
                "{}",
                field.ident.unraw().to_string().to_uppercase(),
                span = field.ident.span()
            );
            let name = &field.name;
            let value = option_inner(field.ty).unwrap_or(field.ty);
            let value = if is_string(value) {
                quote!(str)
            } else {
                quote!(#value)
            };
            let encode = if field.attrs.ttl.is_some() {
                quote_spanned!(field.ty.span()=> #p::ttl_attr_value::<#value>)
            } else if field.is_any_key() {
                quote_spanned!(field.ty.span()=> #p::key_attr_value::<#value>)
            } else {
                quote_spanned!(field.ty.span()=> #p::serde_attr_value::<#value>)
            };
            let doc = format!(
                "The attribute `{name}` of a `{model}`, for conditions, key conditions and filters."
            );
            quote! {
                #[doc = #doc]
                pub const #konst: #p::Attr<Self, #value> = #p::Attr::new(#name, #encode);
            }
        });

    quote! {
        #[allow(dead_code)]
        impl #ident {
            #(#attrs)*

            #[doc = #key_doc]
            #[must_use]
            pub fn key(#(#params),*) -> #p::Key<Self> {
                #p::Key::from_parts(#hash_value, #range_value)
            }

            #[doc = #changes_doc]
            #[must_use]
            pub fn changes() -> #update {
                #update::new()
            }

            #[doc = #create_doc]
            pub async fn create_large(
                store: &#p::Store,
                item: &Self,
            ) -> #p::Result<#p::Staged<Self>> {
                store.create_large(item).await
            }

            #[doc = #presign_doc]
            pub async fn presign_upload(
                store: &#p::Store,
                key: &#p::Key<Self>,
                attr: &str,
                spec: #p::UploadSpec,
            ) -> #p::Result<#p::UploadTicket> {
                store.presign_upload(key, attr, spec).await
            }

            #[doc = #from_upload_doc]
            pub async fn create_large_from_upload(
                store: &#p::Store,
                item: &Self,
                tickets: &[#p::UploadTicket],
            ) -> #p::Result<#p::Staged<Self>> {
                store.create_large_from_upload(item, tickets).await
            }

            #[doc = #update_from_upload_doc]
            pub async fn update_large_from_upload(
                store: &#p::Store,
                key: &#p::Key<Self>,
                changes: impl #p::Into<#p::Changes<Self>>,
                tickets: &[#p::UploadTicket],
            ) -> #p::Result<#p::Updated<Self>> {
                store.update_large_from_upload(key, changes, tickets).await
            }

            #[doc = #get_doc]
            pub async fn get_large(store: &#p::Store, key: &#p::Key<Self>) -> #p::Result<Self> {
                store.get_large(key).await
            }

            #[doc = #get_consistent_doc]
            pub async fn get_large_consistent(
                store: &#p::Store,
                key: &#p::Key<Self>,
            ) -> #p::Result<Self> {
                store.get_large_consistent(key).await
            }

            #[doc = #update_doc]
            pub async fn update_large(
                store: &#p::Store,
                key: &#p::Key<Self>,
                changes: impl #p::Into<#p::Changes<Self>>,
            ) -> #p::Result<#p::Updated<Self>> {
                store.update_large(key, changes).await
            }

            #[doc = #put_doc]
            pub async fn put_large(store: &#p::Store, item: &Self) -> #p::Result<#p::Put<Self>> {
                store.put_large(item).await
            }

            #[doc = #put_if_doc]
            pub async fn put_large_if(
                store: &#p::Store,
                item: &Self,
                condition: #p::Condition,
            ) -> #p::Result<#p::Put<Self>> {
                store.put_large_if(item, condition).await
            }

            #[doc = #exists_doc]
            pub async fn exists(store: &#p::Store, key: &#p::Key<Self>) -> #p::Result<bool> {
                store.exists(key).await
            }

            #[doc = #delete_doc]
            pub async fn delete_large(
                store: &#p::Store,
                key: &#p::Key<Self>,
            ) -> #p::Result<#p::Deleted<Self>> {
                store.delete_large(key).await
            }

            #[doc = #delete_if_doc]
            pub async fn delete_large_if(
                store: &#p::Store,
                key: &#p::Key<Self>,
                precondition: impl #p::Into<#p::Precondition>,
            ) -> #p::Result<#p::Deleted<Self>> {
                store.delete_large_if(key, precondition).await
            }
        }
    }
}

fn update_builder(input: &Input, p: &TokenStream) -> TokenStream {
    let ident = input.ident;
    let vis = input.vis;
    let model = ident.unraw().to_string();
    let update = update_ident(ident);

    let mut large_index = 0usize;
    let mut setters = Vec::new();
    for field in &input.fields {
        let (member, ty, name) = (field.ident, field.ty, &field.name);
        let setter = format_ident!("set_{}", member.unraw(), span = member.span());
        let inner = option_inner(ty).unwrap_or(ty);
        // A number takes its exact type: with `impl Into<u32>` a literal `5`
        // would be an `i32`, which does not convert.
        let param = |t: &syn::Type| match is_number(t) {
            true => quote!(#t),
            false => quote!(impl #p::Into<#t>),
        };
        if matches!(field.role, Role::Plain)
            && field.attrs.updated_at.is_none()
            && field.attrs.ttl.is_none()
            && !field.is_any_key()
        {
            setters.extend(extra_setters(p, field, inner, &param));
        }
        // `impl Into<T>` for a plain `T` (`set_title("x")` for a `String`); an
        // `Option<T>` takes itself, so that `Some("x".into())` and `None` infer.
        let value_ty = if is_number(inner) || option_inner(ty).is_some() {
            quote!(#ty)
        } else {
            param(ty)
        };
        let set = match field.role {
            // The store writes the version; `if_version` states the expected one.
            Role::HashKey | Role::RangeKey | Role::Version => continue,
            // The store sets it on every write.
            Role::Plain if field.attrs.updated_at.is_some() => continue,
            // A Number of epoch seconds: setting it later extends the item's life.
            Role::Plain if field.attrs.ttl.is_some() => {
                quote_spanned!(ty.span()=> self.changes.set_ttl_attr::<#ty>(#name, &value))
            }
            Role::Large { inner } => {
                let index = Literal::usize_unsuffixed(large_index);
                large_index += 1;
                quote_spanned!(inner.span()=> self.changes.set_large_value::<#inner>(#index, &value))
            }
            Role::Plain => quote_spanned!(ty.span()=> self.changes.set_attr::<#ty>(#name, &value)),
        };
        let doc = match field.role {
            Role::Large { .. } => format!(
                "Sets the large attribute `{name}`: `Some` uploads a new S3 object, `None` \
                 removes the attribute and its object."
            ),
            _ => {
                format!("Sets the attribute `{name}`; a value that serializes to null removes it.")
            }
        };
        setters.push(quote! {
            #[doc = #doc]
            #[must_use]
            pub fn #setter(mut self, value: #value_ty) -> Self {
                let value: #ty = #p::Into::into(value);
                #set;
                self
            }
        });
    }

    let if_version = input.version().map(|field| {
        let doc = format!(
            "Optimistic locking on the version attribute `{}`: the update succeeds \
             only if the stored version is still `version`, and writes `version + 1`; \
             otherwise it fails with `Error::VersionConflict`.",
            field.name
        );
        quote! {
            #[doc = #doc]
            #[must_use]
            pub fn if_version(self, version: u64) -> Self {
                #update {
                    changes: self.changes.if_version(version),
                }
            }
        }
    });

    let struct_doc = if input.version().is_some() {
        format!(
            "Typed changes to a stored `{model}`, built with `{model}::changes()`: one \
             `set_<field>` method per field that is neither a key nor the version, \
             `if_version` and `condition`. Converts into the `Changes` that \
             `update_large` takes."
        )
    } else {
        format!(
            "Typed changes to a stored `{model}`, built with `{model}::changes()`: one \
             `set_<field>` method per field that is not a key, and `condition`. Converts \
             into the `Changes` that `update_large` takes."
        )
    };
    let new_doc = format!("No changes to a `{model}` yet.");

    quote! {
        #[doc = #struct_doc]
        #[allow(dead_code)]
        #vis struct #update {
            changes: #p::Changes<#ident>,
        }

        #[allow(dead_code)]
        impl #update {
            #[doc = #new_doc]
            #[must_use]
            pub fn new() -> Self {
                #update {
                    changes: #p::Changes::new(),
                }
            }

            #(#setters)*

            #if_version

            /// Adds a condition on the stored item; several conditions are combined
            /// with AND, and the update fails if they do not hold.
            #[must_use]
            pub fn condition(mut self, condition: #p::Condition) -> Self {
                self.changes.and_condition(condition);
                self
            }
        }

        #[automatically_derived]
        impl #p::Default for #update {
            fn default() -> Self {
                #update::new()
            }
        }

        #[automatically_derived]
        impl #p::From<#update> for #p::Changes<#ident> {
            fn from(update: #update) -> Self {
                update.changes
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Debug for #update {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.changes, f)
            }
        }
    }
}

/// The atomic operations on an ordinary field, where its type fits:
/// `add_<field>` (numbers), `append_<field>` (lists), and
/// `set_<field>_if_not_exists` (any type).
fn extra_setters(
    p: &TokenStream,
    field: &Field,
    inner: &syn::Type,
    param: &dyn Fn(&syn::Type) -> TokenStream,
) -> Vec<TokenStream> {
    let (member, name) = (field.ident, &field.name);
    let base = member.unraw();
    let mut out = Vec::new();
    if is_number(inner) {
        let add = format_ident!("add_{}", base, span = member.span());
        let doc = format!(
            "Adds `by` to the number attribute `{name}` atomically (DynamoDB's `ADD`; \
             an absent attribute starts at 0). A negative `by` subtracts."
        );
        let add_call = quote_spanned!(inner.span()=> self.changes.add_attr::<#inner>(#name, &by));
        out.push(quote! {
            #[doc = #doc]
            #[must_use]
            pub fn #add(mut self, by: #inner) -> Self {
                #add_call;
                self
            }
        });
    }
    if let Some(element) = vec_inner(inner) {
        let append = format_ident!("append_{}", base, span = member.span());
        let doc = format!(
            "Appends `values` to the list attribute `{name}` atomically (DynamoDB's \
             `list_append`; an absent attribute is created with `values`)."
        );
        let append_call = quote_spanned!(element.span()=> self.changes.append_attr::<#element>(#name, &values, true));
        out.push(quote! {
            #[doc = #doc]
            #[must_use]
            pub fn #append(mut self, values: impl #p::IntoIterator<Item = #element>) -> Self {
                let values: #p::Vec<#element> = #p::Iterator::collect(#p::IntoIterator::into_iter(values));
                #append_call;
                self
            }
        });
    }
    let if_absent = format_ident!("set_{}_if_not_exists", base, span = member.span());
    let value = param(inner);
    let doc = format!(
        "Sets the attribute `{name}` only if the stored item does not have it \
             (DynamoDB's `if_not_exists`)."
    );
    let if_absent_call =
        quote_spanned!(inner.span()=> self.changes.set_if_not_exists_attr::<#inner>(#name, &value));
    out.push(quote! {
        #[doc = #doc]
        #[must_use]
        pub fn #if_absent(mut self, value: #value) -> Self {
            let value: #inner = #p::Into::into(value);
            #if_absent_call;
            self
        }
    });
    out
}

/// `{Name}Update`.
fn update_ident(ident: &Ident) -> Ident {
    format_ident!("{}Update", ident.unraw(), span = ident.span())
}
