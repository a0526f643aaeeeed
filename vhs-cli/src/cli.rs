//! The command line: options, subcommands, help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Options are taken from flags, then VHS_* environment variables, then the AWS defaults
(AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ~/.aws/config, ...).

Keys: a KEY is the hash key value, or HASH/RANGE for a table with a range key. Write a
'/' or '%' inside a value as %2F or %25 (`vhs ls` prints keys in this form).

Without --prefix/--table-prefix, a command reading items infers the table prefix from
the pointers it finds (and says so on stderr), or refuses (exit 2) when they disagree.

Exit status: 0 success; 1 a check failed (verify found a problem, or pointers outside
the bucket and table prefix; a checksum mismatch; a gc delete failed); 2 invalid input or
usage; 3 not found (table, item, attribute); 4 DynamoDB or S3 failed (an unreachable
endpoint, missing credentials); 5 anything else (local I/O, ...).";

/// Provision, inspect, verify and clean up a vhs store: DynamoDB items whose
/// large attributes live in S3.
#[derive(Debug, Parser)]
#[command(name = "vhs", version, about, long_about = None, after_long_help = AFTER_HELP, after_help = AFTER_HELP)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// DynamoDB table.
    #[arg(long, env = "VHS_TABLE", global = true)]
    pub table: Option<String>,
    /// S3 bucket holding the large values.
    #[arg(long, env = "VHS_BUCKET", global = true)]
    pub bucket: Option<String>,
    /// Store prefix: the table's objects go under PREFIX/TABLE (as with
    /// `StoreBuilder::prefix`).
    #[arg(long, env = "VHS_PREFIX", global = true, default_value = "")]
    pub prefix: String,
    /// The exact prefix of the table's objects, instead of PREFIX/TABLE (as with
    /// `StoreBuilder::table_prefix`; e.g. the prefix pynamodb_mate wrote under).
    #[arg(long, env = "VHS_TABLE_PREFIX", global = true)]
    pub table_prefix: Option<String>,
    /// Send DynamoDB and S3 requests to this endpoint (an emulator, a VPC
    /// endpoint); S3 is then addressed path-style.
    #[arg(long, env = "VHS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    /// DynamoDB endpoint (overrides --endpoint-url for DynamoDB).
    #[arg(long, env = "VHS_DYNAMODB_ENDPOINT_URL", global = true)]
    pub dynamodb_endpoint_url: Option<String>,
    /// S3 endpoint (overrides --endpoint-url for S3): an S3-compatible store
    /// beside DynamoDB. S3 is then addressed path-style.
    #[arg(long, env = "VHS_S3_ENDPOINT_URL", global = true)]
    pub s3_endpoint_url: Option<String>,
    /// AWS region.
    #[arg(long, env = "VHS_REGION", global = true)]
    pub region: Option<String>,
    /// AWS profile (from ~/.aws/config and ~/.aws/credentials).
    #[arg(long, env = "VHS_PROFILE", global = true)]
    pub profile: Option<String>,
    /// Output format.
    #[arg(long, env = "VHS_OUTPUT", global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// The store's writers tag objects (`StoreBuilder::tag_objects`):
    /// `iam-policy` grants s3:PutObjectTagging and s3:GetObjectTagging, and
    /// `provision --transition` is allowed.
    #[arg(long, env = "VHS_TAGGED_OBJECTS", global = true)]
    pub tagged_objects: bool,
    /// Show what the library does: -v every operation (a tracing span with its
    /// table, key, attributes, bytes and cleanup), -vv every request, -vvv all.
    /// RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable lines and tables.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the table and the bucket, or bring existing ones up to the spec
    /// (idempotent); print what was created or found.
    Provision(Provision),
    /// Print a least-privilege IAM policy for the table, its indexes and the
    /// table's object prefix.
    IamPolicy(IamPolicy),
    /// List items with their pointers and object sizes.
    Ls(Ls),
    /// Print items as JSON, pointers with their object sizes (vhs's `vhs:*`
    /// bookkeeping attributes only with --raw).
    Get(Get),
    /// Stream a large value to stdout (or a file), checking the checksum its
    /// key names (md5, sha256 or crc64nvme); exit 1 on a mismatch.
    Cat(Cat),
    /// Delete orphaned objects (unreferenced and older than the grace period)
    /// through the deletion protocol: safe while writers run.
    Gc(Gc),
    /// Check that every pointer resolves (with --rehash, to the bytes its
    /// checksum names) and count orphans; exit 1 if a pointer is broken.
    Verify(Verify),
    /// Count items, objects and bytes by attribute, orphans and incomplete
    /// multipart uploads.
    Stats(Stats),
    /// Repair an item with a dangling pointer through the ownership protocol:
    /// remove the pointer (attribute), or delete the item.
    Repair(Repair),
    /// On a table restored to an earlier time: bring back every object its
    /// pointers name that is gone, from the bucket's noncurrent versions
    /// (checked against the checksum each key names); exit 1 if one could not
    /// be restored.
    RestoreCheck(RestoreCheck),
    /// Follow the table's change feed (its DynamoDB stream): one line per
    /// user write (inserted, modified, removed), the protocol's bookkeeping
    /// writes left out.
    Watch(Watch),
    /// Print a shell completion script.
    Completions(Completions),
}

