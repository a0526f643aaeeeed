//! Building a [`Store`]: its [`Options`] (defaults and validation) and the
//! [`StoreBuilder`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::limit::Limited;
use super::metered::Metered;
use super::tags::{check_storage_class, TagContext, TagFn};
use super::trace::Traced;
use super::{janitor, transfer, Background, Cleanup, Inner, Store};
use crate::backend::{Backend, MAX_PUT_OBJECT_BYTES, MIN_PART_BYTES};
use crate::cache::{CacheOptions, Invalidating, ReadCache};
use crate::error::{Error, Result};
use crate::layout::normalize_prefix;
use crate::model::Model;
use crate::protocol::clock::Settings;
use crate::retry::RetryPolicy;
use janitor::Janitor;
/// Behaviour switches of a [`Store`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// When the DynamoDB write of a create or update fails, delete the objects the
    /// call created (never one the stored item references). Default `true`.
    ///
    /// Objects created by a call whose *upload* step fails are always removed,
    /// since no item can reference them yet.
    pub clean_up_when_failed: bool,
    /// After a successful update, delete the old objects the new item no longer
    /// references. Default `true`.
    pub clean_up_when_succeeded: bool,
    /// How many S3 requests one call runs at once. Default 16.
    pub max_concurrency: usize,
    /// The protocol's time bound `R` (see [`protocol::spec`](crate::protocol::spec)),
    /// **recorded for a table the first time a store needs it**
    /// ([`Store::ensure_table`] does): every process working on that table
    /// then uses the recorded value, whatever its own options say, so two
    /// processes can never disagree. Every request must land within `R/4` of
    /// being sent, or never; a write uploads again if more than `R/2` passed
    /// since its uploads began; a deleter does not send a delete more than
    /// `R/4` after its mark; marks and reservations are dead (taken over by GC
    /// and by writers) `R + S` after their stamp; empty placeholders are
    /// removed `2R + S` after their newest stamp. Default 1 hour.
    pub retention: Duration,
    /// The bound `S` on the difference between any two clocks (of the hosts
    /// running vhs against a table), recorded with the retention. A stamp more
    /// than `S` in the future is never judged dead. Default: 2 minutes, or a
    /// quarter of the retention if that is shorter.
    pub max_clock_skew: Option<Duration>,
    /// How long a write waits for a deletion of the same object (or of the item)
    /// to finish before giving up with [`Error::Busy`]. Default: 50 attempts, 5 ms
    /// doubling up to 500 ms.
    pub wait: RetryPolicy,
    /// Deferred cleanup: an update or delete returns once its commit is durable,
    /// and deletes the objects it replaced on the store's background queue (see
    /// [`Store::flush`]). One round trip fewer for both. Default `false`: they are
    /// deleted before the call returns.
    pub defer_cleanup: bool,
    /// Where background jobs run. Default [`Background::Spawn`].
    pub background: Background,
    /// How many background jobs may be queued or running at once; a call that
    /// would queue one more waits. Default 1024.
    pub cleanup_queue: usize,
    /// Values larger than this go up by multipart upload, values up to it by one
    /// PutObject. Default 16 MiB; at most 5 GiB (S3's PutObject limit).
    pub multipart_threshold: u64,
    /// The size of a multipart upload's parts, and of the ranges a download
    /// fetches. Default 8 MiB; at least 5 MiB (S3's minimum part). A value above
    /// 10,000 parts of this size (78 GiB by default) uses larger parts.
    pub part_size: u64,
    /// How many parts of one value are sent or fetched at once. A transfer holds
    /// at most `part_concurrency + 2` parts in memory. Default 4.
    pub part_concurrency: usize,
    /// Store-wide bound on requests in flight, per service: at most this many
    /// DynamoDB requests and this many S3 requests at once, over every call and
    /// background job of the store (and its clones). Ten thousand concurrent calls
    /// queue for permits instead of opening ten thousand connections. Default 128.
    pub max_in_flight: usize,
    /// Store-wide bound on the bytes of download ranges in flight or waiting to
    /// be written, over every read of the store (and its clones) that goes range
    /// by range: [`Store::download_large`], [`Store::read_large_range`], `Blob`
    /// values read by [`Store::get_large`], queries and scans, `verify` with
    /// `rehash`. A download always gets at least one range. Default 32 MiB.
    pub download_buffer: u64,
    /// Where a [`Blob`](crate::Blob) value read back is spooled when it is larger
    /// than one download range ([`Options::part_size`]): a temporary file,
    /// removed when the last clone of the `Blob` is dropped. Default:
    /// [`std::env::temp_dir`].
    pub spool_dir: Option<std::path::PathBuf>,
    /// The storage class objects are written in when their attribute names none
    /// (`#[large(storage_class = "...")]` wins): one of
    /// [`STORAGE_CLASSES`](crate::STORAGE_CLASSES). Default `None`: the
    /// bucket's default, STANDARD.
    pub storage_class: Option<String>,
    /// How long after a presigned upload's URL expires it may still be
    /// committed ([`Store::presign_upload`]); GC leaves its object alone
    /// until then. Default [`UPLOAD_COMMIT_MARGIN`](crate::UPLOAD_COMMIT_MARGIN),
    /// 15 minutes.
    pub upload_commit_margin: Duration,
    /// Read and hash each presigned upload at its commit instead of trusting
    /// the checksum the server stored with it. S3 verifies an upload's
    /// checksum header before it stores the object; some S3-compatible
    /// servers store the header unverified (moto 5.2.5 does), and there only a
    /// read proves the content. Default `false`.
    pub rehash_uploads: bool,
    /// Keep what an update, a delete or a transaction replaces readable this
    /// long after the write (default `None`: deleted right after it, as
    /// [`Options::clean_up_when_succeeded`] says). `24 h` matches a DynamoDB
    /// stream's retention: a consumer of the change feed
    /// ([`stream`](crate::stream)) that reads an old image's large values
    /// within it always finds them.
    ///
    /// The write reserves the replaced objects on the item with a *kept*
    /// stamp (`vhs:del:…` = `{ms} {token} once keep={ms}`) and deletes
    /// nothing; the reservation is dead `R + S` after the keep time, and GC
    /// ([`Store::gc`]) then takes it over and deletes the object through the
    /// protocol. Until then each kept object costs its bytes in S3 and about
    /// 80 bytes in its item (a deleted item stays as a placeholder), so an
    /// item replaced very often grows: at most about 4,000 kept objects fit
    /// in DynamoDB's 400 KB. A writer that points to a kept object again
    /// (writes the same content back) ends its reservation without waiting.
    pub keep_replaced_for: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clean_up_when_failed: true,
            clean_up_when_succeeded: true,
            max_concurrency: 16,
            retention: Duration::from_secs(3600),
            max_clock_skew: None,
            wait: RetryPolicy::attempts(50),
            defer_cleanup: false,
            background: Background::Spawn,
            cleanup_queue: 1024,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            part_concurrency: 4,
            max_in_flight: 128,
            download_buffer: 32 * 1024 * 1024,
            spool_dir: None,
            storage_class: None,
            upload_commit_margin: super::UPLOAD_COMMIT_MARGIN,
            rehash_uploads: false,
            keep_replaced_for: None,
        }
    }
}

