//! Uploads that bypass the application: a presigned PUT or browser POST of
//! one large value straight to S3, then a commit of its pointer through the
//! protocol, with the guarantees of any other write.
//!
//! 1. The application asks for an [`UploadTicket`]
//!    ([`Store::presign_upload`]) for one attribute of one item and the
//!    content the client will send, named by its checksum (the attribute's
//!    algorithm, [`ChecksumAlgorithm`]); the object key is that content's
//!    address, as for any value vhs writes.
//! 2. The client uploads with the ticket's URL and headers (PUT) or form fields
//!    (POST). S3 itself refuses other bytes (the checksum header is signed),
//!    another size, and (PUT) an upload onto an existing object.
//! 3. The application commits: [`Store::create_large_from_upload`] or
//!    [`Store::update_large_from_upload`]. The ticket's signature is checked
//!    first (it travelled through the client: a forged or altered one is
//!    refused before anything is written), then the object is checked with
//!    HeadObject (size, and checksum where S3 reports one; else it is read and
//!    hashed), then the pointer is committed through the protocol
//!    ([`UploadOrder::Uploaded`]): the item is read, each object is proven to
//!    exist after that read, and the write is conditioned on the state read.
//!    A ticket commits once: its id is the write's token, which the item's
//!    history keeps ([`TicketProblem::Used`]).
//!
//! An upload that is never committed is an orphan: GC collects it once the
//! ticket's commit deadline passed (its object carries the deadline as
//! metadata, `x-amz-meta-vhs-commit-by`), not before, whatever its grace.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;

use super::{check_item_size, new_token, traced, Staged, Store, Upload, UploadOrder};
use crate::backend::{
    BackendExt as _, PresignUpload, PresignedUpload, UploadMethod, MAX_PUT_OBJECT_BYTES,
};
use crate::changes::Changes;
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::error::{Error, Result, TicketProblem};
use crate::layout::{object_id, Pointer};
use crate::model::{Key, Model};
use crate::protocol::decide::Plan;
use crate::protocol::item::{State, Target};
use crate::store::Updated;

/// How long after a ticket's URL expires its upload may still be committed
/// (a client that sent its last byte just before the expiry, an application
/// that commits a little later). GC leaves the object alone until then.
pub const UPLOAD_COMMIT_MARGIN: Duration = Duration::from_secs(15 * 60);

/// The longest a presigned URL is valid (SigV4's limit).
pub const MAX_UPLOAD_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The object metadata key holding a presigned upload's commit deadline
/// (unix seconds), which GC respects.
pub const COMMIT_BY_METADATA: &str = "vhs-commit-by";

/// The smallest ticket secret [`StoreBuilder::upload_secret`](crate::StoreBuilder::upload_secret) accepts.
pub const MIN_UPLOAD_SECRET_BYTES: usize = 32;

/// What a presigned upload may hold: the content's checksum (which names
/// its object), its size or largest size, its Content-Type, how long the URL
/// is valid, and how the client sends it.
///
/// ```
/// use std::time::Duration;
/// use vhs_core::{ChecksumAlgorithm, UploadSpec};
/// let spec = UploadSpec::new(ChecksumAlgorithm::Sha256.digest(b"hello"))
///     .size(5)
///     .content_type("text/plain")
///     .expires_in(Duration::from_secs(300));
/// assert_eq!(spec.checksum().algorithm(), ChecksumAlgorithm::Sha256);
/// ```
#[derive(Debug, Clone)]
pub struct UploadSpec {
    checksum: Checksum,
    size: Option<u64>,
    max_size: Option<u64>,
    content_type: Option<String>,
    expires_in: Duration,
    method: UploadMethod,
}

impl UploadSpec {
    /// An upload of the content whose checksum is `checksum` (computed by the
    /// client, in the attribute's algorithm), by PUT, valid for 15 minutes.
    pub fn new(checksum: Checksum) -> Self {
        UploadSpec {
            checksum,
            size: None,
            max_size: None,
            content_type: None,
            expires_in: Duration::from_secs(15 * 60),
            method: UploadMethod::Put,
        }
    }