/// `vhs provision`.
#[derive(Debug, Args)]
#[command(after_help = "\
Variants:
  plain   a table of your own keys (--hash-key, --range-key, --gsi), for #[derive(Model)]
  single  the single-version store's table: id (S)
  multi   the multi-version store's table: id (S), version (N)

The bucket gets public access blocked, default encryption (SSE-S3), and a lifecycle
rule on the table's prefix aborting multipart uploads left incomplete (a crashed
writer's parts) and expiring noncurrent versions (in case versioning is on: vhs does
not need it, and a deleted object would otherwise stay billed as a noncurrent version).

--backup-consistent: bucket versioning on, noncurrent versions kept 35 days (the
point-in-time recovery window; --noncurrent-expiry may raise it, not lower it), and
point-in-time recovery on for the table. A table restored to any time in the window can
then get back the objects deleted since (`vhs restore-check`). Storage: every object
replaced or deleted stays billed for the noncurrent expiry.")]
pub struct Provision {
    /// The table's layout.
    #[arg(long, value_enum, default_value_t = Variant::Plain)]
    pub variant: Variant,
    /// Hash key of a plain table, NAME:S or NAME:N.
    #[arg(long, value_name = "NAME:S|N", default_value = "pk:S")]
    pub hash_key: String,
    /// Range key of a plain table, NAME:S or NAME:N.
    #[arg(long, value_name = "NAME:S|N")]
    pub range_key: Option<String>,
    /// A global secondary index: NAME=HASH:S|N[,RANGE:S|N] (repeatable).
    #[arg(long, value_name = "NAME=HASH:T[,RANGE:T]")]
    pub gsi: Vec<String>,
    /// Enable a stream of NEW_AND_OLD_IMAGES.
    #[arg(long)]
    pub streams: bool,
    /// Enable point-in-time recovery.
    #[arg(long)]
    pub point_in_time_recovery: bool,
    /// Enable DynamoDB's time to live on `vhs:ttl`, the attribute vhs sets
    /// on items of a model with a `#[vhs(ttl)]` field (after their expiry,
    /// once nothing deleting their objects can be in flight). Left as it is
    /// if already on.
    #[arg(long)]
    pub ttl: bool,
    /// Backups that restore consistently: bucket versioning on, noncurrent
    /// versions kept at least 35 days, point-in-time recovery on.
    #[arg(long)]
    pub backup_consistent: bool,
    /// Days after which an incomplete multipart upload is aborted (0: no rule).
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    pub abort_multipart_after: u32,
    /// Days after which a noncurrent object version expires (0: no rule,
    /// kept forever). Default 30; 35 with --backup-consistent, which refuses
    /// less.
    #[arg(long, value_name = "DAYS")]
    pub noncurrent_expiry: Option<u32>,
    /// A lifecycle rule moving the objects of one large attribute to a storage
    /// class DAYS after they were written, e.g. `body=30:STANDARD_IA`
    /// (repeatable). It filters by the tags vhs-table and vhs-attr: needs
    /// --tagged-objects (writers built with `StoreBuilder::tag_objects`).
    #[arg(long, value_name = "ATTR=DAYS:CLASS")]
    pub transition: Vec<String>,
    /// Print the plan (what exists, what would be created); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// `aws`: call AWS. `cloudformation`: print the equivalent template
    /// instead, calling nothing.
    #[arg(long, value_enum, default_value_t = Format::Aws)]
    pub format: Format,
}

