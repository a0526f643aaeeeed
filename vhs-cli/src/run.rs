//! The commands.

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vhs::maintenance::{GcOptions, VerifyOptions};
use vhs::{AnyTable, AwsBackend, AwsOptions, Error, Item, Store};

use crate::cli::{self, Cli, Command, Global, Output};
use crate::output::{self, item_json, size, Reporter};
use crate::provision;

/// A check failed: verify found a problem, an MD5 mismatch, a failed delete.
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

/// The exit status an error ends the process with.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound { .. } | Error::TableNotFound { .. } => EXIT_NOT_FOUND,
        Error::InvalidInput { .. } => EXIT_INVALID,
        Error::Integrity { .. } | Error::DanglingPointer { .. } | Error::BadPointer { .. } => {
            EXIT_CHECK
        }
        Error::Backend { .. } => EXIT_BACKEND,
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
    configured(g, AwsBackend::with_options(&config, options), bucket, table).build()
}

/// A store builder over `backend` with the prefixes the options give.
fn configured(
    g: &Global,
    backend: impl vhs::Backend,
    bucket: &str,
    table: &str,
) -> vhs::StoreBuilder {
    let builder = Store::builder(backend, bucket).prefix(&g.prefix);
    match &g.table_prefix {
        Some(prefix) => builder.table_prefix(table, prefix),
        None => builder,
    }
}

/// The table's object prefix as a store computes it, without building a
/// client (for the commands that call nothing).
fn offline_table_prefix(g: &Global, bucket: &str, table: &str) -> Result<String> {
    configured(g, vhs::MemoryBackend::new(), bucket, table)
        .build()?
        .table_prefix(table)
}

