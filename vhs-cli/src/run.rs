//! The commands.

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vhs::maintenance::{BrokenPointer, GcOptions, VerifyOptions};
use vhs::{AnyTable, AwsBackend, AwsOptions, Error, Item, Store};

use crate::cli::{self, Cli, Command, Global, Output};
use crate::output::{self, item_json, size, Reporter};
use crate::provision;

/// A check failed: verify found a problem, a checksum mismatch, a failed delete.
pub const EXIT_CHECK: u8 = 1;
/// Invalid input or usage (clap uses 2 too).
pub const EXIT_INVALID: u8 = 2;
/// The table, item or attribute does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// DynamoDB or S3 failed.
pub const EXIT_BACKEND: u8 = 4;
/// Anything else (local I/O, ...).
pub const EXIT_OTHER: u8 = 5;

type Result<T> = std::result::Result<T, Error>;

#[path = "watch.rs"]
mod watch;

/// The exit status an error ends the process with.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound { .. } | Error::TableNotFound { .. } => EXIT_NOT_FOUND,
        Error::InvalidInput { .. } => EXIT_INVALID,
        Error::Integrity { .. } | Error::DanglingPointer { .. } | Error::BadPointer { .. } => {
            EXIT_CHECK
        }
        Error::Backend { .. } | Error::Config { .. } => EXIT_BACKEND,
        _ => EXIT_OTHER,
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput {
        message: message.into(),
    }
}

/// Runs the command; the exit status on success (non-zero when a check found
/// a problem).
pub async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Completions(c) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(c.shell, &mut cmd, "vhs", &mut std::io::stdout());
            Ok(0)
        }
        Command::IamPolicy(args) => iam_policy(g, args),
        Command::Provision(args) => provision(g, args).await,
        Command::Ls(args) => ls(g, args).await,
        Command::Get(args) => get(g, args).await,
        Command::Cat(args) => cat(g, args).await,
        Command::Gc(args) => gc(g, args).await,
        Command::Verify(args) => verify(g, args).await,
        Command::Stats(_) => stats(g).await,
        Command::Repair(args) => repair(g, args).await,
        Command::RestoreCheck(args) => restore_check(g, args).await,
        Command::Watch(args) => watch::watch(g, args).await,
    }
}

fn required<'a>(value: &'a Option<String>, flag: &str, env: &str) -> Result<&'a str> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(format!("{flag} is required (or set {env})")))
}

fn table_name(g: &Global) -> Result<&str> {
    required(&g.table, "--table", "VHS_TABLE")
}

fn bucket_name(g: &Global) -> Result<&str> {
    required(&g.bucket, "--bucket", "VHS_BUCKET")
}

/// A store over AWS (or the endpoints given) for the table and bucket given.
async fn store(g: &Global) -> Result<Store> {
    store_at(g, g.table_prefix.as_deref()).await
}

/// [`store`] with the table's objects under `table_prefix` (if given).
async fn store_at(g: &Global, table_prefix: Option<&str>) -> Result<Store> {
    let table = table_name(g)?;
    let bucket = bucket_name(g)?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &g.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &g.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    let mut options = AwsOptions::default();
    options.endpoint_url = g.endpoint_url.clone();
    options.dynamodb_endpoint_url = g.dynamodb_endpoint_url.clone();
    options.s3_endpoint_url = g.s3_endpoint_url.clone();
    options.force_path_style = g.endpoint_url.is_some() || g.s3_endpoint_url.is_some();
    configured(
        g,
        AwsBackend::with_options(&config, options),
        bucket,
        table,
        table_prefix,
    )
    .build()
}

/// A store builder over `backend` with the store prefix the options give and
/// the table prefix `table_prefix` (if given).
fn configured(
    g: &Global,
    backend: impl vhs::Backend,
    bucket: &str,
    table: &str,
    table_prefix: Option<&str>,
) -> vhs::StoreBuilder {
    let mut builder = Store::builder(backend, bucket).prefix(&g.prefix);
    if g.tagged_objects {
        builder = builder.tag_objects_with_names();
    }
    match table_prefix {
        Some(prefix) => builder.table_prefix(table, prefix),
        None => builder,
    }
}

/// The table's object prefix as a store computes it, without building a
/// client (for the commands that call nothing).
fn offline_table_prefix(g: &Global, bucket: &str, table: &str) -> Result<String> {
    configured(
        g,
        vhs::MemoryBackend::new(),
        bucket,
        table,
        g.table_prefix.as_deref(),
    )
    .build()?
    .table_prefix(table)
}

/// Items read to infer the table prefix when none is given.
const PROBE_ITEMS: usize = 200;