/// Table layouts of `vhs provision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// Keys of your own.
    Plain,
    /// `SingleVersionStore`: id (S).
    Single,
    /// `MultiVersionStore`: id (S), version (N).
    Multi,
}

/// What `vhs provision` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Create or update through the AWS APIs.
    Aws,
    /// Print a CloudFormation template (JSON).
    Cloudformation,
}

/// `vhs iam-policy`.
#[derive(Debug, Args)]
pub struct IamPolicy {
    /// read: get, query, scan, download, verify. write: read + create, update,
    /// delete, transactions, versioned puts. admin: write + gc, provisioning.
    #[arg(long, value_enum)]
    pub access: AccessArg,
    /// Account id in the ARNs (default `*`).
    #[arg(long)]
    pub account: Option<String>,
    /// Partition in the ARNs.
    #[arg(long, default_value = "aws")]
    pub partition: String,
    /// A KMS key the objects are encrypted with (SSE-KMS): grants
    /// kms:GenerateDataKey and kms:Decrypt on it.
    #[arg(long, value_name = "ARN")]
    pub kms_key_arn: Option<String>,
}

/// Access levels of `vhs iam-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    /// Reads only.
    Read,
    /// Reads and writes.
    Write,
    /// Writes, gc and provisioning.
    Admin,
}