impl Options {
    /// [`Options::keep_replaced_for`] in milliseconds, as the protocol's
    /// machines take it.
    pub(crate) fn keep_ms(&self) -> Option<u64> {
        self.keep_replaced_for
            .map(|k| k.as_millis().min(u64::MAX as u128) as u64)
    }

    /// The protocol settings these options propose for a table that has none
    /// recorded yet.
    pub fn settings(&self) -> Settings {
        Settings::new(
            self.retention,
            self.max_clock_skew
                .unwrap_or_else(|| Duration::from_secs(120).min(self.retention / 4)),
        )
    }
}

/// Builds a [`Store`].
pub struct StoreBuilder {
    backend: Arc<dyn Backend>,
    bucket: String,
    prefix: String,
    options: Options,
    tables: HashMap<String, String>,
    table_prefixes: HashMap<String, String>,
    on_cleanup: Option<janitor::OnCleanup>,
    cache: Option<CacheOptions>,
    tagging: Option<TagFn>,
    upload_secret: Option<Vec<u8>>,
}

impl Store {
    /// Starts building a store over `backend`, with objects in `bucket`.
    pub fn builder(backend: impl Backend, bucket: impl Into<String>) -> StoreBuilder {
        StoreBuilder {
            backend: Arc::new(backend),
            bucket: bucket.into(),
            prefix: String::new(),
            options: Options::default(),
            tables: HashMap::new(),
            table_prefixes: HashMap::new(),
            on_cleanup: None,
            cache: None,
            tagging: None,
            upload_secret: None,
        }
    }
}