/// Opens the table. Without `--prefix` or `--table-prefix`, the pointers of
/// the first items tell where the table's objects are: if none lies under the
/// default prefix and all of them agree on one in this bucket, that one is
/// used (said on stderr); if they disagree, the command is refused.
async fn open(g: &Global) -> Result<AnyTable> {
    let name = table_name(g)?;
    let table = store(g).await?.open_table(name).await?;
    if !g.prefix.is_empty() || g.table_prefix.is_some() {
        return Ok(table);
    }
    let (items, _) = table.list(None, None, PROBE_ITEMS).await?;
    let mut inside = 0;
    let mut homes = std::collections::BTreeSet::new();
    for item in &items {
        inside += table.pointers(item).len();
        for (_, uri) in table.foreign_pointers(item) {
            if let Some(home) = AnyTable::home_of(&uri) {
                homes.insert(home);
            }
        }
    }
    let bucket = bucket_name(g)?;
    if inside > 0 || !homes.iter().any(|(b, _)| b == bucket) {
        // Pointers where expected, none at all, or only in other buckets
        // (which the commands report as foreign pointers).
        return Ok(table);
    }
    let shown = |(b, p): &(String, String)| format!("s3://{b}/{p}/");
    if homes.len() > 1 {
        return Err(invalid(format!(
            "no --prefix given and the items of table {name} point under several prefixes ({}): give --prefix or --table-prefix",
            homes.iter().map(shown).collect::<Vec<_>>().join(", ")
        )));
    }
    let Some(home) = homes.into_iter().next() else {
        return Ok(table);
    };
    let hint = match home.1.strip_suffix(&format!("/{name}")) {
        Some(store_prefix) => format!("--prefix {store_prefix}"),
        None => format!("--table-prefix {}", home.1),
    };
    eprintln!(
        "vhs: no --prefix given; the items' pointers are under {}: reading them as with {hint}",
        shown(&home)
    );
    store_at(g, Some(&home.1)).await?.open_table(name).await
}

/// `s3://bucket/table-prefix/`: where the table's objects are.
fn home(g: &Global, table: &AnyTable) -> String {
    format!(
        "s3://{}/{}/",
        g.bucket.as_deref().unwrap_or_default(),
        table.prefix()
    )
}

/// Broken pointers with their keys' command-line form, sorted by key and
/// attribute.
fn sorted(list: &[BrokenPointer]) -> Vec<(String, &BrokenPointer)> {
    let mut list: Vec<(String, &BrokenPointer)> = list
        .iter()
        .map(|b| (output::key_of_parts(&b.key), b))
        .collect();
    list.sort_by(|a, b| (&a.0, &a.1.attr).cmp(&(&b.0, &b.1.attr)));
    list
}

/// The one line saying that items hold pointers outside the table's objects.
fn foreign_line(count: u64, examples: &[BrokenPointer], home: &str) -> String {
    let example = examples
        .first()
        .map(|b| {
            format!(
                " (e.g. {} `{}` = {})",
                output::key_of_parts(&b.key),
                b.attr,
                b.value
            )
        })
        .unwrap_or_default();
    format!(
        "FOREIGN POINTERS: {count} values point outside {home}{example}: nothing checked them; is --bucket or --prefix wrong?"
    )
}

fn foreign_json(examples: &[BrokenPointer]) -> Vec<Value> {
    examples
        .iter()
        .map(|b| json!({"key": output::key_of_parts(&b.key), "attr": b.attr, "value": b.value}))
        .collect()
}