/// `vhs ls`.
#[derive(Debug, Args)]
pub struct Ls {
    /// Only the items with this hash key value (a Query instead of a Scan).
    #[arg(long, value_name = "VALUE")]
    pub pk: Option<String>,
    /// At most this many items.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `vhs get`.
#[derive(Debug, Args)]
pub struct Get {
    /// The items' keys: HASH, or HASH/RANGE.
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// Also print vhs's bookkeeping attributes (`vhs:tok`, marks, ...).
    #[arg(long)]
    pub raw: bool,
}

/// `vhs repair`.
#[derive(Debug, Args)]
#[command(after_help = "\
Without --attr or --delete-item, every dangling pointer of the item is removed.
A pointer whose object exists is not dangling: repair refuses it (exit 2) unless
--force. Removing a pointer is an update through the protocol (the object it
stops referencing, if any, is deleted); deleting the item is a delete through the
protocol (its objects deleted, a placeholder left for gc).")]
pub struct Repair {
    /// The item's key: HASH, or HASH/RANGE (as `vhs ls` prints it).
    pub key: String,
    /// Remove the pointer in this attribute only.
    #[arg(long, conflicts_with = "delete_item")]
    pub attr: Option<String>,
    /// Delete the whole item (and every object it owns) instead.
    #[arg(long)]
    pub delete_item: bool,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Repair even though the pointer is not dangling (its object exists).
    #[arg(long)]
    pub force: bool,
}

/// `vhs restore-check`.
#[derive(Debug, Args)]
#[command(after_help = "\
Run it on the restored table (--table RESTORED) with the source table's object prefix:
without --prefix/--table-prefix it is inferred from the pointers. The bucket must have
had versioning on (`vhs provision --backup-consistent`) since the restore point. A
missing object comes back by removing the delete marker over its newest version, or by
copying an older version whose bytes match the key's checksum. Then switch the
application to the restored table; never run gc on the source and the restored table
while both use one prefix (each would see the other's objects as orphans).")]
pub struct RestoreCheck {
    /// Report what would be restored; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `vhs cat`.
#[derive(Debug, Args)]
pub struct Cat {
    /// The item's key: HASH, or HASH/RANGE.
    pub key: String,
    /// The large attribute.
    #[arg(long)]
    pub attr: String,
    /// Write to this file (replaced only once the checksum checked out) instead of
    /// stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// `vhs gc`.
#[derive(Debug, Args)]
pub struct Gc {
    /// Keep unreferenced objects younger than this: they may belong to a write
    /// in flight. Must exceed your longest write.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub grace: Duration,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Take over deletion marks and placeholders older than this (their caller
    /// is presumed dead); default: the table's recorded retention plus clock
    /// skew bound (1 h + 2 min unless the table recorded others).
    #[arg(long, value_parser = parse_duration)]
    pub take_over_after: Option<Duration>,
    /// Parallel Scan segments.
    #[arg(long, default_value_t = 4)]
    pub segments: u32,
    /// Every writer that is not vhs (no `vhs:tok` in its items, e.g. a
    /// PynamoDB mixin) is stopped: delete all the same when such items hold
    /// pointers. Without it, gc deletes nothing on finding one (exit 2).
    #[arg(long)]
    pub foreign_writers_stopped: bool,
    /// Items hold `s3://` values outside the bucket and table prefix that are
    /// not this store's pointers: delete all the same. Without it, gc deletes
    /// nothing on finding one (exit 2): a wrong --bucket or --prefix would
    /// otherwise make other items' objects look unreferenced.
    #[arg(long)]
    pub foreign_pointers_allowed: bool,
    #[command(flatten)]
    pub engine: crate::engine::EngineArgs,
    #[command(flatten)]
    pub sharding: Sharding,
}

/// `vhs verify`.
#[derive(Debug, Args)]
pub struct Verify {
    /// Read every object and check the checksum its key names (otherwise HeadObject only).
    #[arg(long)]
    pub rehash: bool,
    #[command(flatten)]
    pub engine: crate::engine::EngineArgs,
    #[command(flatten)]
    pub sharding: Sharding,
}

/// `--shard` and its checkpoint, for `vhs gc` and `vhs verify`.
#[derive(Debug, Args)]
pub struct Sharding {
    /// Run as shard I of N (numbered from 0; e.g. a Kubernetes indexed Job's
    /// JOB_COMPLETION_INDEX): Scan segment I of N and the objects whose item
    /// hashes to I, checked page by page against their items, memory bounded
    /// by a page. The N shards' reports together are one run's.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<vhs::maintenance::Shard>,
    /// Skip the objects up to KEY: a checkpoint an earlier run of the same
    /// shard reported.
    #[arg(
        long,
        value_name = "KEY",
        requires = "shard",
        conflicts_with = "checkpoint"
    )]
    pub resume_from: Option<String>,
    /// Keep the shard's checkpoint in FILE: resume from it if it exists,
    /// rewrite it after each page of the listing, remove it once the shard
    /// is done.
    #[arg(long, value_name = "FILE", requires = "shard")]
    pub checkpoint: Option<PathBuf>,
}

/// `vhs stats`.
#[derive(Debug, Args)]
pub struct Stats {}

/// `vhs watch`.
#[derive(Debug, Args)]
#[command(after_help = "\
The table needs a stream with old and new images (`vhs provision --streams`). A line per
change: its kind, the item's key, the attributes it changed; large attributes show their
pointers (s3://...), not their values. With --output json, one JSON object per line:
{\"kind\", \"key\", \"sequence_number\", \"by_ttl\", \"changed\", \"old\", \"new\"}.

--checkpoint FILE is read at start (when it exists: reading resumes after the last change
it records, and --from applies to shards it does not name) and written after each batch
of records, so a watch stopped and started again prints every change once.")]
pub struct Watch {
    /// Where to start without a checkpoint: the oldest record the stream holds
    /// (24 hours on AWS), or only changes from now on.
    #[arg(long, value_enum, default_value_t = WatchFrom::Latest)]
    pub from: WatchFrom,
    /// Read the position from FILE at start (if it exists); write it there after
    /// each batch.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Stop after printing N changes.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Stop once the stream has nothing more to read now, instead of waiting for
    /// changes.
    #[arg(long)]
    pub until_idle: bool,
    /// How long to wait between polls of an idle stream (doubled while it
    /// stays idle, up to ten times this).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub poll_interval: Duration,
}

/// Where `vhs watch` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchFrom {
    /// The oldest record the stream still holds.
    TrimHorizon,
    /// Changes from now on.
    Latest,
}

/// `vhs completions`.
#[derive(Debug, Args)]
pub struct Completions {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn parse_shard(text: &str) -> Result<vhs::maintenance::Shard, String> {
    text.parse().map_err(|e: vhs::Error| e.to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 90s, 15m, 1h, 2days)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_and_option_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        for sub in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            if sub.get_name() != "vhs" && sub.get_about().is_none() {
                missing.push(format!("subcommand {}", sub.get_name()));
            }
            for arg in sub.get_arguments() {
                if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str())
                {
                    missing.push(format!("{} --{}", sub.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }
}
