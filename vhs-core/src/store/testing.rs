//! What the store's unit tests share: a model written by hand and a store
//! over a memory backend that counts its calls.

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;

use crate::blob::Blob;
use crate::error::{Error, Result};
use crate::fault::FaultyBackend;
use crate::memory::MemoryBackend;
use crate::model::{Item, Key, KeyDef, KeyKind, KeyValue, LargeAttr, Model, Schema};
use crate::store::{Background, Store};

/// A model written by hand: `id`, and one large `body` always in S3.
#[derive(Debug, PartialEq)]
pub(crate) struct Doc {
    pub(crate) id: String,
    pub(crate) body: Option<Bytes>,
}

impl Model for Doc {
    const SCHEMA: Schema = Schema {
        table: "docs",
        hash_key: KeyDef {
            name: "id",
            kind: KeyKind::String,
        },
        range_key: None,
        large: &[LargeAttr {
            name: "body",
            content_type: "application/octet-stream",
            inline_below: 0,
            compress: None,
            checksum: crate::ChecksumAlgorithm::Md5,
            storage_class: None,
            spool: false,
        }],
        attributes: &[],
        version: None,
        indexes: &[],
        updated_at: None,
        ttl: None,
    };

    fn primary_key(&self) -> Key<Self> {
        Key::from_parts(KeyValue::String(self.id.clone()), None)
    }

    fn to_item(&self) -> Result<Item> {
        Ok(Item::from([(
            "id".to_owned(),
            AttributeValue::S(self.id.clone()),
        )]))
    }

    fn from_item(item: Item) -> Result<Self> {
        match item.get("id") {
            Some(AttributeValue::S(id)) => Ok(Doc {
                id: id.clone(),
                body: None,
            }),
            _ => Err(Error::invalid("no id")),
        }
    }

    fn encode_large(&self) -> Result<Vec<Option<Blob>>> {
        Ok(vec![self.body.clone().map(Blob::from_bytes)])
    }

    fn decode_large(&mut self, index: usize, bytes: Bytes) -> Result<()> {
        if index == 0 {
            self.body = Some(bytes);
        }
        Ok(())
    }
}

pub(crate) fn doc(id: &str, body: &'static [u8]) -> Doc {
    Doc {
        id: id.to_owned(),
        body: Some(Bytes::from_static(body)),
    }
}

/// A store over a faulty memory backend (to count the calls it sees),
/// background jobs run by `flush` only, its table and bucket created.
pub(crate) async fn store() -> (Store, FaultyBackend<MemoryBackend>) {
    let backend = FaultyBackend::new(MemoryBackend::new());
    let store = Store::builder(backend.clone(), "bucket")
        .background(Background::OnFlush)
        .build()
        .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Doc>().await.unwrap();
    (store, backend)
}

/// The key of the `Doc` `id`.
pub(crate) fn key(id: &str) -> Key<Doc> {
    Key::from_parts(KeyValue::String(id.to_owned()), None)
}