impl StoreBuilder {
    /// Objects go under this key prefix, each table's under `{prefix}/{table}`
    /// unless [`table_prefix`](Self::table_prefix) says otherwise. Leading,
    /// trailing and doubled slashes are removed, so `"/docs//v1/"` becomes `docs/v1`.
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> Self {
        self.prefix = normalize_prefix(prefix.as_ref());
        self
    }

    /// Stores model `M` in `table` instead of its default table.
    pub fn table_for<M: Model>(self, table: impl Into<String>) -> Self {
        self.table(M::SCHEMA.table, table)
    }

    /// Every model whose default table is `default` uses `table` instead.
    pub fn table(mut self, default: impl Into<String>, table: impl Into<String>) -> Self {
        self.tables.insert(default.into(), table.into());
        self
    }

    /// Puts the objects of `table` (the table name as stored, after any
    /// [`table`](Self::table) mapping) under exactly `prefix` instead of
    /// `{store prefix}/{table}`: for example the prefix another library (such as
    /// pynamodb_mate) wrote that table's objects under. No other table may use
    /// the same prefix or one nested in it: [`build`](Self::build) refuses it.
    pub fn table_prefix(mut self, table: impl Into<String>, prefix: impl AsRef<str>) -> Self {
        self.table_prefixes
            .insert(table.into(), normalize_prefix(prefix.as_ref()));
        self
    }

    /// Replaces all options.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Sets [`Options::rehash_uploads`].
    pub fn rehash_uploads(mut self, yes: bool) -> Self {
        self.options.rehash_uploads = yes;
        self
    }

    /// Sets [`Options::upload_commit_margin`].
    pub fn upload_commit_margin(mut self, margin: Duration) -> Self {
        self.options.upload_commit_margin = margin;
        self
    }

    /// Sets [`Options::clean_up_when_failed`].
    pub fn clean_up_when_failed(mut self, yes: bool) -> Self {
        self.options.clean_up_when_failed = yes;
        self
    }

    /// Sets [`Options::keep_replaced_for`]: what a write replaces or deletes
    /// stays readable for `keep` after it, then GC deletes it.
    pub fn keep_replaced_for(mut self, keep: Duration) -> Self {
        self.options.keep_replaced_for = Some(keep);
        self
    }

    /// Sets [`Options::clean_up_when_succeeded`].
    pub fn clean_up_when_succeeded(mut self, yes: bool) -> Self {
        self.options.clean_up_when_succeeded = yes;
        self
    }