async fn open(g: &Global) -> Result<AnyTable> {
    store(g).await?.open_table(table_name(g)?).await
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

/// Pointers of `item` with the sizes of their objects (`None`: missing).
async fn pointers_with_sizes(
    table: &AnyTable,
    item: &Item,
) -> Result<Vec<(String, String, Option<u64>)>> {
    let heads = table
        .pointers(item)
        .into_iter()
        .map(|(attr, uri)| async move {
            // A value that is no pointer of this item's has no size to show
            // (verify reports it); anything else is an error.
            let size = match table.object_info(item, &attr).await {
                Ok(info) => info.map(|i| i.size),
                Err(Error::BadPointer { .. }) => None,
                Err(e) => return Err(e),
            };
            Ok::<_, Error>((attr, uri, size))
        });
    stream::iter(heads)
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn pointers_json(pointers: &[(String, String, Option<u64>)]) -> Value {
    Value::Object(
        pointers
            .iter()
            .map(|(attr, uri, size)| (attr.clone(), json!({"uri": uri, "size": size})))
            .collect(),
    )
}

async fn ls(g: &Global, args: &cli::Ls) -> Result<u8> {
    let table = open(g).await?;
    let (items, more) = table.list(args.pk.as_deref(), None, args.limit).await?;
    let mut rows = Vec::new();
    for item in &items {
        rows.push((
            key_text(&table, item),
            pointers_with_sizes(&table, item).await?,
        ));
    }
    match g.output {
        Output::Json => print_json(&json!({
            "items": rows.iter().map(|(key, pointers)| json!({
                "key": key,
                "pointers": pointers_json(pointers),
            })).collect::<Vec<_>>(),
            "more": more.is_some(),
        })),
        Output::Text => {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
            let attr_width = rows
                .iter()
                .flat_map(|r| r.1.iter().map(|p| p.0.len()))
                .max()
                .unwrap_or(4)
                .max(4);
            crate::say!(
                "{:width$}  {:attr_width$}  {:>10}  POINTER",
                "KEY",
                "ATTR",
                "SIZE"
            );
            for (key, pointers) in &rows {
                if pointers.is_empty() {
                    crate::say!("{key:width$}  {:attr_width$}  {:>10}  -", "-", "-");
                }
                for (attr, uri, bytes) in pointers {
                    let bytes = bytes.map_or("MISSING".to_owned(), size);
                    crate::say!("{key:width$}  {attr:attr_width$}  {bytes:>10}  {uri}");
                }
            }
            if more.is_some() {
                eprintln!("(more items: raise --limit)");
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
                found.push(json!({
                    "key": key_text(&table, &item),
                    "item": item_json(&item),
                    "pointers": pointers_json(&pointers),
                }));
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
    let (key, item) = fetch(&table, &args.key).await?;
    let item = item.ok_or_else(|| Error::NotFound {
        table: table.spec().name.clone(),
        key: table.describe(&key),
    })?;
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
            // Beside the destination, renamed over it only once the MD5 checked out.
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
        eprintln!("{written} bytes, MD5 checked");
    }
    Ok(0)
}

async fn gc(g: &Global, args: &cli::Gc) -> Result<u8> {
    let table = open(g).await?;
    let mut options = GcOptions::default()
        .grace(args.grace)
        .dry_run(args.dry_run)
        .segments(args.segments)
        .foreign_writers_stopped(args.foreign_writers_stopped);
    if let Some(age) = args.take_over_after {
        options = options.take_over_after(age);
    }
    let reporter = Reporter::new("gc", g.output == Output::Json);
    let report = table.gc(&options, |p| reporter.report(p)).await;
    reporter.finish();
    let report = report?;
    match g.output {
        Output::Json => print_json(&json!({
            "dry_run": args.dry_run,
            "items": report.items,
            "objects": report.objects,
            "unreferenced": report.unreferenced,
            "too_young": report.too_young,
            "rescued": report.rescued,
            "foreign": report.foreign,
            "foreign_items": report.foreign_items,
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
                "{} items, {} objects; {} unreferenced: {} {verb} ({}), {} younger than the grace period, {} referenced again meanwhile; {} foreign; {} deletion marks and {} placeholders taken over; {} stale multipart uploads {}",
                report.items,
                report.objects,
                report.unreferenced,
                report.deleted.len(),
                size(report.deleted_bytes),
                report.too_young,
                report.rescued,
                report.foreign,
                report.marks_taken_over,
                report.placeholders_removed,
                report.uploads_aborted,
                if args.dry_run { "to abort" } else { "aborted" },
            );
        }
    }
    Ok(if report.failed.is_empty() {
        0
    } else {
        EXIT_CHECK
    })
}

async fn verify(g: &Global, args: &cli::Verify) -> Result<u8> {
    let table = open(g).await?;
    let reporter = Reporter::new("verify", g.output == Output::Json);
    let report = table
        .verify(&VerifyOptions::default().rehash(args.rehash), |p| {
            reporter.report(p)
        })
        .await;
    reporter.finish();
    let report = report?;
    let broken = |list: &[vhs::maintenance::BrokenPointer]| {
        list.iter()
            .map(
                |b| json!({"item": b.item, "attr": b.attr, "value": b.value, "problem": b.problem}),
            )
            .collect::<Vec<_>>()
    };
    match g.output {
        Output::Json => print_json(&json!({
            "clean": report.is_clean(),
            "items": report.items,
            "pointers": report.pointers,
            "inline": report.inline,
            "dangling": broken(&report.dangling),
            "integrity": broken(&report.integrity),
            "bad_pointers": broken(&report.bad_pointers),
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
                for b in list {
                    crate::say!("{what} {} `{}`: {}", b.item, b.attr, b.problem);
                }
            }
            crate::say!(
                "{} items, {} pointers checked{}: {} dangling, {} integrity mismatches, {} bad pointers; {} orphans ({}), {} foreign objects",
                report.items,
                report.pointers,
                if args.rehash { " (rehashed)" } else { "" },
                report.dangling.len(),
                report.integrity.len(),
                report.bad_pointers.len(),
                report.orphans,
                size(report.orphan_bytes),
                report.foreign,
            );
            crate::say!(
                "{}",
                if report.is_clean() {
                    "OK"
                } else {
                    "PROBLEMS FOUND"
                }
            );
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
            "orphans": stats.orphans,
            "orphan_bytes": stats.orphan_bytes,
            "foreign": stats.foreign,
            "incomplete_uploads": stats.incomplete_uploads,
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
            crate::say!(
                "orphans     {} ({})",
                stats.orphans,
                size(stats.orphan_bytes)
            );
            crate::say!("foreign     {}", stats.foreign);
            crate::say!("incomplete multipart uploads {}", stats.incomplete_uploads);
        }
    }
    Ok(0)
}

async fn provision(g: &Global, args: &cli::Provision) -> Result<u8> {
    let table = table_name(g)?;
    let bucket = bucket_name(g)?;
    let spec = provision::table_spec(table, args).map_err(invalid)?;
    if args.format == cli::Format::Cloudformation {
        let bucket_spec =
            provision::bucket_spec(bucket, &offline_table_prefix(g, bucket, table)?, args);
        print_json(&provision::cloudformation(&spec, &bucket_spec));
        return Ok(0);
    }
    let store = store(g).await?;
    let bucket_spec = provision::bucket_spec(bucket, &store.table_prefix(table)?, args);
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

fn iam_policy(g: &Global, args: &cli::IamPolicy) -> Result<u8> {
    use vhs::iam::{policy, Access, PolicyScope};
    let table = table_name(g)?;
    let bucket = bucket_name(g)?;
    let mut scope = PolicyScope::new(table, bucket, offline_table_prefix(g, bucket, table)?);
    scope.region = g.region.clone();
    scope.account = args.account.clone();
    scope.partition = args.partition.clone();
    scope.kms_key_arn = args.kms_key_arn.clone();
    let access = match args.access {
        cli::AccessArg::Read => Access::Read,
        cli::AccessArg::Write => Access::Write,
        cli::AccessArg::Admin => Access::Admin,
    };
    print_json(&policy(access, &scope));
    Ok(0)
}
