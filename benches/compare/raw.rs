//! The benchmark's workload written by hand with the AWS SDK clients: the baselines.
//!
//! The item `{id, a, b, n}` keeps `s3://bucket/key` pointers to its two values. Keys are
//! unique per write (`raw/{id}/{attr}/{counter}`), so nothing is ever overwritten in place.
//! This is the plain pattern without any of vhs's guarantees: no content check on read, no
//! ordering between writers, a crash leaves whatever it leaves.
//!
//! [`Mode::Sequential`] sends one request after another, as a first version usually does.
//! [`Mode::Concurrent`] sends the object requests of one call together, as a careful user
//! does: create = uploads, then PutItem (2 round trips); get = GetItem, then the downloads (2);
//! update = upload, then UpdateItem returning the old pointer, then DeleteObject (3);
//! delete = DeleteItem returning the old item, then one DeleteObjects (2).

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;

/// How a call sends its object requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One request after another.
    Sequential,
    /// A call's object requests together.
    Concurrent,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The hand-written store over one table and one bucket.
pub struct Raw {
    pub ddb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub bucket: String,
    pub mode: Mode,
    counter: AtomicU64,
}

impl Raw {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        table: String,
        bucket: String,
        mode: Mode,
    ) -> Raw {
        Raw {
            ddb,
            s3,
            table,
            bucket,
            mode,
            counter: AtomicU64::new(0),
        }
    }

    /// Creates the table (hash key `id`); the bucket is the caller's.
    pub async fn create_table(&self) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        self.ddb
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .send()
            .await?;
        Ok(())
    }

    fn new_key(&self, id: &str, attr: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("raw/{id}/{attr}/{n}")
    }

    fn uri(&self, key: &str) -> AttributeValue {
        AttributeValue::S(format!("s3://{}/{key}", self.bucket))
    }

    fn key_of<'a>(&self, uri: &'a AttributeValue) -> Result<&'a str, Error> {
        let uri = uri.as_s().map_err(|_| "pointer is not a string")?;
        let prefix = format!("s3://{}/", self.bucket);
        Ok(uri.strip_prefix(prefix.as_str()).ok_or("foreign pointer")?)
    }

    async fn upload(&self, key: &str, body: Bytes) -> Result<(), Error> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await?;
        Ok(())
    }

    async fn download(&self, key: &str) -> Result<Bytes, Error> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await?;
        Ok(out.body.collect().await?.into_bytes())
    }

    async fn delete_objects(&self, keys: Vec<String>) -> Result<(), Error> {
        match self.mode {
            Mode::Sequential => {
                for key in keys {
                    self.s3
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .send()
                        .await?;
                }
            }
            Mode::Concurrent => {
                use aws_sdk_s3::types::{Delete, ObjectIdentifier};
                let objects = keys
                    .into_iter()
                    .map(|key| ObjectIdentifier::builder().key(key).build())
                    .collect::<Result<Vec<_>, _>>()?;
                self.s3
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(Delete::builder().set_objects(Some(objects)).build()?)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    /// Uploads both values, then writes the item if it does not exist.
    pub async fn create(&self, id: &str, a: Bytes, b: Bytes, n: u64) -> Result<(), Error> {
        let (ka, kb) = (self.new_key(id, "a"), self.new_key(id, "b"));
        match self.mode {
            Mode::Sequential => {
                self.upload(&ka, a).await?;
                self.upload(&kb, b).await?;
            }
            Mode::Concurrent => {
                tokio::try_join!(self.upload(&ka, a), self.upload(&kb, b))?;
            }
        }
        self.ddb
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(id.to_owned()))
            .item("a", self.uri(&ka))
            .item("b", self.uri(&kb))
            .item("n", AttributeValue::N(n.to_string()))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await?;
        Ok(())
    }

    /// Reads the item, then both values.
    pub async fn get(&self, id: &str) -> Result<(Bytes, Bytes, u64), Error> {
        let item = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .send()
            .await?
            .item
            .ok_or("no such item")?;
        let field = |name: &str| item.get(name).ok_or_else(|| format!("no {name}"));
        let (ka, kb) = (self.key_of(field("a")?)?, self.key_of(field("b")?)?);
        let n = field("n")?
            .as_n()
            .map_err(|_| "n is not a number")?
            .parse()?;
        let (a, b) = match self.mode {
            Mode::Sequential => (self.download(ka).await?, self.download(kb).await?),
            Mode::Concurrent => tokio::try_join!(self.download(ka), self.download(kb))?,
        };
        Ok((a, b, n))
    }

    /// Uploads the new `a`, points the item at it, then deletes the old object.
    pub async fn update(&self, id: &str, a: Bytes, n: u64) -> Result<(), Error> {
        let ka = self.new_key(id, "a");
        self.upload(&ka, a).await?;
        let old = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .update_expression("SET a = :a, n = :n")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":a", self.uri(&ka))
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await?
            .attributes
            .ok_or("no old attributes")?;
        let old_key = self.key_of(old.get("a").ok_or("no old a")?)?;
        self.delete_objects(vec![old_key.to_owned()]).await
    }

    /// Deletes the item, then the objects it pointed to.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let old = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_owned()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await?
            .attributes
            .ok_or("no such item")?;
        let keys = ["a", "b"]
            .iter()
            .map(|name| {
                let uri = old.get(*name).ok_or_else(|| format!("no {name}"))?;
                Ok(self.key_of(uri)?.to_owned())
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.delete_objects(keys).await
    }
}