    /// Sets [`Options::max_concurrency`] (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.options.max_concurrency = n;
        self
    }

    /// Sets [`Options::retention`].
    pub fn retention(mut self, retention: Duration) -> Self {
        self.options.retention = retention;
        self
    }

    /// Sets [`Options::max_clock_skew`].
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.options.max_clock_skew = Some(skew);
        self
    }

    /// Sets [`Options::wait`].
    pub fn wait(mut self, policy: RetryPolicy) -> Self {
        self.options.wait = policy;
        self
    }

    /// Sets [`Options::defer_cleanup`].
    pub fn defer_cleanup(mut self, yes: bool) -> Self {
        self.options.defer_cleanup = yes;
        self
    }

    /// Sets [`Options::background`].
    pub fn background(mut self, background: Background) -> Self {
        self.options.background = background;
        self
    }

    /// Sets [`Options::cleanup_queue`] (at least 1).
    pub fn cleanup_queue(mut self, jobs: usize) -> Self {
        self.options.cleanup_queue = jobs;
        self
    }

    /// Sets [`Options::multipart_threshold`].
    pub fn multipart_threshold(mut self, bytes: u64) -> Self {
        self.options.multipart_threshold = bytes;
        self
    }

    /// Sets [`Options::part_size`].
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.options.part_size = bytes;
        self
    }

    /// Sets [`Options::max_in_flight`] (at least 1).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.options.max_in_flight = requests;
        self
    }

    /// Sets [`Options::download_buffer`].
    pub fn download_buffer(mut self, bytes: u64) -> Self {
        self.options.download_buffer = bytes;
        self
    }

    /// Sets [`Options::spool_dir`].
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.options.spool_dir = Some(dir.into());
        self
    }

    /// Sets [`Options::part_concurrency`] (at least 1).
    pub fn part_concurrency(mut self, parts: usize) -> Self {
        self.options.part_concurrency = parts;
        self
    }

    /// Sets [`Options::storage_class`]: objects of attributes that name no
    /// class of their own are written in `class`. [`build`](Self::build)
    /// refuses a class outside [`STORAGE_CLASSES`](crate::STORAGE_CLASSES).
    pub fn storage_class(mut self, class: impl Into<String>) -> Self {
        self.options.storage_class = Some(class.into());
        self
    }

    /// Tags every object the store writes: `vhs-table={table}` and
    /// `vhs-attr={attribute}` (what lifecycle rules per attribute filter by,
    /// see [`BucketSpec::transitions`](crate::BucketSpec::transitions)), then
    /// the tags `f` returns for it, say the tenant read from the item's key:
    ///
    /// ```
    /// # use vhs_core::{MemoryBackend, Store};
    /// let store = Store::builder(MemoryBackend::new(), "my-bucket")
    ///     .tag_objects(|object| match object.key_value("tenant") {
    ///         Some(tenant) => vec![("tenant".to_owned(), tenant.to_owned())],
    ///         None => Vec::new(),
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    ///
    /// The tags of each write are checked before anything is written: more
    /// than 10 in all, a key of more than 128 characters (or none), a value of
    /// more than 256, a key twice or a key of `f`'s starting with `vhs-` fail
    /// the call with [`Error::InvalidTags`]. Writing tagged objects needs
    /// `s3:PutObjectTagging` (see [`iam`](crate::iam)). Off by default: no
    /// tagging header is sent.
    pub fn tag_objects(
        mut self,
        f: impl Fn(&TagContext<'_>) -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        self.tagging = Some(Arc::new(f));
        self
    }

    /// Tags every object with vhs's own tags only (`vhs-table`, `vhs-attr`):
    /// [`tag_objects`](Self::tag_objects) with no tags of yours.
    pub fn tag_objects_with_names(self) -> Self {
        self.tag_objects(|_| Vec::new())
    }

    /// Calls `f` with the outcome of every background job (deletes, and the marks
    /// removed after them), as it finishes: say, to log leftovers.
    pub fn on_cleanup(mut self, f: impl Fn(&Cleanup) + Send + Sync + 'static) -> Self {
        self.on_cleanup = Some(Arc::new(f));
        self
    }

    /// Turns the read cache on (it is off by default): items read by
    /// [`Store::get_large`], query and scan pages, and object bodies, shared by
    /// the store's clones. Every write through this store invalidates what is
    /// cached of its table; **writes by other processes are not seen** until
    /// the TTL passes (see [`CacheOptions`]). Consistent reads bypass it.
    pub fn cache(mut self, options: CacheOptions) -> Self {
        self.cache = Some(options);
        self
    }

    /// The secret presigned uploads' tickets are signed with
    /// ([`Store::presign_upload`]), at least
    /// [`MIN_UPLOAD_SECRET_BYTES`](crate::MIN_UPLOAD_SECRET_BYTES) random
    /// bytes. Every process that commits uploads needs the same secret; a
    /// ticket signed with another one is refused
    /// ([`TicketProblem::Forged`](crate::TicketProblem::Forged)). Changing it
    /// invalidates the tickets issued before.
    pub fn upload_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.upload_secret = Some(secret.into());
        self
    }

    /// The store. Fails with [`Error::InvalidInput`], before anything is sent,
    /// on a bucket name S3 refuses (3 to 63 characters of lowercase letters,
    /// digits, `.` and `-`, a letter or digit first and last, no `..`, not an
    /// IPv4 address, none of S3's reserved prefixes and suffixes such as
    /// `xn--` and `-s3alias`), a zero concurrency, a storage class outside
    /// [`STORAGE_CLASSES`](crate::STORAGE_CLASSES), and on two tables whose
    /// objects would share a prefix (equal, or one inside the other).
    pub fn build(self) -> Result<Store> {
        check_bucket_name(&self.bucket)?;
        if self.options.max_concurrency == 0 {
            return Err(Error::invalid("max_concurrency must be at least 1"));
        }
        self.options.settings().check()?;
        if self.options.cleanup_queue == 0 {
            return Err(Error::invalid("cleanup_queue must be at least 1"));
        }
        if self.options.max_in_flight == 0 {
            return Err(Error::invalid("max_in_flight must be at least 1"));
        }
        if self.options.part_concurrency == 0 {
            return Err(Error::invalid("part_concurrency must be at least 1"));
        }
        if !(MIN_PART_BYTES..=MAX_PUT_OBJECT_BYTES).contains(&self.options.part_size) {
            return Err(Error::invalid(format!(
                "part_size is {} bytes; S3 parts are {MIN_PART_BYTES} to {MAX_PUT_OBJECT_BYTES} bytes",
                self.options.part_size
            )));
        }
        if self.options.multipart_threshold > MAX_PUT_OBJECT_BYTES {
            return Err(Error::invalid(format!(
                "multipart_threshold is {} bytes, above the {MAX_PUT_OBJECT_BYTES} a single PutObject accepts",
                self.options.multipart_threshold
            )));
        }
        if let Some(class) = &self.options.storage_class {
            check_storage_class(class)?;
        }
        if let Some(secret) = &self.upload_secret {
            if secret.len() < super::MIN_UPLOAD_SECRET_BYTES {
                return Err(Error::invalid(format!(
                    "the upload secret is {} bytes; tickets need at least {} random bytes",
                    secret.len(),
                    super::MIN_UPLOAD_SECRET_BYTES
                )));
            }
        }
        let cache = self.cache.map(|o| Arc::new(ReadCache::new(o)));
        let store = Store {
            inner: Arc::new(Inner {
                janitor: Janitor::new(
                    self.options.background,
                    self.options.cleanup_queue,
                    self.on_cleanup,
                ),
                backend: layered(self.backend, self.options.max_in_flight, cache.clone()),
                cache,
                settings: std::sync::Mutex::new(HashMap::new()),
                downloads: Arc::new(tokio::sync::Semaphore::new(transfer::budget_permits(
                    self.options.download_buffer,
                ))),
                bucket: self.bucket,
                prefix: self.prefix,
                options: self.options,
                tables: self.tables,
                table_prefixes: self.table_prefixes,
                tagging: self.tagging,
                upload_secret: self.upload_secret,
            }),
        };
        let known: HashSet<&str> = store
            .inner
            .tables
            .values()
            .chain(store.inner.table_prefixes.keys())
            .map(String::as_str)
            .collect();
        for table in known {
            store.table_prefix(table)?;
        }
        Ok(store)
    }
}