fn print_json(value: &Value) {
    crate::say!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn key_text(table: &AnyTable, item: &Item) -> String {
    let spec = table.spec();
    output::format_key(
        item,
        &spec.hash_key.0,
        spec.range_key.as_ref().map(|r| r.0.as_str()),
    )
}

/// The key an argument names, and the item (consistent read).
async fn fetch(table: &AnyTable, text: &str) -> Result<(Item, Option<Item>)> {
    let (hash, range) = output::parse_key(text).map_err(invalid)?;
    let key = table.key(&hash, range.as_deref())?;
    let item = table.get(&key).await?;
    Ok((key, item))
}

/// [`fetch`] of an item that must exist: [`Error::NotFound`] if it does not.
async fn fetch_existing(table: &AnyTable, text: &str) -> Result<(Item, Item)> {
    let (key, item) = fetch(table, text).await?;
    match item {
        Some(item) => Ok((key, item)),
        None => Err(Error::NotFound {
            table: table.spec().name.clone(),
            key: table.describe(&key),
        }),
    }
}

/// What a pointer's object is.
#[derive(Debug, Clone, PartialEq)]
enum Object {
    /// It exists, this many bytes.
    Size(u64),
    /// It does not exist: the pointer dangles.
    Missing,
    /// The value is no pointer of this item's (verify says why).
    Bad(String),
}

/// Pointers of `item` with their objects. Only a failure of S3 itself is an
/// error: one bad pointer does not stop a listing.
async fn pointers_with_sizes(
    table: &AnyTable,
    item: &Item,
) -> Result<Vec<(String, String, Object)>> {
    let heads = table
        .pointers(item)
        .into_iter()
        .map(|(attr, uri)| async move {
            let object = match table.object_info(item, &attr).await {
                Ok(Some(info)) => Object::Size(info.size),
                Ok(None) => Object::Missing,
                Err(e @ Error::Backend { .. }) => return Err(e),
                Err(e) => Object::Bad(e.to_string()),
            };
            Ok::<_, Error>((attr, uri, object))
        });
    stream::iter(heads)
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn pointers_json(pointers: &[(String, String, Object)]) -> Value {
    Value::Object(
        pointers
            .iter()
            .map(|(attr, uri, object)| {
                let value = match object {
                    Object::Size(n) => json!({"uri": uri, "size": n}),
                    Object::Missing => json!({"uri": uri, "size": null, "missing": true}),
                    Object::Bad(problem) => json!({"uri": uri, "size": null, "problem": problem}),
                };
                (attr.clone(), value)
            })
            .collect(),
    )
}

fn foreign_pointers_json(pointers: &[(String, String)]) -> Value {
    Value::Object(
        pointers
            .iter()
            .map(|(attr, uri)| (attr.clone(), Value::String(uri.clone())))
            .collect(),
    )
}

async fn ls(g: &Global, args: &cli::Ls) -> Result<u8> {
    let table = open(g).await?;
    let (items, more) = table.list(args.pk.as_deref(), None, args.limit).await?;
    let mut rows = Vec::new();
    let mut foreign = 0u64;
    let mut first_foreign = None;
    let mut expiries = Vec::new();
    for item in &items {
        let key = key_text(&table, item);
        let outside = table.foreign_pointers(item);
        foreign += outside.len() as u64;
        if first_foreign.is_none() {
            first_foreign = outside.first().map(|(attr, uri)| BrokenPointer {
                item: table.describe(item),
                key: output::parse_key(&key)
                    .map(|(h, r)| std::iter::once(h).chain(r).collect())
                    .unwrap_or_default(),
                attr: attr.clone(),
                value: uri.clone(),
                problem: String::new(),
            });
        }
        rows.push((key, pointers_with_sizes(&table, item).await?, outside));
        expiries.push(table.expires_at_rfc3339(item));
    }
    let examples: Vec<BrokenPointer> = first_foreign.into_iter().collect();
    match g.output {
        Output::Json => print_json(&json!({
            "items": rows.iter().zip(&expiries).map(|((key, pointers, outside), expires)| {
                let mut row = json!({
                    "key": key,
                    "pointers": pointers_json(pointers),
                    "foreign_pointers": foreign_pointers_json(outside),
                });
                if let Some(at) = expires {
                    row["expires_at"] = json!(at);
                }
                row
            }).collect::<Vec<_>>(),
            "more": more.is_some(),
            "foreign_pointers": foreign,
        })),
        Output::Text => {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
            let attr_width = rows
                .iter()
                .flat_map(|r| {
                    r.1.iter()
                        .map(|p| p.0.len())
                        .chain(r.2.iter().map(|p| p.0.len()))
                })
                .max()
                .unwrap_or(4)
                .max(4);
            crate::say!(
                "{:width$}  {:attr_width$}  {:>10}  POINTER",
                "KEY",
                "ATTR",
                "SIZE"
            );
            for (key, pointers, outside) in &rows {
                if pointers.is_empty() && outside.is_empty() {
                    crate::say!("{key:width$}  {:attr_width$}  {:>10}  -", "-", "-");
                }
                for (attr, uri, object) in pointers {
                    let shown = match object {
                        Object::Size(n) => size(*n),
                        Object::Missing => "MISSING".to_owned(),
                        Object::Bad(_) => "BAD".to_owned(),
                    };
                    crate::say!("{key:width$}  {attr:attr_width$}  {shown:>10}  {uri}");
                }
                for (attr, uri) in outside {
                    crate::say!("{key:width$}  {attr:attr_width$}  {:>10}  {uri}", "FOREIGN");
                }
            }
            if more.is_some() {
                eprintln!("(more items: raise --limit)");
            }
            if foreign > 0 {
                eprintln!("{}", foreign_line(foreign, &examples, &home(g, &table)));
            }
        }
    }
    Ok(0)
}

async fn get(g: &Global, args: &cli::Get) -> Result<u8> {
    let table = open(g).await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for text in &args.keys {
        match fetch(&table, text).await? {
            (_, Some(item)) => {
                let pointers = pointers_with_sizes(&table, &item).await?;
                let shown = if args.raw {
                    item_json(&item)
                } else {
                    item_json(&output::without_bookkeeping(&item))
                };
                let mut entry = json!({
                    "key": key_text(&table, &item),
                    "item": shown,
                    "pointers": pointers_json(&pointers),
                });
                let outside = table.foreign_pointers(&item);
                if !outside.is_empty() {
                    entry["foreign_pointers"] = foreign_pointers_json(&outside);
                }
                // The table's time to live: when DynamoDB may remove the item
                // (reads treat it as absent from then on).
                if let Some(at) = table.expires_at_rfc3339(&item) {
                    entry["expires_at"] = json!(at);
                }
                found.push(entry);
            }
            (key, None) => missing.push(table.describe(&key)),
        }
    }
    match g.output {
        Output::Json => print_json(&Value::Array(found)),
        Output::Text => found.iter().for_each(print_json),
    }
    if missing.is_empty() {
        return Ok(0);
    }
    Err(Error::NotFound {
        table: table.spec().name.clone(),
        key: missing.join("; "),
    })
}

async fn cat(g: &Global, args: &cli::Cat) -> Result<u8> {
    let table = open(g).await?;
    let (_, item) = fetch_existing(&table, &args.key).await?;
    let written = match &args.output_file {
        None => {
            let mut out = tokio::io::stdout();
            let n = table.download(&item, &args.attr, &mut out).await?;
            out.flush().await.map_err(|e| Error::Io {
                action: "write to stdout".into(),
                source: e,
            })?;
            n
        }
        Some(path) => {
            // Beside the destination, renamed over it only once the checksum checked out.
            let partial = path.with_extension("vhs-partial");
            let io = |action: String| move |e| Error::Io { action, source: e };
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(io(format!("create {}", partial.display())))?;
            let result = table.download(&item, &args.attr, &mut file).await;
            let result = match result {
                Ok(n) => file
                    .sync_all()
                    .await
                    .map_err(io(format!("write {}", partial.display())))
                    .map(|_| n),
                Err(e) => Err(e),
            };
            drop(file);
            match result {
                Ok(n) => {
                    tokio::fs::rename(&partial, path)
                        .await
                        .map_err(io(format!("rename to {}", path.display())))?;
                    n
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(e);
                }
            }
        }
    };
    if g.verbose > 0 || args.output_file.is_some() {
        // The algorithm is the key's last segment (`md5=`, `sha256=`, ...).
        let checked = match item.get(&args.attr) {
            Some(vhs::types::AttributeValue::S(uri)) => uri
                .rsplit('/')
                .next()
                .and_then(vhs::Checksum::from_segment)
                .map(|c| format!("{} checked", c.algorithm())),
            _ => None,
        };
        let checked = checked.as_deref().unwrap_or("kept in the item");
        eprintln!("{written} bytes, {checked}");
    }
    Ok(0)
}

async fn gc(g: &Global, args: &cli::Gc) -> Result<u8> {
    let engine = args.engine.engine()?;
    let table = open(g).await?;
    let mut options = GcOptions::default()
        .grace(args.grace)
        .dry_run(args.dry_run)
        .segments(args.segments)
        .foreign_writers_stopped(args.foreign_writers_stopped)
        .foreign_pointers_allowed(args.foreign_pointers_allowed)
        .engine(engine);
    if let Some(age) = args.take_over_after {
        options = options.take_over_after(age);
    }
    let sharded = Sharded::of(&args.sharding)?;
    (options.shard, options.resume_after, options.on_checkpoint) = sharded.options();
    let reporter = Reporter::new("gc", g.output == Output::Json);
    let report = table.gc(&options, |p| reporter.report(p)).await;
    reporter.finish();
    let report = report?;
    sharded.finished()?;
    match g.output {
        Output::Json => print_json(&json!({
            "dry_run": args.dry_run,
            "items": report.items,
            "objects": report.objects,
            "unreferenced": report.unreferenced,
            "too_young": report.too_young,
            "awaiting_commit": report.awaiting_commit,
            "rescued": report.rescued,
            "foreign": report.foreign,
            "foreign_items": report.foreign_items,
            "foreign_pointers": report.foreign_pointers,
            "foreign_pointer_examples": foreign_json(&report.foreign_pointer_examples),
            "marks_taken_over": report.marks_taken_over,
            "placeholders_removed": report.placeholders_removed,
            "uploads_aborted": report.uploads_aborted,
            "deleted": report.deleted,
            "deleted_bytes": report.deleted_bytes,
            "failed": report.failed.iter().map(|(k, e)| json!({"key": k, "error": e})).collect::<Vec<_>>(),
        })),
        Output::Text => {
            let verb = if args.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for key in &report.deleted {
                crate::say!("{verb} {key}");
            }
            for (key, error) in &report.failed {
                crate::say!("FAILED {key}: {error}");
            }
            crate::say!(
                "{} items, {} objects; {} unreferenced: {} {verb} ({}), {} younger than the grace period, {} presigned uploads awaiting their commit, {} referenced again meanwhile; {} foreign; {} deletion marks and {} placeholders taken over; {} stale multipart uploads {}",
                report.items,
                report.objects,
                report.unreferenced,
                report.deleted.len(),
                size(report.deleted_bytes),
                report.too_young,
                report.awaiting_commit,
                report.rescued,
                report.foreign,
                report.marks_taken_over,
                report.placeholders_removed,
                report.uploads_aborted,
                if args.dry_run { "to abort" } else { "aborted" },
            );
            if report.foreign_pointers > 0 {
                crate::say!(
                    "{}",
                    foreign_line(
                        report.foreign_pointers,
                        &report.foreign_pointer_examples,
                        &home(g, &table)
                    )
                );
            }
        }
    }
    Ok(if report.failed.is_empty() {
        0
    } else {
        EXIT_CHECK
    })
}

/// `--shard` with its checkpoint: where it resumes, where it is kept.
struct Sharded {
    shard: Option<vhs::maintenance::Shard>,
    resume: Option<String>,
    file: Option<std::path::PathBuf>,
}

impl Sharded {
    /// Reads the checkpoint file, if there is one (before anything else is read).
    fn of(args: &cli::Sharding) -> Result<Sharded> {
        let mut resume = args.resume_from.clone();
        if let Some(path) = &args.checkpoint {
            match std::fs::read_to_string(path) {
                Ok(text) if !text.trim_end_matches('\n').is_empty() => {
                    resume = Some(text.trim_end_matches('\n').to_owned())
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    let action = format!("read checkpoint {}", path.display());
                    return Err(Error::Io { action, source });
                }
            }
        }
        Ok(Sharded {
            shard: args.shard,
            resume,
            file: args.checkpoint.clone(),
        })
    }

    /// The options' `shard`, `resume_after` and `on_checkpoint`: each
    /// checkpoint written to the file (beside it, then renamed over it).
    fn options(
        &self,
    ) -> (
        Option<vhs::maintenance::Shard>,
        Option<String>,
        Option<vhs::maintenance::OnCheckpoint>,
    ) {
        let on_checkpoint = self.file.clone().map(|path| {
            vhs::maintenance::OnCheckpoint::new(move |key: &str| {
                let partial = path.with_extension("vhs-partial");
                let written = std::fs::write(&partial, format!("{key}\n"))
                    .and_then(|()| std::fs::rename(&partial, &path));
                if let Err(e) = written {
                    eprintln!("vhs: could not write checkpoint {}: {e}", path.display());
                }
            })
        });
        (self.shard, self.resume.clone(), on_checkpoint)
    }

    /// The shard is done: its checkpoint file goes (the next run starts over).
    fn finished(&self) -> Result<()> {
        match &self.file {
            Some(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                    action: format!("remove checkpoint {}", path.display()),
                    source: e,
                }),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

async fn verify(g: &Global, args: &cli::Verify) -> Result<u8> {
    let engine = args.engine.engine()?;
    if args.engine.from_export.is_some() {
        return Err(invalid(
            "vhs verify cannot read a DynamoDB export (--from-export is for vhs gc): \
             run verify --engine athena without it (vhs's scan writes the pointers)",
        ));
    }
    let table = open(g).await?;
    let sharded = Sharded::of(&args.sharding)?;
    let mut options = VerifyOptions::default().rehash(args.rehash).engine(engine);
    (options.shard, options.resume_after, options.on_checkpoint) = sharded.options();
    let reporter = Reporter::new("verify", g.output == Output::Json);
    let report = table.verify(&options, |p| reporter.report(p)).await;
    reporter.finish();
    let report = report?;
    sharded.finished()?;
    let home = home(g, &table);
    let broken = |list: &[BrokenPointer]| {
        sorted(list)
            .into_iter()
            .map(|(key, b)| json!({"key": key, "attr": b.attr, "value": b.value, "problem": b.problem}))
            .collect::<Vec<_>>()
    };
    let nothing_checked = report.pointers == 0 && report.items > 0;
    match g.output {
        Output::Json => print_json(&json!({
            "clean": report.is_clean(),
            "items": report.items,
            "pointers": report.pointers,
            "nothing_checked": nothing_checked,
            "objects_under": home,
            "inline": report.inline,
            "dangling": broken(&report.dangling),
            "integrity": broken(&report.integrity),
            "bad_pointers": broken(&report.bad_pointers),
            "foreign_pointers": report.foreign_pointers,
            "foreign_pointer_examples": foreign_json(&report.foreign_pointer_examples),
            "orphans": report.orphans,
            "orphan_bytes": report.orphan_bytes,
            "foreign": report.foreign,
        })),
        Output::Text => {
            for (what, list) in [
                ("DANGLING", &report.dangling),
                ("INTEGRITY", &report.integrity),
                ("BAD POINTER", &report.bad_pointers),
            ] {
                for (key, b) in sorted(list) {
                    crate::say!("{what} {key} `{}`: {}", b.attr, b.problem);
                }
            }
            if report.foreign_pointers > 0 {
                crate::say!(
                    "{}",
                    foreign_line(
                        report.foreign_pointers,
                        &report.foreign_pointer_examples,
                        &home
                    )
                );
            }
            crate::say!(
                "{} items, {} pointers checked{}: {} dangling, {} integrity mismatches, {} bad pointers, {} foreign pointers; {} orphans ({}), {} foreign objects",
                report.items,
                report.pointers,
                if args.rehash { " (rehashed)" } else { "" },
                report.dangling.len(),
                report.integrity.len(),
                report.bad_pointers.len(),
                report.foreign_pointers,
                report.orphans,
                size(report.orphan_bytes),
                report.foreign,
            );
            let verdict = if !report.is_clean() {
                "PROBLEMS FOUND".to_owned()
            } else if nothing_checked {
                format!("NOTHING CHECKED: no item holds a pointer under {home}")
            } else {
                "OK".to_owned()
            };
            crate::say!("{verdict}");
        }
    }
    Ok(if report.is_clean() { 0 } else { EXIT_CHECK })
}

async fn stats(g: &Global) -> Result<u8> {
    let table = open(g).await?;
    let reporter = Reporter::new("stats", g.output == Output::Json);
    let stats = table.stats(|p| reporter.report(p)).await;
    reporter.finish();
    let stats = stats?;
    match g.output {
        Output::Json => print_json(&json!({
            "table": table.spec().name,
            "prefix": table.prefix(),
            "items": stats.items,
            "placeholders": stats.placeholders,
            "pointers": stats.pointers,
            "objects": stats.objects,
            "bytes": stats.bytes,
            "by_attr": stats.by_attr.iter().map(|(a, s)| (a.clone(), json!({
                "objects": s.objects, "bytes": s.bytes, "orphans": s.orphans,
            }))).collect::<serde_json::Map<_, _>>(),
            "by_class": stats.by_class.iter().map(|(c, s)| (c.clone(), json!({
                "objects": s.objects, "bytes": s.bytes,
            }))).collect::<serde_json::Map<_, _>>(),
            "orphans": stats.orphans,
            "orphan_bytes": stats.orphan_bytes,
            "foreign": stats.foreign,
            "incomplete_uploads": stats.incomplete_uploads,
            "foreign_pointers": stats.foreign_pointers,
            "foreign_pointer_examples": foreign_json(&stats.foreign_pointer_examples),
        })),
        Output::Text => {
            crate::say!(
                "table       {} (objects under {}/)",
                table.spec().name,
                table.prefix()
            );
            crate::say!(
                "items       {} ({} pointers), {} placeholders (tombstones of deletes; gc removes them after the retention)",
                stats.items,
                stats.pointers,
                stats.placeholders
            );
            crate::say!("objects     {} ({})", stats.objects, size(stats.bytes));
            for (attr, s) in &stats.by_attr {
                crate::say!(
                    "  {attr:<10} {} objects ({}), {} orphaned",
                    s.objects,
                    size(s.bytes),
                    s.orphans
                );
            }
            for (class, s) in &stats.by_class {
                crate::say!("  in {class:<19} {} objects ({})", s.objects, size(s.bytes));
            }
            crate::say!(
                "orphans     {} ({})",
                stats.orphans,
                size(stats.orphan_bytes)
            );
            crate::say!("foreign     {}", stats.foreign);
            crate::say!("incomplete multipart uploads {}", stats.incomplete_uploads);
            if stats.foreign_pointers > 0 {
                crate::say!(
                    "{}",
                    foreign_line(
                        stats.foreign_pointers,
                        &stats.foreign_pointer_examples,
                        &home(g, &table)
                    )
                );
            }
        }
    }
    Ok(0)
}

async fn provision(g: &Global, args: &cli::Provision) -> Result<u8> {
    let table = table_name(g)?;
    let bucket = bucket_name(g)?;
    let spec = provision::table_spec(table, args).map_err(invalid)?;
    let transitions = provision::transitions(args).map_err(invalid)?;
    let with_transitions = |store: &Store, mut bucket_spec: vhs::BucketSpec| {
        for (attr, days, class) in &transitions {
            bucket_spec
                .transitions
                .push(store.transition(table, attr, *days, class)?);
        }
        Ok::<_, Error>(bucket_spec)
    };
    if args.format == cli::Format::Cloudformation {
        let offline = configured(
            g,
            vhs::MemoryBackend::new(),
            bucket,
            table,
            g.table_prefix.as_deref(),
        )
        .build()?;
        let bucket_spec = with_transitions(
            &offline,
            provision::bucket_spec(bucket, &offline.table_prefix(table)?, args),
        )?;
        bucket_spec.check()?;
        print_json(&provision::cloudformation(&spec, &bucket_spec));
        return Ok(0);
    }
    let store = store(g).await?;
    match store.open_table(table).await {
        Ok(found) => {
            let (has, asked) = (found.spec(), &spec);
            if has.hash_key != asked.hash_key || has.range_key != asked.range_key {
                return Err(invalid(format!(
                    "table {table} exists with keys {}, not {}",
                    keys_text(has),
                    keys_text(asked)
                )));
            }
        }
        Err(Error::TableNotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let bucket_spec = with_transitions(
        &store,
        provision::bucket_spec(bucket, &store.table_prefix(table)?, args),
    )?;
    let plan = if args.dry_run {
        store.plan_provision(&spec, &bucket_spec).await?
    } else {
        store.provision(&spec, &bucket_spec).await?
    };
    let table_changes = &plan.table_changes;
    let table_status = match (&plan.table, args.dry_run) {
        (None, true) => "would create",
        (None, false) => "created",
        (Some(_), _) if table_changes.is_empty() => "found",
        (Some(_), true) => "found, would update",
        (Some(_), false) => "found, updated",
    };
    let bucket_status = match (plan.bucket_exists, args.dry_run) {
        (false, true) => "would create",
        (false, false) => "created",
        (true, true) => "found, would configure",
        (true, false) => "found, configured",
    };
    match g.output {
        Output::Json => print_json(&json!({
            "dry_run": args.dry_run,
            "table": {"name": table, "status": table_status, "changes": table_changes, "spec": provision::describe_table(&spec)},
            "bucket": {"name": bucket, "status": bucket_status, "settings": provision::describe_bucket(&bucket_spec)},
        })),
        Output::Text => {
            crate::say!(
                "table  {table}: {table_status} ({})",
                provision::describe_table(&spec)
            );
            for change in table_changes {
                crate::say!("       {change}");
            }
            crate::say!(
                "bucket {bucket}: {bucket_status} ({})",
                provision::describe_bucket(&bucket_spec)
            );
        }
    }
    Ok(0)
}

/// `tenant:S / id:S`: a table's keys as `--hash-key`/`--range-key` take them.
fn keys_text(spec: &vhs::TableSpec) -> String {
    let one = |(name, kind): &(String, vhs::KeyKind)| {
        let kind = match kind {
            vhs::KeyKind::String => "S",
            vhs::KeyKind::Number => "N",
        };
        format!("{name}:{kind}")
    };
    std::iter::once(one(&spec.hash_key))
        .chain(spec.range_key.as_ref().map(one))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn iam_policy(g: &Global, args: &cli::IamPolicy) -> Result<u8> {
    use vhs::iam::{policy, Access, PolicyScope};
    let table = table_name(g)?;
    let bucket = bucket_name(g)?;
    let mut scope = PolicyScope::new(table, bucket, offline_table_prefix(g, bucket, table)?);
    scope.region = g.region.clone();
    scope.account = args.account.clone();
    scope.partition = args.partition.clone();
    scope.kms_key_arn = args.kms_key_arn.clone();
    scope.tagged_objects = g.tagged_objects;
    let access = match args.access {
        cli::AccessArg::Read => Access::Read,
        cli::AccessArg::Write => Access::Write,
        cli::AccessArg::Admin => Access::Admin,
    };
    print_json(&policy(access, &scope));
    Ok(0)
}

/// `vhs repair`: removes dangling pointers, or deletes the item, through the
/// library's protocol paths (`AnyTable::remove_pointer`, `AnyTable::delete_item`).
async fn repair(g: &Global, args: &cli::Repair) -> Result<u8> {
    let table = open(g).await?;
    let (key, item) = fetch_existing(&table, &args.key).await?;
    let shown_key = key_text(&table, &item);
    let pointers = pointers_with_sizes(&table, &item).await?;
    let held = || {
        pointers
            .iter()
            .map(|(a, _, _)| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&(String, String, Object)> = match &args.attr {
        Some(attr) => {
            let found: Vec<_> = pointers.iter().filter(|p| &p.0 == attr).collect();
            if found.is_empty() {
                return Err(invalid(format!(
                    "item {shown_key} holds no pointer in `{attr}`; its pointers: [{}]",
                    held()
                )));
            }
            found
        }
        None if args.force && args.delete_item => pointers.iter().collect(),
        None => pointers.iter().filter(|p| p.2 == Object::Missing).collect(),
    };
    if let Some((attr, _, object)) = chosen.iter().find(|p| p.2 != Object::Missing) {
        if !args.force {
            let state = match object {
                Object::Size(n) => format!("its object exists, {}", size(*n)),
                Object::Bad(problem) => format!("it is not a pointer of this item: {problem}"),
                Object::Missing => "missing".to_owned(),
            };
            return Err(invalid(format!(
                "`{attr}` of {shown_key} is not dangling ({state}): repair refuses it unless --force"
            )));
        }
    }
    if chosen.is_empty() {
        if args.delete_item && !args.force {
            return Err(invalid(format!(
                "{shown_key} has no dangling pointer: repair refuses to delete it unless --force"
            )));
        }
        if !args.delete_item {
            crate::say!("nothing to repair: {shown_key} has no dangling pointer");
            return Ok(0);
        }
    }
    let state = |object: &Object| match object {
        Object::Size(n) => size(*n),
        Object::Missing => "missing".to_owned(),
        Object::Bad(_) => "bad".to_owned(),
    };
    let would = if args.dry_run { "would " } else { "" };
    let mut lines = Vec::new();
    let mut deleted_objects = Vec::new();
    if args.delete_item {
        if !args.dry_run {
            let (_, cleanup) = table.delete_item(&key).await?;
            deleted_objects.extend(cleanup.deleted);
        }
        lines.push(format!(
            "{would}delete item {shown_key} (pointers: {})",
            pointers
                .iter()
                .map(|(a, uri, o)| format!("`{a}` {uri} [{}]", state(o)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        for (attr, uri, object) in &chosen {
            if !args.dry_run {
                let cleanup = table.remove_pointer(&key, attr, uri).await?;
                deleted_objects.extend(cleanup.deleted);
            }
            lines.push(format!(
                "{would}remove `{attr}` of {shown_key} ({uri} [{}])",
                state(object)
            ));
        }
    }
    // Deleting a dangling pointer's object deletes nothing: not reported.
    let missing: Vec<String> = pointers
        .iter()
        .filter(|p| p.2 == Object::Missing)
        .filter_map(|p| vhs::Pointer::parse(&p.1).ok().map(|p| p.key))
        .collect();
    deleted_objects.retain(|k| !missing.contains(k));
    match g.output {
        Output::Json => print_json(&json!({
            "key": shown_key,
            "dry_run": args.dry_run,
            "action": if args.delete_item { "delete_item" } else { "remove_pointers" },
            "attrs": chosen.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
            "done": lines,
            "deleted_objects": deleted_objects,
        })),
        Output::Text => {
            for line in &lines {
                crate::say!("{line}");
            }
            for key in &deleted_objects {
                crate::say!("deleted object {key}");
            }
        }
    }
    Ok(0)
}

/// `vhs restore-check`: [`AnyTable::repair_from_versions`] on the (restored)
/// table; exit 1 if an object could not be restored.
async fn restore_check(g: &Global, args: &cli::RestoreCheck) -> Result<u8> {
    use vhs::maintenance::{RepairOptions, RestoreMethod};
    let table = open(g).await?;
    let reporter = Reporter::new("restore-check", g.output == Output::Json);
    let report = table
        .repair_from_versions(&RepairOptions::default().dry_run(args.dry_run), |p| {
            reporter.report(p)
        })
        .await;
    reporter.finish();
    let report = report?;
    let home = home(g, &table);
    let method = |m: &RestoreMethod| match m {
        RestoreMethod::DeleteMarkerRemoved { markers } => {
            format!("delete marker removed ({markers})")
        }
        RestoreMethod::Copied => "copied from the version".to_owned(),
        _ => "restored".to_owned(),
    };
    let bucket = bucket_name(g)?;
    let unversioned = report.versioning == vhs::BucketVersioning::Unversioned;
    match g.output {
        Output::Json => print_json(&json!({
            "complete": report.is_complete(),
            "dry_run": report.dry_run,
            "bucket_versioning": report.versioning.as_str(),
            "objects_under": home,
            "items": report.items,
            "pointers": report.pointers,
            "present": report.present,
            "restored_count": report.restored.len(),
            "restored": report.restored.iter().map(|r| json!({
                "item": r.item, "attr": r.attr, "object_key": r.object_key,
                "version_id": r.version_id, "method": method(&r.method),
            })).collect::<Vec<_>>(),
            "not_restored_count": report.not_restored.len(),
            "not_restored": report.not_restored.iter().map(|n| json!({
                "item": n.item, "attr": n.attr, "value": n.value, "reason": n.reason.to_string(),
            })).collect::<Vec<_>>(),
            "foreign_pointers": report.foreign_pointers,
        })),
        Output::Text => {
            let verb = if report.dry_run {
                "WOULD RESTORE"
            } else {
                "RESTORED"
            };
            for r in &report.restored {
                crate::say!(
                    "{verb} {} `{}`: {} (version {}, {})",
                    r.item,
                    r.attr,
                    r.object_key,
                    r.version_id,
                    method(&r.method)
                );
            }
            if unversioned && !report.not_restored.is_empty() {
                crate::say!(
                    "bucket {bucket} is not versioned: the {} objects this table points to that are gone cannot be brought back (deleted objects leave no version). Provision with --backup-consistent before the next restore point.",
                    report.not_restored.len()
                );
            }
            for n in &report.not_restored {
                crate::say!(
                    "NOT RESTORED {} `{}` {}: {}",
                    n.item,
                    n.attr,
                    n.value,
                    n.reason
                );
            }
            if report.foreign_pointers > 0 {
                crate::say!(
                    "{} pointers lie outside {home} and were not checked: give the source table's prefix (--prefix or --table-prefix)",
                    report.foreign_pointers
                );
            }
            crate::say!(
                "{} items, {} pointers checked under {home}: {} present, {} {} from versions, {} not restorable (bucket versioning: {})",
                report.items,
                report.pointers,
                report.present,
                report.restored.len(),
                if report.dry_run { "restorable" } else { "restored" },
                report.not_restored.len(),
                report.versioning,
            );
            crate::say!(
                "{}",
                if report.is_complete() {
                    "OK"
                } else {
                    "INCOMPLETE: some pointers still dangle"
                }
            );
        }
    }
    Ok(if report.is_complete() { 0 } else { EXIT_CHECK })
}