    /// The exact size in bytes (PUT: a signed `Content-Length`; POST: both
    /// bounds of `content-length-range`).
    pub fn size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// The largest size in bytes (POST: `content-length-range`; both
    /// methods: checked again at the commit).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The Content-Type the client must send (default: the attribute's).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// How long the URL is valid (default 15 minutes, at most 7 days).
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = expires_in;
        self
    }

    /// A browser form POST (S3's POST policy) instead of a PUT.
    pub fn post(mut self) -> Self {
        self.method = UploadMethod::Post;
        self
    }

    /// The content's checksum.
    pub fn checksum(&self) -> &Checksum {
        &self.checksum
    }
}

/// A presigned upload of one large value, and what its commit will check:
/// hand [`UploadTicket::upload`] to the client, keep the ticket (or let it
/// travel through the client: it is signed with the store's upload secret,
/// and any change to what it names is refused at the commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTicket {
    /// What the client sends: method, URL, headers or form fields.
    pub upload: PresignedUpload,
    /// The table.
    pub table: String,
    /// The large attribute.
    pub attr: String,
    /// The object's key in the store's bucket (the content's address).
    pub object_key: String,
    /// The content's checksum, as a key segment (`sha256=…`).
    pub checksum: String,
    /// The exact size, if the ticket names one.
    pub size: Option<u64>,
    /// The largest size, if the ticket names one.
    pub max_size: Option<u64>,
    /// When the URL expires (unix seconds).
    pub expires_at: u64,
    /// Until when the upload may be committed (unix seconds): the expiry plus
    /// the store's [`Options::upload_commit_margin`](crate::Options::upload_commit_margin).
    pub commit_by: u64,
    /// The ticket's id: the token its commit's write carries.
    pub id: String,
    /// HMAC-SHA256 of the fields above but `upload`, with the store's upload
    /// secret, in hex.
    pub signature: String,
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl UploadTicket {
    /// What the signature covers: every field the commit relies on.
    fn signed_text(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
        [
            "vhs-upload-ticket-1",
            &self.table,
            &self.attr,
            &self.object_key,
            &self.checksum,
            &opt(self.size),
            &opt(self.max_size),
            &self.expires_at.to_string(),
            &self.commit_by.to_string(),
            &self.id,
        ]
        .join("\n")
    }

    fn mac(&self, secret: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key size");
        mac.update(self.signed_text().as_bytes());
        mac
    }

    fn sign(&mut self, secret: &[u8]) {
        let tag = self.mac(secret).finalize().into_bytes();
        self.signature = tag.iter().map(|b| format!("{b:02x}")).collect();
    }

    /// Whether the signature is this ticket's under `secret` (in constant
    /// time).
    fn verify(&self, secret: &[u8]) -> bool {
        let Some(tag) = (0..self.signature.len() / 2)
            .map(|i| u8::from_str_radix(self.signature.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        self.signature.len() == 64 && self.mac(secret).verify_slice(&tag).is_ok()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn refused(problem: TicketProblem) -> Error {
    Error::Ticket { problem }
}

impl Store {
    fn upload_secret(&self) -> Result<&[u8]> {
        self.inner.upload_secret.as_deref().ok_or_else(|| {
            Error::invalid(
                "presigned uploads need a secret to sign their tickets with: \
                 StoreBuilder::upload_secret",
            )
        })
    }

    /// A presigned upload of the value of large attribute `attr` of item
    /// `key`: the client sends the content `spec` names straight to S3, and
    /// [`Store::create_large_from_upload`] or
    /// [`Store::update_large_from_upload`] commits it. Nothing is written
    /// (presigning is local).
    ///
    /// Refused before anything: an attribute that is not large, a checksum of
    /// another algorithm than the attribute's, a size over 5 GiB, an expiry
    /// over 7 days, no upload secret on the store. The object is stored as it
    /// is sent: an attribute's `compress` does not apply to it.
    pub async fn presign_upload<M: Model>(
        &self,
        key: &Key<M>,
        attr: &str,
        spec: UploadSpec,
    ) -> Result<UploadTicket> {
        let secret = self.upload_secret()?;
        let target = self.target(key)?;
        let large = large_attr::<M>(attr)?;
        if spec.checksum.algorithm() != large.checksum {
            return Err(Error::invalid(format!(
                "attribute `{attr}` names its objects by {}; the upload's checksum is {}",
                large.checksum,
                spec.checksum.algorithm()
            )));
        }
        if spec.size.or(spec.max_size).unwrap_or(0) > MAX_PUT_OBJECT_BYTES {
            return Err(Error::invalid(format!(
                "a presigned upload holds at most {MAX_PUT_OBJECT_BYTES} bytes (S3's limit of one \
                 request); upload bigger values through the store"
            )));
        }
        if let (Some(size), Some(max)) = (spec.size, spec.max_size) {
            if size > max {
                return Err(Error::invalid(format!(
                    "the upload's size {size} is above its max_size {max}"
                )));
            }
        }
        if spec.expires_in.is_zero() || spec.expires_in > MAX_UPLOAD_EXPIRY {
            return Err(Error::invalid(format!(
                "a presigned upload expires within 7 days, not {:?}",
                spec.expires_in
            )));
        }
        let object_key = target.render_key(large.name, &object_id(None, &spec.checksum));
        if object_key.len() > crate::backend::MAX_KEY_BYTES {
            return Err(Error::invalid(format!(
                "the S3 key for attribute `{attr}` of item {} would be {} bytes, above S3's \
                 limit of {}",
                target.describe,
                object_key.len(),
                crate::backend::MAX_KEY_BYTES
            )));
        }
        let expires_at = unix_now() + spec.expires_in.as_secs();
        let commit_by = expires_at + self.options().upload_commit_margin.as_secs();
        let mut metadata = HashMap::new();
        metadata.insert(COMMIT_BY_METADATA.to_owned(), commit_by.to_string());
        // The class and tags of any object of the attribute.
        let tags = match &self.inner.tagging {
            Some(f) => crate::store::tags::object_tags(f, &target.table, large.name, &target.key)?,
            None => Vec::new(),
        };
        let request = PresignUpload {
            method: spec.method,
            bucket: self.bucket().to_owned(),
            key: object_key.clone(),
            checksum: spec.checksum.clone(),
            content_type: spec
                .content_type
                .clone()
                .unwrap_or_else(|| large.content_type.to_owned()),
            size: spec.size,
            max_size: spec.max_size.or(spec.size),
            metadata,
            storage_class: large
                .storage_class
                .map(str::to_owned)
                .or_else(|| self.options().storage_class.clone()),
            tags,
            expires_in: spec.expires_in,
        };
        let upload = self.backend().presign_upload(&request).await?;
        let mut ticket = UploadTicket {
            upload,
            table: target.table.clone(),
            attr: large.name.to_owned(),
            object_key,
            checksum: spec.checksum.segment(),
            size: spec.size,
            max_size: spec.max_size,
            expires_at,
            commit_by,
            id: new_token(),
            signature: String::new(),
        };
        ticket.sign(secret);
        Ok(ticket)
    }

    /// Checks `tickets` for a write of `target`: signed by this store, for
    /// this table, item and attribute, before their deadline, one per
    /// attribute. Returns the large attributes' indexes and checksums.
    fn check_tickets<M: Model>(
        &self,
        target: &Target,
        tickets: &[UploadTicket],
    ) -> Result<Vec<(usize, Checksum)>> {
        let secret = self.upload_secret()?;
        if tickets.is_empty() {
            return Err(Error::invalid(
                "a commit of uploads needs at least one ticket",
            ));
        }
        let now = unix_now();
        let mut checked: Vec<(usize, Checksum)> = Vec::new();
        for ticket in tickets {
            if !ticket.verify(secret) {
                return Err(refused(TicketProblem::Forged));
            }
            if now > ticket.commit_by {
                return Err(refused(TicketProblem::Expired {
                    deadline: ticket.commit_by,
                    now,
                }));
            }
            let large = large_attr::<M>(&ticket.attr)?;
            let index = M::SCHEMA
                .large
                .iter()
                .position(|a| a.name == large.name)
                .expect("a large attribute of M");
            let checksum = Checksum::from_segment(&ticket.checksum)
                .ok_or_else(|| refused(TicketProblem::Forged))?;
            let mine = target.render_key(large.name, &object_id(None, &checksum));
            if ticket.table != target.table || ticket.object_key != mine {
                return Err(refused(TicketProblem::WrongTarget {
                    issued: format!("{} in table {}", ticket.object_key, ticket.table),
                    committed: format!("{mine} in table {}", target.table),
                }));
            }
            if checked.iter().any(|(i, _)| *i == index) {
                return Err(Error::invalid(format!(
                    "two tickets for attribute `{}`",
                    large.name
                )));
            }
            checked.push((index, checksum));
        }
        Ok(checked)
    }

    /// Checks that the object of `ticket` is there with its size and
    /// checksum: HeadObject, and where S3 reports no checksum or another one
    /// (an ETag that is not an MD5), or with
    /// [`Options::rehash_uploads`](crate::Options::rehash_uploads), a read of
    /// the object, hashed. Returns its size.
    async fn check_uploaded(&self, ticket: &UploadTicket, checksum: &Checksum) -> Result<u64> {
        let bucket = self.bucket();
        let uri = Pointer {
            bucket: bucket.to_owned(),
            key: ticket.object_key.clone(),
        }
        .uri();
        let info = self
            .backend()
            .head_object(bucket, &ticket.object_key)
            .await?
            .ok_or_else(|| Error::UploadMissing { uri: uri.clone() })?;
        let mismatch = |what: String| refused(TicketProblem::Mismatch(what));
        if ticket.size.is_some_and(|n| n != info.size) {
            return Err(mismatch(format!(
                "{uri} is {} bytes, the ticket names {}",
                info.size,
                ticket.size.unwrap_or_default()
            )));
        }
        if ticket.max_size.is_some_and(|n| info.size > n) {
            return Err(mismatch(format!(
                "{uri} is {} bytes, above the ticket's {}",
                info.size,
                ticket.max_size.unwrap_or_default()
            )));
        }
        let algorithm = checksum.algorithm();
        let reported = match algorithm {
            _ if self.options().rehash_uploads => None,
            ChecksumAlgorithm::Md5 => info
                .etag
                .as_deref()
                .and_then(|e| Checksum::from_hex(algorithm, &e.to_ascii_lowercase())),
            _ => info
                .checksums
                .get(algorithm.name())
                .and_then(|b64| Checksum::from_base64(algorithm, b64)),
        };
        let actual = match reported {
            Some(c) if &c == checksum => return Ok(info.size),
            // None reported, or another one: an ETag is not always an MD5
            // (SSE-KMS, a multipart upload), so only the bytes decide.
            _ => {
                self.hash_object(&ticket.object_key, info.size, algorithm, &uri)
                    .await?
            }
        };
        if &actual != checksum {
            return Err(mismatch(format!(
                "{uri} holds content whose {algorithm} is {}",
                actual.hex()
            )));
        }
        Ok(info.size)
    }

    /// The checksum of an object of `size` bytes, read in ranges within it
    /// (a range past the end is refused by some servers: moto).
    async fn hash_object(
        &self,
        key: &str,
        size: u64,
        algorithm: ChecksumAlgorithm,
        uri: &str,
    ) -> Result<Checksum> {
        const RANGE: u64 = 8 * 1024 * 1024;
        let missing = || Error::UploadMissing {
            uri: uri.to_owned(),
        };
        if size <= RANGE {
            // One GetObject (moto 5.2.5 refused a Range covering a whole
            // object that was uploaded with a checksum header).
            let object = self
                .backend()
                .get_object(self.bucket(), key)
                .await?
                .ok_or_else(missing)?;
            return Ok(algorithm.digest(&object.body));
        }
        let mut hasher = algorithm.hasher();
        let mut at = 0;
        while at < size {
            let range = self
                .backend()
                .get_object_range(self.bucket(), key, at..size.min(at + RANGE))
                .await?
                .ok_or_else(missing)?;
            if range.body.is_empty() {
                break;
            }
            hasher.update(&range.body);
            at += range.body.len() as u64;
        }
        Ok(hasher.finish())
    }

    /// The uploads of checked tickets, each verified.
    async fn uploaded<M: Model>(
        &self,
        target: &Target,
        tickets: &[UploadTicket],
    ) -> Result<Vec<Upload>> {
        let checked = self.check_tickets::<M>(target, tickets)?;
        let mut uploads = Vec::with_capacity(checked.len());
        for (ticket, (index, checksum)) in tickets.iter().zip(checked) {
            let size = self.check_uploaded(ticket, &checksum).await?;
            uploads.push(Upload::uploaded(
                index,
                M::SCHEMA.large[index].name,
                ticket.object_key.clone(),
                checksum,
                size,
            ));
        }
        uploads.sort_by_key(|u| u.index());
        Ok(uploads)
    }

    /// The write of a commit of uploads: `plan` on each state read, unless
    /// the first ticket's id (the write's token) is in the item's history
    /// already ([`TicketProblem::Used`]).
    async fn commit_uploads<M: Model>(
        &self,
        target: &Target,
        uploads: Vec<Upload>,
        changed: Vec<&'static str>,
        tickets: &[UploadTicket],
        mut plan: impl FnMut(&State) -> Plan + Send,
    ) -> Result<super::upload::Written<M>> {
        let token = tickets[0].id.clone();
        let mine = token.clone();
        self.write_with_token::<M>(
            target,
            uploads,
            UploadOrder::Uploaded,
            changed,
            token,
            move |state| match state.wrote(&mine) {
                true => Plan::Fail(refused(TicketProblem::Used)),
                false => plan(state),
            },
        )
        .await
    }

    /// Creates `item` with the values clients uploaded with `tickets` (one per
    /// large attribute they fill): checks the tickets and the objects, then
    /// writes the item through the protocol as [`Store::create_large`] does
    /// (never overwriting: [`Error::AlreadyExists`]). `item`'s own large
    /// values must all be `None`: a commit of uploads writes no other.
    ///
    /// Errors: [`Error::Ticket`] for a ticket refused (forged or altered,
    /// past its deadline, for another item, committed already, an object of
    /// another size or content), [`Error::UploadMissing`] when its object is
    /// not there; nothing is written then. A failed commit leaves the
    /// uploaded objects to GC (after the tickets' deadline).
    pub async fn create_large_from_upload<M: Model>(
        &self,
        item: &M,
        tickets: &[UploadTicket],
    ) -> Result<Staged<M>> {
        let key = item.primary_key();
        let span = tracing::info_span!(
            "create_large_from_upload",
            table = self.table_name::<M>(),
            key = %key,
            requests = Empty,
        );
        traced(&span, async {
            let target = self.target(&key)?;
            let values = crate::changes::LargeValues::of(item)?;
            if let Some((index, _)) = values.values.iter().find(|(_, v)| v.is_some()) {
                return Err(Error::invalid(format!(
                    "a commit of uploads writes only the uploaded values; attribute `{}` has a \
                     value (write it with update_large after the commit)",
                    M::SCHEMA.large[*index].name
                )));
            }
            let uploads = self.uploaded::<M>(&target, tickets).await?;
            let mut record = item.to_item()?;
            crate::model::stamp_updated_at::<M>(&mut record);
            for u in &uploads {
                if let Some(value) = u.stored(self.bucket()) {
                    record.insert(u.attr.to_owned(), value);
                }
            }
            check_item_size(&target, &record)?;
            let written = self
                .commit_uploads::<M>(&target, uploads, Vec::new(), tickets, |state| match state {
                    State::Live(_) => Plan::Fail(Error::AlreadyExists {
                        table: target.table.clone(),
                        key: target.describe.clone(),
                    }),
                    _ => Plan::Put(record.clone()),
                })
                .await?;
            Ok(written.staged)
        })
        .await
    }

    /// Updates item `key` with `changes` and the values clients uploaded with
    /// `tickets`: as [`Store::update_large`] (the item must exist; the
    /// objects the uploads replace are deleted through the protocol), with
    /// the checks of [`Store::create_large_from_upload`]. `changes` must set
    /// no large value itself.
    pub async fn update_large_from_upload<M: Model>(
        &self,
        key: &Key<M>,
        changes: impl Into<Changes<M>>,
        tickets: &[UploadTicket],
    ) -> Result<Updated<M>> {
        let span = tracing::info_span!(
            "update_large_from_upload",
            table = self.table_name::<M>(),
            key = %key,
            requests = Empty,
            cleanup = Empty,
        );
        let changes = changes.into();
        let updated = traced(&span, async {
            let target = self.target(key)?;
            if let Some((index, _)) = changes.large.values.first() {
                return Err(Error::invalid(format!(
                    "a commit of uploads writes only the uploaded values; the changes set \
                     attribute `{}` (write it with update_large)",
                    M::SCHEMA.large[*index].name
                )));
            }
            let uploads = self.uploaded::<M>(&target, tickets).await?;
            let mut prepared = self.prepare_update(&target, &changes).await?;
            for u in &uploads {
                if let Some(AttributeValue::S(uri)) = u.stored(self.bucket()) {
                    prepared
                        .update
                        .set
                        .push((u.attr.to_owned(), AttributeValue::S(uri)));
                    prepared.changed.push(u.attr);
                }
            }
            let (update, condition, stale) = (prepared.update, prepared.condition, prepared.stale);
            let written = self
                .commit_uploads::<M>(&target, uploads, prepared.changed, tickets, |state| {
                    match stale.check(state) {
                        Some(e) => Plan::Fail(e),
                        None => Plan::Update(update.clone(), condition.clone()),
                    }
                })
                .await?;
            Ok(Updated::from(written))
        })
        .await;
        if let Ok(updated) = &updated {
            updated.cleanup.record_in(&span);
        }
        updated
    }
}

/// The large attribute named `attr` of `M`.
fn large_attr<M: Model>(attr: &str) -> Result<&'static crate::model::LargeAttr> {
    M::SCHEMA
        .large
        .iter()
        .find(|a| a.name == attr)
        .ok_or_else(|| {
            Error::invalid(format!(
                "`{attr}` is not a large attribute of table {}",
                M::SCHEMA.table
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> UploadTicket {
        let mut t = UploadTicket {
            upload: PresignedUpload {
                method: UploadMethod::Put,
                url: "memory://b/k".to_owned(),
                headers: Vec::new(),
                fields: Vec::new(),
            },
            table: "docs".to_owned(),
            attr: "body".to_owned(),
            object_key: "docs/pk=a/attr=body/sha256=00".to_owned(),
            checksum: "sha256=00".to_owned(),
            size: Some(5),
            max_size: None,
            expires_at: 100,
            commit_by: 1000,
            id: "t1".to_owned(),
            signature: String::new(),
        };
        t.sign(b"0123456789abcdef0123456789abcdef");
        t
    }

    #[test]
    fn a_ticket_verifies_under_its_secret_only() {
        let t = ticket();
        assert!(t.verify(b"0123456789abcdef0123456789abcdef"));
        assert!(!t.verify(b"0123456789abcdef0123456789abcdeX"));
    }

    #[test]
    fn any_change_to_what_a_commit_relies_on_breaks_the_signature() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let changes: Vec<fn(&mut UploadTicket)> = vec![
            |t| t.table.push('x'),
            |t| t.attr.push('x'),
            |t| t.object_key.push('x'),
            |t| t.checksum.push('0'),
            |t| t.size = Some(6),
            |t| t.size = None,
            |t| t.max_size = Some(1 << 40),
            |t| t.expires_at += 1,
            |t| t.commit_by += 1,
            |t| t.id.push('x'),
            |t| {
                let flipped = if t.signature.starts_with('0') {
                    "1"
                } else {
                    "0"
                };
                t.signature.replace_range(0..1, flipped)
            },
            |t| t.signature.truncate(10),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut t = ticket();
            change(&mut t);
            assert!(!t.verify(secret), "change {i} went unnoticed");
        }
        // The URL is the client's business: changing it breaks only its upload.
        let mut t = ticket();
        t.upload.url.push('x');
        assert!(t.verify(secret));
    }

    #[test]
    fn a_ticket_survives_json() {
        let t = ticket();
        let json = serde_json::to_string(&t).unwrap();
        let back: UploadTicket = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert!(back.verify(b"0123456789abcdef0123456789abcdef"));
        assert!(json.contains(r#""method":"PUT""#), "{json}");
    }
}