/// Checks `name` against S3's naming rules for general purpose buckets:
/// 3 to 63 characters; only lowercase letters, digits, `.` and `-`; a letter
/// or digit first and last; no `..`; not an IPv4 address; none of the
/// reserved prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes
/// (`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`).
///
/// [`Error::InvalidInput`] names the bucket and the rule broken.
pub(crate) fn check_bucket_name(name: &str) -> Result<()> {
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let broken = if !(3..=63).contains(&name.len()) {
        Some(format!(
            "must be 3 to 63 characters long, not {}",
            name.len()
        ))
    } else if let Some(c) = name.chars().find(|&c| !(alnum(c) || c == '.' || c == '-')) {
        Some(format!(
            "may hold only lowercase letters, digits, '.' and '-', not {c:?}"
        ))
    } else if !name.starts_with(alnum) || !name.ends_with(alnum) {
        Some("must start and end with a lowercase letter or a digit".to_owned())
    } else if name.contains("..") {
        Some("must not contain two adjacent periods".to_owned())
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("must not be formatted as an IP address".to_owned())
    } else if let Some(p) = PREFIXES.iter().find(|p| name.starts_with(*p)) {
        Some(format!("must not start with the reserved prefix {p:?}"))
    } else {
        SUFFIXES
            .iter()
            .find(|x| name.ends_with(*x))
            .map(|x| format!("must not end with the reserved suffix {x:?}"))
    };
    match broken {
        Some(rule) => Err(Error::invalid(format!(
            "bucket name {name:?} is not valid in S3: it {rule}"
        ))),
        None => Ok(()),
    }
}

/// The store's stack of backend layers, outermost first: the read cache told of
/// every write (when there is a cache), the concurrency limit, then tracing (so
/// a call is traced and counted once it has its permit) and metrics (so a
/// request's latency excludes the wait for its permit), over `backend`.
fn layered(
    backend: Arc<dyn Backend>,
    max_in_flight: usize,
    cache: Option<Arc<ReadCache>>,
) -> Arc<dyn Backend> {
    let limited = Limited::new(Traced(Metered(backend)), max_in_flight);
    match cache {
        Some(cache) => Arc::new(Invalidating {
            inner: limited,
            cache,
        }),
        None => Arc::new(limited),
    }
}
