//! End to end: the `vhs` binary against the local emulator (ministack by
//! default, `VHS_TEST_EMULATOR=moto` for moto), on a table the library wrote
//! and on one pynamodb_mate wrote.

#[path = "../../tests/contract/emulator.rs"]
#[allow(dead_code)]
mod emulator;

use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::Value;
use vhs::{AwsBackend, AwsOptions, Model, Store};

/// The model the library writes with; the CLI never sees it.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "cli_docs")]
struct Doc {
    #[vhs(hash_key)]
    id: String,
    title: String,
    #[large]
    body: Option<Bytes>,
    #[large]
    thumb: Option<Bytes>,
}

fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cli-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `vhs` with `args` against the emulator.
async fn vhs(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vhs"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VHS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .await
        .expect("run vhs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `vhs`, expects exit status `code`, returns stdout.
async fn expect(url: &str, args: &[&str], code: i32) -> String {
    let out = vhs(url, args).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "vhs {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn json(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = expect(url, &all, 0).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn s3(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_session_on_a_table_the_library_wrote() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket) = (unique("docs"), unique("bkt"));
    let common = [
        "--table",
        table.as_str(),
        "--bucket",
        bucket.as_str(),
        "--prefix",
        "vhs",
    ];
    let with = |args: &[&'static str]| -> Vec<String> {
        common
            .iter()
            .map(|s| s.to_string())
            .chain(args.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |args: Vec<String>, code: i32| {
        let url = url.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            expect(&url, &args, code).await
        }
    };

    // Provision: a plan, then created, then found; the template needs no server.
    let plan = run(with(&["provision", "--hash-key", "id:S", "--dry-run"]), 0).await;
    assert!(
        plan.contains(&format!("table  {table}: would create")),
        "{plan}"
    );
    assert!(
        plan.contains("bucket") && plan.contains("would create"),
        "{plan}"
    );
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    assert!(
        ddb.describe_table()
            .table_name(&table)
            .send()
            .await
            .is_err(),
        "a dry run created the table"
    );
    let created = run(
        with(&[
            "provision",
            "--hash-key",
            "id:S",
            "--streams",
            "--point-in-time-recovery",
        ]),
        0,
    )
    .await;
    assert!(
        created.contains(&format!("table  {table}: created")),
        "{created}"
    );
    assert!(
        created.contains(&format!("bucket {bucket}: created")),
        "{created}"
    );
    let again = run(with(&["provision", "--hash-key", "id:S", "--streams"]), 0).await;
    assert!(
        again.contains(&format!("table  {table}: found (")),
        "{again}"
    );
    assert!(again.contains("found, configured"), "{again}");
    let s3 = s3(&config);
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle rule");
    let rule = &lifecycle.rules()[0];
    assert_eq!(rule.id(), Some(vhs::BucketSpec::LIFECYCLE_RULE_ID));
    assert_eq!(
        rule.abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
        Some(7)
    );
    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("public access block");
    assert_eq!(
        block
            .public_access_block_configuration()
            .and_then(|c| c.restrict_public_buckets()),
        Some(true)
    );
    let described = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert!(described
        .table()
        .and_then(|t| t.stream_specification())
        .is_some_and(|s| s.stream_enabled()));
    // Other keys than the table has: refused in plain words, nothing changed.
    let out = vhs(&url, &args(&with(&["provision", "--hash-key", "other:N"]))).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!("error: invalid input: table {table} exists with keys id:S, not other:N")
    );

    // Write through the library.
    let store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &bucket,
    )
    .prefix("vhs")
    .table_for::<Doc>(&table)
    .build()
    .unwrap();
    let big = Bytes::from((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    for (id, body) in [
        ("doc-0", Bytes::from_static(b"zero")),
        ("doc-1", Bytes::from_static(b"one body")),
        ("a/b c", big.clone()),
    ] {
        store
            .create_large(&Doc {
                id: id.into(),
                title: format!("title of {id}"),
                body: Some(body),
                thumb: Some(Bytes::from(vec![7u8; 10])),
            })
            .await
            .unwrap();
    }

    // ls: every item, every pointer with its size; keys in command-line form.
    let listed = json(&url, &args(&with(&["ls"]))).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{listed}");
    let slashed = items
        .iter()
        .find(|i| i["key"] == "a%2Fb c")
        .expect("escaped key");
    assert_eq!(slashed["pointers"]["body"]["size"], 300_000);
    assert_eq!(slashed["pointers"]["thumb"]["size"], 10);
    let table_text = run(with(&["ls", "--limit", "2"]), 0).await;
    assert_eq!(table_text.lines().count(), 1 + 2 * 2, "{table_text}");
    assert!(table_text.starts_with("KEY"), "{table_text}");

    // get: the item as JSON, its pointers with sizes; a missing key exits 3.
    let got = json(&url, &args(&with(&["get", "doc-1"]))).await;
    assert_eq!(got[0]["item"]["title"], "title of doc-1");
    assert_eq!(got[0]["pointers"]["body"]["size"], 8);
    run(with(&["get", "doc-1", "nope"]), 3).await;
    run(with(&["get", "doc-1/extra"]), 2).await;

    // cat: the bytes, MD5-checked, by the key `ls` printed.
    let out = vhs(&url, &args(&with(&["cat", "a%2Fb c", "--attr", "body"]))).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, big.to_vec());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("thumb.bin");
    let file_arg = file.to_str().unwrap();
    run(
        with(&["cat", "doc-1", "--attr", "thumb", "-o"])
            .into_iter()
            .chain([file_arg.to_owned()])
            .collect(),
        0,
    )
    .await;
    assert_eq!(std::fs::read(&file).unwrap(), vec![7u8; 10]);
    run(with(&["cat", "doc-1", "--attr", "title"]), 2).await;

    // Clean so far.
    let report = run(with(&["verify"]), 0).await;
    assert!(report.trim_end().ends_with("OK"), "{report}");

    // Behind the store's back: doc-0's body object deleted, doc-1's thumb
    // object overwritten with other bytes, an orphan planted.
    let pointer = |id: &str, attr: &str| {
        let store = store.clone();
        let (id, attr) = (id.to_owned(), attr.to_owned());
        async move {
            let stored = store.get_stored(&Doc::key(id), true).await.unwrap();
            let uri = stored.pointer(&attr).unwrap().to_owned();
            vhs::Pointer::parse(&uri).unwrap()
        }
    };
    let gone = pointer("doc-0", "body").await;
    s3.delete_object()
        .bucket(&bucket)
        .key(&gone.key)
        .send()
        .await
        .unwrap();
    let altered = pointer("doc-1", "thumb").await;
    s3.put_object()
        .bucket(&bucket)
        .key(&altered.key)
        .body(vec![8u8; 10].into())
        .send()
        .await
        .unwrap();
    let orphan_body = b"nobody points here".to_vec();
    let orphan_key = format!(
        "vhs/{table}/pk=ghost/attr=body/md5={}",
        hex(&Md5::digest(&orphan_body))
    );
    s3.put_object()
        .bucket(&bucket)
        .key(&orphan_key)
        .body(orphan_body.clone().into())
        .send()
        .await
        .unwrap();

    // verify: the dangling pointer (and, rehashing, the altered object); exit 1.
    let report = run(with(&["verify"]), 1).await;
    assert!(report.contains("DANGLING doc-0 `body`"), "{report}");
    assert!(report.contains("1 orphans"), "{report}");
    assert!(report.trim_end().ends_with("PROBLEMS FOUND"), "{report}");
    let out = vhs(
        &url,
        &args(&with(&["verify", "--rehash", "--output", "json"])),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rehashed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rehashed["clean"], false);
    assert_eq!(rehashed["dangling"].as_array().unwrap().len(), 1);
    assert_eq!(rehashed["integrity"][0]["key"], "doc-1");
    assert_eq!(rehashed["orphans"], 1);

    // cat of the altered object: the bytes pass, the MD5 does not; exit 1.
    let out = vhs(&url, &args(&with(&["cat", "doc-1", "--attr", "thumb"]))).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("integrity mismatch"),
        "{}",
        text(&out.stderr)
    );
    let out = vhs(&url, &args(&with(&["cat", "doc-0", "--attr", "body"]))).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("dangling pointer"),
        "{}",
        text(&out.stderr)
    );

    // stats counts it all.
    let stats = json(&url, &args(&with(&["stats"]))).await;
    assert_eq!(stats["items"], 3, "{stats}");
    assert_eq!(stats["pointers"], 6, "{stats}");
    assert_eq!(stats["objects"], 6, "{stats}"); // 6 written, 1 deleted, 1 planted
    assert_eq!(stats["orphans"], 1, "{stats}");
    assert_eq!(stats["orphan_bytes"], orphan_body.len() as u64, "{stats}");
    assert_eq!(stats["by_attr"]["body"]["objects"], 3, "{stats}");
    assert_eq!(stats["by_attr"]["body"]["orphans"], 1, "{stats}");
    assert_eq!(stats["by_attr"]["thumb"]["objects"], 3, "{stats}");
    assert_eq!(stats["by_class"]["STANDARD"]["objects"], 6, "{stats}");
    assert_eq!(stats["incomplete_uploads"], 0, "{stats}");

    // gc: the dry run lists the orphan and deletes nothing; then it goes.
    let dry = run(with(&["gc", "--grace", "0s", "--dry-run"]), 0).await;
    assert!(dry.contains(&format!("would delete {orphan_key}")), "{dry}");
    assert!(head(&s3, &bucket, &orphan_key).await, "a dry run deleted");
    let young = run(with(&["gc"]), 0).await;
    assert!(young.contains("1 younger than the grace period"), "{young}");
    let done = run(with(&["gc", "--grace", "0s"]), 0).await;
    assert!(done.contains(&format!("deleted {orphan_key}")), "{done}");
    assert!(!head(&s3, &bucket, &orphan_key).await, "gc left the orphan");
    let stats = json(&url, &args(&with(&["stats"]))).await;
    assert_eq!(stats["orphans"], 0, "{stats}");
    assert_eq!(stats["objects"], 5, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_on_a_table_pynamodb_mate_wrote() {
    let url = emulator::endpoint().await;
    let (table, bucket) = (unique("mate"), unique("matebkt"));
    let venv = tokio::task::spawn_blocking(|| {
        emulator::python_env(
            "pynamodb_mate-6.0.1.1",
            &[
                "pynamodb_mate==6.0.1.1",
                "pynamodb==6.1.0",
                "boto3==1.44.5",
                "botocore==1.44.5",
            ],
            "python",
        )
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pynamodb_mate_table.py");
    let out = tokio::process::Command::new(venv.join("bin/python"))
        .args([script, "--endpoint", &url, "--table", &table])
        .args(["--bucket", &bucket, "--prefix", "mate/data"])
        .output()
        .await
        .expect("run the pynamodb_mate writer");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = written["items"].as_array().unwrap();
    assert_eq!(written.len(), 6);

    let common = |rest: &[&str]| -> Vec<String> {
        [
            "--table",
            table.as_str(),
            "--bucket",
            bucket.as_str(),
            "--table-prefix",
            "mate/data",
        ]
        .iter()
        .chain(rest)
        .map(|s| s.to_string())
        .collect()
    };
    let listed = json(&url, &args(&common(&["ls"]))).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{listed}");
    for w in written {
        let item = items
            .iter()
            .find(|i| i["key"] == w["id"])
            .unwrap_or_else(|| panic!("{} not listed: {listed}", w["id"]));
        let p = &item["pointers"][w["attr"].as_str().unwrap()];
        assert_eq!(p["uri"], w["uri"], "{listed}");
        assert_eq!(p["size"], w["size"], "{listed}");
    }
    let got = json(&url, &args(&common(&["get", "doc-2"]))).await;
    assert_eq!(got[0]["item"]["title"], "document 2");
    for w in written {
        let id = w["id"].as_str().unwrap();
        let attr = w["attr"].as_str().unwrap();
        let out = vhs(&url, &args(&common(&["cat", id, "--attr", attr]))).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(hex(&Md5::digest(&out.stdout)), w["md5"].as_str().unwrap());
        assert_eq!(out.stdout.len() as u64, w["size"].as_u64().unwrap());
    }
    let report = expect(&url, &args(&common(&["verify", "--rehash"])), 0).await;
    assert!(
        report.contains("3 items, 6 pointers checked (rehashed)"),
        "{report}"
    );
    let stats = json(&url, &args(&common(&["stats"]))).await;
    assert_eq!(stats["objects"], 6, "{stats}");
    assert_eq!(stats["orphans"], 0, "{stats}");
    assert_eq!(stats["foreign"], 0, "{stats}");

    // pynamodb_mate ignores deletion marks: gc refuses to collect beside it
    // until told every such writer is stopped.
    let out = vhs(&url, &args(&common(&["gc", "--grace", "0s"]))).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("3 items of table") && said.contains("--foreign-writers-stopped"),
        "{said}"
    );
    let gc = json(
        &url,
        &args(&common(&[
            "gc",
            "--grace",
            "0s",
            "--foreign-writers-stopped",
        ])),
    )
    .await;
    assert_eq!(gc["foreign_items"], 3, "{gc}");
    assert_eq!(gc["deleted"].as_array().map(Vec::len), Some(0), "{gc}");
    let report = expect(&url, &args(&common(&["verify"])), 0).await;
    assert!(report.contains("3 items, 6 pointers checked"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_read_as_one_line_with_distinct_exit_codes() {
    let url = emulator::endpoint().await;
    // A bucket name S3 would refuse: refused before anything is sent, in one line.
    let out = vhs(&url, &["--table", "tbl", "--bucket", "pb", "provision"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.starts_with("error: ")
            && said.contains("\"pb\"")
            && said.trim_end().lines().count() == 1,
        "{said}"
    );
    // The service's code and message, not the SDK's dump.
    let out = vhs(
        &url,
        &[
            "--table",
            "no-such-table",
            "--bucket",
            "no-such-bucket",
            "ls",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "error: table no-such-table not found"
    );
    let out = vhs(&url, &["ls"]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    assert!(
        said.contains("--table") && said.contains("VHS_TABLE") && said.lines().count() == 1,
        "{said}"
    );
    // Options backed by the environment are options in the usage line.
    let help = expect(&url, &["ls", "--help"], 0).await;
    let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert_eq!(usage, "Usage: vhs ls [OPTIONS]", "{help}");
    assert!(help.contains("[env: VHS_TABLE="), "{help}");
    assert!(help.contains("[env: VHS_BUCKET="), "{help}");
    // Usage errors are clap's, also 2.
    assert_eq!(
        vhs(&url, &["gc", "--grace", "soon"]).await.status.code(),
        Some(2)
    );
}

#[tokio::test]
async fn offline_commands_print_policies_templates_and_completions() {
    let none = "http://127.0.0.1:9"; // never contacted
    let t = ["--table", "docs", "--bucket", "bkt", "--prefix", "vhs"];
    let policy: Value = serde_json::from_str(
        &expect(
            none,
            &[&t[..], &["iam-policy", "--access", "write"]].concat(),
            0,
        )
        .await,
    )
    .unwrap();
    let text_all = policy.to_string();
    assert!(text_all.contains("arn:aws:s3:::bkt/vhs/docs/*"), "{policy}");
    assert!(text_all.contains("s3:DeleteObject"), "{policy}");
    let template: Value = serde_json::from_str(
        &expect(
            none,
            &[&t[..], &["provision", "--format", "cloudformation"]].concat(),
            0,
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        template["Resources"]["Table"]["Properties"]["TableName"],
        "docs"
    );
    // Tagging: the policy grants it exactly when the writers tag; a
    // transition per attribute needs it.
    assert!(!text_all.contains("Tagging"), "{policy}");
    let tagged = expect(
        none,
        &[
            &t[..],
            &["--tagged-objects", "iam-policy", "--access", "write"],
        ]
        .concat(),
        0,
    )
    .await;
    assert!(
        tagged.contains("s3:PutObjectTagging") && tagged.contains("s3:GetObjectTagging"),
        "{tagged}"
    );
    let transition = [
        "provision",
        "--format",
        "cloudformation",
        "--transition",
        "body=30:STANDARD_IA",
    ];
    let refused = vhs(none, &[&t[..], &transition[..]].concat()).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("needs tagged objects"),
        "{}",
        text(&refused.stderr)
    );
    let template: Value = serde_json::from_str(
        &expect(
            none,
            &[&t[..], &["--tagged-objects"], &transition[..]].concat(),
            0,
        )
        .await,
    )
    .unwrap();
    let rules = &template["Resources"]["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"];
    let rule = rules
        .as_array()
        .and_then(|r| r.iter().find(|r| r["Id"] == "vhs-transition-docs-body"))
        .unwrap_or_else(|| panic!("{template}"));
    assert_eq!(rule["Prefix"], "vhs/docs/", "{rule}");
    assert_eq!(rule["TagFilters"][1]["Value"], "body", "{rule}");
    assert_eq!(rule["Transitions"][0]["TransitionInDays"], 30, "{rule}");
    let bash = expect(none, &["completions", "bash"], 0).await;
    assert!(bash.contains("_vhs()"), "{bash}");
    let zsh = expect(none, &["completions", "zsh"], 0).await;
    assert!(zsh.starts_with("#compdef vhs"), "{zsh}");
    for sub in [
        "",
        "provision",
        "iam-policy",
        "ls",
        "get",
        "cat",
        "gc",
        "verify",
        "stats",
        "repair",
    ] {
        let args: Vec<&str> = [sub, "--help"]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let help = expect(none, &args, 0).await;
        assert!(help.contains("Usage: vhs"), "{help}");
    }
}

/// Runs `vhs` with `args` and `env` (and nothing else from the environment
/// but PATH): the exit status, stdout and stderr.
async fn vhs_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vhs"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run vhs");
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Runs `vhs` against the emulator: exit status, stdout, stderr.
async fn run3(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = vhs(url, args).await;
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_prefix_and_bucket_are_found_and_dangling_items_repaired() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket, other) = (unique("pfx"), unique("pbkt"), unique("obkt"));
    let store_with = |prefix: &str| {
        Store::builder(
            AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
            &bucket,
        )
        .prefix(prefix)
        .table_for::<Doc>(&table)
        .build()
        .unwrap()
    };
    let store = store_with("app");
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Doc>().await.unwrap();
    s3(&config)
        .create_bucket()
        .bucket(&other)
        .send()
        .await
        .unwrap();
    for id in ["a/b c", "doc-1", "doc-2", "doc-3"] {
        store
            .create_large(&Doc {
                id: id.into(),
                title: format!("title of {id}"),
                body: Some(Bytes::from(format!("body of {id}"))),
                thumb: Some(Bytes::from_static(b"thumb")),
            })
            .await
            .unwrap();
    }
    let t = ["--table", table.as_str(), "--bucket", bucket.as_str()];
    let with =
        |rest: &[&str]| -> Vec<String> { t.iter().chain(rest).map(|s| s.to_string()).collect() };

    // No --prefix: inferred from the pointers, said on stderr, all checked.
    let (code, out, err) = run3(&url, &args(&with(&["verify"]))).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.contains("--prefix app"), "{err}");
    assert!(out.contains("4 items, 8 pointers checked"), "{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
    let listed = json(&url, &args(&with(&["ls"]))).await;
    assert_eq!(listed["foreign_pointers"], 0, "{listed}");
    assert_eq!(listed["items"][0]["pointers"].as_object().unwrap().len(), 2);

    // A wrong prefix, a wrong bucket: verify exits 1 and says why in one line.
    let (code, out, _) = run3(&url, &args(&with(&["--prefix", "nope", "verify"]))).await;
    assert_eq!(code, Some(1), "{out}");
    let why: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("FOREIGN POINTERS"))
        .collect();
    assert_eq!(why.len(), 1, "{out}");
    assert!(
        why[0].contains(&format!(
            "8 values point outside s3://{bucket}/nope/{table}/"
        )),
        "{out}"
    );
    assert!(out.contains("0 pointers checked"), "{out}");
    assert!(out.trim_end().ends_with("PROBLEMS FOUND"), "{out}");
    let wrong = [
        "--table",
        table.as_str(),
        "--bucket",
        other.as_str(),
        "--prefix",
        "app",
    ];
    let (code, out, _) = run3(&url, &[&wrong[..], &["verify"]].concat()).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("FOREIGN POINTERS")
                && l.contains(&format!("outside s3://{other}/app/{table}/"))
                && l.contains("--bucket"))
            .count(),
        1,
        "{out}"
    );
    let report: Value = serde_json::from_str(
        &run3(
            &url,
            &[&wrong[..], &["verify", "--output", "json"]].concat(),
        )
        .await
        .1,
    )
    .unwrap();
    assert_eq!(report["clean"], false, "{report}");
    assert_eq!(report["foreign_pointers"], 8, "{report}");
    assert_eq!(report["foreign_pointer_examples"][0]["key"], "a%2Fb c");
    let stats = json(&url, &[&wrong[..], &["stats"]].concat()).await;
    assert_eq!(stats["foreign_pointers"], 8, "{stats}");
    // gc under the wrong bucket would judge what is there unreferenced: it
    // refuses, deletes nothing, and its dry run counts the foreign pointers.
    let body = b"in the other bucket".to_vec();
    let planted = format!(
        "app/{table}/pk=doc-1/attr=body/md5={}",
        hex(&Md5::digest(&body))
    );
    s3(&config)
        .put_object()
        .bucket(&other)
        .key(&planted)
        .body(body.into())
        .send()
        .await
        .unwrap();
    let (code, _, err) = run3(&url, &[&wrong[..], &["gc", "--grace", "0s"]].concat()).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("8 values in table") && err.contains("--foreign-pointers-allowed"),
        "{err}"
    );
    // One line of error (after the progress line gc prints when not on a terminal).
    assert!(
        err.trim_end()
            .lines()
            .all(|l| l.starts_with("error: ") || l.starts_with("gc: ")),
        "{err}"
    );
    assert!(head(&s3(&config), &other, &planted).await, "gc deleted");
    let dry = json(
        &url,
        &[&wrong[..], &["gc", "--grace", "0s", "--dry-run"]].concat(),
    )
    .await;
    assert_eq!(dry["foreign_pointers"], 8, "{dry}");
    assert_eq!(
        dry["foreign_pointer_examples"][0]["key"], "a%2Fb c",
        "{dry}"
    );
    let (code, out, err) = run3(&url, &[&wrong[..], &["ls"]].concat()).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("FOREIGN")).count(),
        8,
        "{out}"
    );
    assert!(err.contains("FOREIGN POINTERS: 8 values"), "{err}");

    // The library's own reports carry the count too.
    let wrong_store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &other,
    )
    .prefix("app")
    .table_for::<Doc>(&table)
    .build()
    .unwrap();
    let report = wrong_store
        .verify::<Doc>(&vhs::maintenance::VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.foreign_pointers, 8, "{report:?}");
    assert!(!report.is_clean());

    // get hides vhs's bookkeeping unless --raw; keys read alike everywhere.
    let got = json(&url, &args(&with(&["--prefix", "app", "get", "a%2Fb c"]))).await;
    assert_eq!(got[0]["key"], "a%2Fb c");
    assert!(got[0]["item"].get("vhs:tok").is_none(), "{got}");
    assert_eq!(got[0]["item"]["title"], "title of a/b c");
    let raw = json(
        &url,
        &args(&with(&["--prefix", "app", "get", "--raw", "a%2Fb c"])),
    )
    .await;
    assert!(raw[0]["item"].get("vhs:tok").is_some(), "{raw}");

    // Dangling pointers behind the store's back: ls goes on past them.
    let s3c = s3(&config);
    for id in ["a/b c", "doc-2"] {
        let stored = store.get_stored(&Doc::key(id), true).await.unwrap();
        let gone = vhs::Pointer::parse(stored.pointer("body").unwrap()).unwrap();
        s3c.delete_object()
            .bucket(&bucket)
            .key(&gone.key)
            .send()
            .await
            .unwrap();
    }
    let p = |rest: &[&str]| with(&[&["--prefix", "app"], rest].concat());
    let (code, out, err) = run3(&url, &args(&p(&["ls"]))).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 1 + 8, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("MISSING")).count(),
        2,
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("doc-3")), "{out}");
    let listed = json(&url, &args(&p(&["ls"]))).await;
    let report: Value = serde_json::from_str(
        &run3(&url, &args(&p(&["verify", "--output", "json"])))
            .await
            .1,
    )
    .unwrap();
    let dangling: Vec<&str> = report["dangling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(dangling, ["a%2Fb c", "doc-2"], "{report}");
    let listed_keys: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    for key in &dangling {
        assert!(listed_keys.contains(key), "{listed}");
        let got = json(&url, &args(&p(&["get", key]))).await;
        assert_eq!(got[0]["key"], *key);
    }
    let (_, out, _) = run3(&url, &args(&p(&["verify"]))).await;
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("DANGLING")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("DANGLING a%2Fb c `body`"), "{out}");
    assert!(lines[1].starts_with("DANGLING doc-2 `body`"), "{out}");

    // repair: refused on a pointer that resolves; a dry run changes nothing;
    // then the pointer removed, the other item deleted; verify is clean.
    let (code, _, err) = run3(&url, &args(&p(&["repair", "doc-2", "--attr", "thumb"]))).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not dangling"), "{err}");
    let (code, _, err) = run3(&url, &args(&p(&["repair", "doc-1", "--delete-item"]))).await;
    assert_eq!(code, Some(2), "{err}");
    let dry = expect(&url, &args(&p(&["repair", "doc-2", "--dry-run"])), 0).await;
    assert!(dry.contains("would remove `body` of doc-2"), "{dry}");
    expect(&url, &args(&p(&["verify"])), 1).await;
    let done = expect(&url, &args(&p(&["repair", "doc-2", "--attr", "body"])), 0).await;
    assert!(done.contains("remove `body` of doc-2"), "{done}");
    assert!(
        !done.contains("deleted object"),
        "the object was missing: {done}"
    );
    let got = json(&url, &args(&p(&["get", "doc-2"]))).await;
    assert!(got[0]["item"].get("body").is_none(), "{got}");
    assert_eq!(got[0]["pointers"]["thumb"]["size"], 5, "{got}");
    let dry = expect(
        &url,
        &args(&p(&["repair", "a%2Fb c", "--delete-item", "--dry-run"])),
        0,
    )
    .await;
    assert!(dry.contains("would delete item a%2Fb c"), "{dry}");
    expect(&url, &args(&p(&["get", "a%2Fb c"])), 0).await;
    let done = expect(&url, &args(&p(&["repair", "a%2Fb c", "--delete-item"])), 0).await;
    assert!(done.contains("delete item a%2Fb c"), "{done}");
    // Its thumb (which existed) went with it; its missing body is not listed.
    assert_eq!(
        done.lines()
            .filter(|l| l.starts_with("deleted object"))
            .count(),
        1,
        "{done}"
    );
    assert!(done.contains("/attr=thumb/"), "{done}");
    expect(&url, &args(&p(&["get", "a%2Fb c"])), 3).await;
    let clean = expect(&url, &args(&p(&["verify"])), 0).await;
    // (4 items scanned: the deleted item's placeholder stays until gc.)
    assert!(clean.contains(" 5 pointers checked: 0 dangling"), "{clean}");
    assert!(clean.trim_end().ends_with("OK"), "{clean}");
    // The deleted item's thumb went with it: no orphan left.
    let stats = json(&url, &args(&p(&["stats"]))).await;
    assert_eq!(stats["objects"], 5, "{stats}");

    // Pointers under two prefixes and no --prefix: refused, both named.
    store_with("elsewhere")
        .create_large(&Doc {
            id: "stray".into(),
            title: "stray".into(),
            body: Some(Bytes::from_static(b"stray")),
            thumb: None,
        })
        .await
        .unwrap();
    let (code, _, err) = run3(&url, &args(&with(&["verify"]))).await;
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("s3://{bucket}/app/{table}/"))
            && err.contains(&format!("s3://{bucket}/elsewhere/{table}/"))
            && err.contains("--prefix"),
        "{err}"
    );
}

/// Creates the Glue database `default` on ministack (its Athena creates
/// tables there and has no `CREATE DATABASE`), by one raw request.
async fn glue_default_database(url: &str) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = url.trim_start_matches("http://");
    let body = r#"{"DatabaseInput":{"Name":"default"}}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: AWSGlue.CreateDatabase\r\n\
         Content-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=test/20260101/us-east-1/glue/aws4_request, SignedHeaders=host, \
         Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.contains("AlreadyExists"),
        "{answer}"
    );
}

/// `--engine athena` prints the reports the in-process engine prints, and
/// deletes the orphan (ministack, whose Athena runs SQL; on moto, whose
/// Athena runs none, the expected difference: no orphan found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_verify_on_athena_match_in_process() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket, out) = (unique("ath"), unique("athbkt"), unique("athout"));
    let store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &bucket,
    )
    .table_for::<Doc>(&table)
    .build()
    .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Doc>().await.unwrap();
    for i in 0..20 {
        store
            .create_large(&Doc {
                id: format!("doc-{i}"),
                title: format!("{i}"),
                body: Some(Bytes::from(format!("body {i}"))),
                thumb: None,
            })
            .await
            .unwrap();
    }
    let s3 = s3(&config);
    s3.create_bucket().bucket(&out).send().await.unwrap();
    let all = keys_under(&s3, &bucket, "").await;
    let lost: Vec<&String> = all.iter().filter(|k| k.contains("/pk=doc-3/")).collect();
    assert_eq!(lost.len(), 1, "{all:?}");
    let lost = lost[0];
    let home = lost.split("/pk=").next().unwrap().to_owned();
    s3.delete_object()
        .bucket(&bucket)
        .key(lost)
        .send()
        .await
        .unwrap();
    let orphan_body = b"nobody points here".to_vec();
    let orphan = format!(
        "{home}/pk=ghost/attr=body/md5={}",
        hex(&Md5::digest(&orphan_body))
    );
    s3.put_object()
        .bucket(&bucket)
        .key(&orphan)
        .body(orphan_body.into())
        .send()
        .await
        .unwrap();
    let moto = emulator::emulator_name() == "moto";
    if !moto {
        glue_default_database(&url).await;
    }
    let output = format!("s3://{out}/runs/");
    let common = ["--table", &table, "--bucket", &bucket];
    let athena = ["--engine", "athena", "--athena-output", &output];
    let report = |extra: &[&str], engine: bool, code: i32| {
        let mut all: Vec<&str> = common.to_vec();
        all.extend(extra);
        if engine {
            all.extend(athena);
        }
        all.extend(["--output", "json"]);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        let url = url.clone();
        async move {
            let text = expect(&url, &args(&all), code).await;
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let verify_in = report(&["verify"], false, 1).await;
    let verify_athena = report(&["verify"], true, if moto { 0 } else { 1 }).await;
    assert_eq!(verify_in["orphans"], 1, "{verify_in}");
    assert_eq!(verify_in["dangling"].as_array().unwrap().len(), 1);
    let dry = ["gc", "--grace", "0s", "--dry-run"];
    let gc_in = report(&dry, false, 0).await;
    let gc_athena = report(&dry, true, 0).await;
    // --from-export: refused without --engine athena and by verify, before
    // anything is read; with Athena, the same report (every object is older
    // than the export by more than S3's one-second LastModified).
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let export = store
        .write_export::<Doc>(&format!("s3://{out}/exports/"), 2)
        .await
        .unwrap();
    let from = ["--from-export", export.uri.as_str()];
    for (extra, athena_too) in [(&["gc", "--dry-run"][..], false), (&["verify"][..], true)] {
        let mut all: Vec<&str> = common.to_vec();
        all.extend(extra);
        all.extend(from);
        if athena_too {
            all.extend(athena);
        }
        let said = expect(&url, &all, 2).await;
        assert!(said.is_empty(), "{said}");
    }
    let mut with_export = dry.to_vec();
    with_export.extend(from);
    let gc_export = report(&with_export, true, 0).await;
    if moto {
        assert_eq!(verify_athena["orphans"], 0, "{verify_athena}");
        assert_eq!(gc_athena["unreferenced"], 0, "{gc_athena}");
        return;
    }
    assert_eq!(verify_athena, verify_in);
    assert_eq!(gc_athena, gc_in);
    assert_eq!(gc_export, gc_in);
    report(&["gc", "--grace", "0s"], true, 0).await;
    assert!(!head(&s3, &bucket, &orphan).await, "the orphan is deleted");
    let after = report(&["verify"], true, 1).await;
    assert_eq!(after["orphans"], 0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_pointers_is_not_reported_ok() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket) = (unique("bare"), unique("barebkt"));
    let store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &bucket,
    )
    .table_for::<Doc>(&table)
    .build()
    .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Doc>().await.unwrap();
    for id in ["x", "y"] {
        store
            .create_large(&Doc {
                id: id.into(),
                title: id.into(),
                body: None,
                thumb: None,
            })
            .await
            .unwrap();
    }
    let out = expect(&url, &["--table", &table, "--bucket", &bucket, "verify"], 0).await;
    let last = out.trim_end().lines().last().unwrap();
    assert!(last.starts_with("NOTHING CHECKED"), "{out}");
    assert!(out.contains("2 items, 0 pointers checked"), "{out}");
    let report: Value = serde_json::from_str(
        &expect(
            &url,
            &[
                "--table", &table, "--bucket", &bucket, "verify", "--output", "json",
            ],
            0,
        )
        .await,
    )
    .unwrap();
    assert_eq!(report["nothing_checked"], true, "{report}");
}

#[tokio::test]
async fn a_stopped_endpoint_and_missing_credentials_read_as_one_line() {
    // A port nothing listens on: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    let base = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", empty),
        ("AWS_SHARED_CREDENTIALS_FILE", empty),
        ("VHS_TABLE", "docs"),
        ("VHS_BUCKET", "bkt"),
    ];
    let with_keys = [
        &base[..],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("VHS_ENDPOINT_URL", closed.as_str()),
        ],
    ]
    .concat();
    let (code, out, err) = vhs_env(&["ls"], &with_keys).await;
    assert_eq!(code, Some(4), "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    let no_keys = [&base[..], &[("VHS_ENDPOINT_URL", closed.as_str())]].concat();
    let (code, out, err) = vhs_env(&["verify"], &no_keys).await;
    assert_eq!(code, Some(4), "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.to_lowercase().contains("credentials"), "{err}");
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn head(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// `vhs watch --output json`: one line per user write, bookkeeping left out,
/// resumed from its checkpoint file without printing a change twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_json_line_per_change_and_resumes() {
    use vhs::BackendExt as _;
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket) = (unique("watch"), unique("wbkt"));
    let store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &bucket,
    )
    .table_for::<Doc>(&table)
    .build()
    .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Doc>().await.unwrap();
    let mut spec = store
        .backend()
        .describe_table(&table)
        .await
        .unwrap()
        .unwrap();
    spec.streams = true;
    store.ensure_table_spec(&spec).await.unwrap();
    let doc = |id: &str, body: &str| Doc {
        id: id.into(),
        title: format!("title of {id}"),
        body: Some(Bytes::from(body.to_owned())),
        thumb: None,
    };
    store.create_large(&doc("doc-1", "v1")).await.unwrap();
    store
        .update_large(
            &Doc::key("doc-1"),
            Doc::changes().set_body(Some(Bytes::from_static(b"v2"))),
        )
        .await
        .unwrap();
    store.delete_large(&Doc::key("doc-1")).await.unwrap();
    store.flush().await;

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("watch.json");
    let checkpoint = checkpoint.to_str().unwrap();
    let t = ["--table", table.as_str(), "--bucket", bucket.as_str()];
    let watch = |extra: &[&str]| -> Vec<String> {
        t.iter()
            .chain(&["watch", "--output", "json", "--until-idle"])
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let lines = |out: String| -> Vec<Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let first = lines(
        expect(
            &url,
            &args(&watch(&[
                "--from",
                "trim-horizon",
                "--checkpoint",
                checkpoint,
            ])),
            0,
        )
        .await,
    );
    let kinds: Vec<(&str, &str)> = first
        .iter()
        .map(|l| (l["kind"].as_str().unwrap(), l["key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("inserted", "doc-1"),
            ("modified", "doc-1"),
            ("removed", "doc-1")
        ],
        "{first:?}"
    );
    let body = |l: &Value, image: &str| l[image]["body"].as_str().unwrap_or_default().to_owned();
    assert!(body(&first[0], "new").starts_with("s3://"), "{}", first[0]);
    assert_eq!(first[0]["old"], Value::Null);
    assert_eq!(
        first[1]["changed"],
        serde_json::json!(["body"]),
        "{}",
        first[1]
    );
    assert_eq!(body(&first[1], "old"), body(&first[0], "new"));
    assert_ne!(body(&first[1], "new"), body(&first[1], "old"));
    assert_eq!(first[2]["by_ttl"], false);
    assert_eq!(first[2]["new"], Value::Null);
    assert!(first.iter().all(|l| l["new"].get("vhs:tok").is_none()));

    // Resumed from the checkpoint: nothing twice, the next write once.
    let again = expect(&url, &args(&watch(&["--checkpoint", checkpoint])), 0).await;
    assert_eq!(again, "", "printed again");
    store.create_large(&doc("doc-2", "v1")).await.unwrap();
    let next = lines(expect(&url, &args(&watch(&["--checkpoint", checkpoint])), 0).await);
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(
        (next[0]["kind"].as_str(), next[0]["key"].as_str()),
        (Some("inserted"), Some("doc-2"))
    );

    // --max stops inside a batch; text output is one line per change; the
    // next run with the checkpoint goes on from the last change printed.
    let second = dir.path().join("max.json");
    let second = second.to_str().unwrap();
    let text_watch = |extra: &[&str]| -> Vec<String> {
        t.iter()
            .chain(&["watch", "--until-idle", "--checkpoint", second])
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let text = expect(
        &url,
        &args(&text_watch(&["--from", "trim-horizon", "--max", "2"])),
        0,
    )
    .await;
    let text: Vec<&str> = text.lines().collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0].starts_with("inserted doc-1") && text[0].contains("body=s3://"),
        "{text:?}"
    );
    assert!(text[1].starts_with("modified doc-1"), "{text:?}");
    let rest = expect(&url, &args(&text_watch(&[])), 0).await;
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(rest[0].starts_with("removed  doc-1"), "{rest:?}");
    assert!(rest[1].starts_with("inserted doc-2"), "{rest:?}");
}

/// Every object key under `prefix` in `bucket`.
async fn keys_under(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .filter(|k| !k.ends_with("vhs-protocol.json"))
        .collect();
    keys.sort();
    keys
}

/// `provision --backup-consistent`, then a table restored (the emulator's
/// RestoreTableToPointInTime copies the items as they are, so it is taken
/// before the updates and deletes), then `restore-check` on it: every
/// object deleted since comes back, once; on an unversioned bucket it says so
/// and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_check_brings_back_the_objects_of_a_restored_table() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let s3 = s3(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);

    // Too short a noncurrent expiry: refused before anything is created.
    let (table, refused_bucket) = (unique("src"), unique("refusedbkt"));
    let out = vhs(
        &url,
        &[
            "--table",
            &table,
            "--bucket",
            &refused_bucket,
            "provision",
            "--hash-key",
            "id:S",
            "--backup-consistent",
            "--noncurrent-expiry",
            "30",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("at least 35"),
        "{}",
        text(&out.stderr)
    );
    assert!(s3
        .head_bucket()
        .bucket(&refused_bucket)
        .send()
        .await
        .is_err());

    for (versioned, code) in [(true, 0), (false, 1)] {
        let (table, bucket) = (unique("src"), unique("srcbkt"));
        let common = ["--table", table.as_str(), "--bucket", bucket.as_str()];
        let mut provision = common.to_vec();
        provision.extend(["provision", "--hash-key", "id:S"]);
        if versioned {
            provision.push("--backup-consistent");
            let mut dry = provision.clone();
            dry.push("--dry-run");
            let plan = expect(&url, &dry, 0).await;
            assert!(
                plan.contains("versioning enabled")
                    && plan.contains("expired after 35 days")
                    && plan.contains("point-in-time recovery"),
                "{plan}"
            );
        }
        expect(&url, &provision, 0).await;
        // Idempotent.
        expect(&url, &provision, 0).await;
        let status = s3
            .get_bucket_versioning()
            .bucket(&bucket)
            .send()
            .await
            .map(|o| o.status().map(|s| s.as_str().to_owned()));
        if emulator::emulator_name() == "ministack" {
            assert_eq!(
                status.unwrap().as_deref(),
                versioned.then_some("Enabled"),
                "{bucket}"
            );
        }

        let store = Store::builder(
            AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
            &bucket,
        )
        .table_for::<Doc>(&table)
        .build()
        .unwrap();
        let doc = |id: &str, v: u8| Doc {
            id: id.into(),
            title: id.into(),
            body: Some(Bytes::from(vec![v; 100 + id.len()])),
            thumb: Some(Bytes::from(format!("thumb {id} {v}"))),
        };
        for id in ["a", "b", "c"] {
            store.create_large(&doc(id, 1)).await.unwrap();
        }
        let before = keys_under(&s3, &bucket, &format!("{table}/")).await;
        assert_eq!(before.len(), 6);
        let restored = format!("{table}-restored");
        ddb.restore_table_to_point_in_time()
            .source_table_name(&table)
            .target_table_name(&restored)
            .use_latest_restorable_time(true)
            .send()
            .await
            .expect("RestoreTableToPointInTime");
        store
            .update_large(&Doc::key("a"), Doc::changes().set_body(doc("a", 2).body))
            .await
            .unwrap();
        store.delete_large(&Doc::key("b")).await.unwrap();
        store.flush().await;
        let after = keys_under(&s3, &bucket, &format!("{table}/")).await;
        let deleted: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
        assert_eq!(deleted.len(), 3, "{deleted:?}");

        let on_restored = ["--table", restored.as_str(), "--bucket", bucket.as_str()];
        let with = |more: &[&'static str]| -> Vec<&str> {
            on_restored
                .iter()
                .copied()
                .chain(more.iter().copied())
                .collect()
        };
        if !versioned {
            let out = expect(&url, &with(&["restore-check"]), code).await;
            assert!(
                out.contains(&format!("bucket {bucket} is not versioned")),
                "{out}"
            );
            assert!(
                out.contains("0 restored from versions, 3 not restorable"),
                "{out}"
            );
            assert!(
                out.trim_end()
                    .ends_with("INCOMPLETE: some pointers still dangle"),
                "{out}"
            );
            let report: Value = serde_json::from_str(
                &expect(&url, &with(&["restore-check", "--output", "json"]), code).await,
            )
            .unwrap();
            assert_eq!(report["bucket_versioning"], "unversioned", "{report}");
            assert_eq!(report["restored_count"], 0, "{report}");
            assert_eq!(report["not_restored_count"], 3, "{report}");
            assert_eq!(keys_under(&s3, &bucket, &format!("{table}/")).await, after);
            continue;
        }
        // The restored table's pointers are under the source's prefix: the
        // command infers it. A dry run restores nothing.
        let dry = expect(&url, &with(&["restore-check", "--dry-run"]), 0).await;
        assert_eq!(dry.matches("WOULD RESTORE").count(), 3, "{dry}");
        assert!(
            dry.contains("3 restorable from versions, 0 not restorable"),
            "{dry}"
        );
        assert_eq!(keys_under(&s3, &bucket, &format!("{table}/")).await, after);
        expect(&url, &with(&["verify"]), 1).await;

        let report = json(&url, &with(&["restore-check"])).await;
        assert_eq!(report["complete"], true, "{report}");
        assert_eq!(report["bucket_versioning"], "enabled", "{report}");
        assert_eq!(
            (report["items"].as_u64(), report["pointers"].as_u64()),
            (Some(3), Some(6))
        );
        assert_eq!(report["present"], 3, "{report}");
        assert_eq!(report["restored_count"], 3, "{report}");
        let mut keys: Vec<&str> = report["restored"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["object_key"].as_str().unwrap())
            .collect();
        keys.sort();
        assert_eq!(keys, deleted.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        // The restore point's objects and the source's new one.
        let mut both: Vec<String> = before.iter().chain(&after).cloned().collect();
        both.sort();
        both.dedup();
        assert_eq!(keys_under(&s3, &bucket, &format!("{table}/")).await, both);
        let verified = expect(&url, &with(&["verify"]), 0).await;
        assert!(verified.trim_end().ends_with("OK"), "{verified}");
        let again = expect(&url, &with(&["restore-check"]), 0).await;
        assert!(
            again.contains("6 present, 0 restored from versions"),
            "{again}"
        );
        assert!(again.trim_end().ends_with("OK"), "{again}");
    }
}

/// A model with a time to live: the CLI learns the attribute from the table.
#[derive(Model, Debug, Clone, PartialEq)]
#[vhs(table = "cli_sessions")]
struct Sess {
    #[vhs(hash_key)]
    id: String,
    #[vhs(ttl)]
    expires: Option<u64>,
    #[large]
    body: Option<Bytes>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_ls_treat_expired_items_as_absent() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket) = (unique("sess"), unique("bkt"));
    let common = |more: &[&str]| -> Vec<String> {
        ["--table", &table, "--bucket", &bucket, "--prefix", "vhs"]
            .iter()
            .chain(more)
            .map(|s| s.to_string())
            .collect()
    };
    // The plan and the template show the time to live.
    let plan = expect(
        &url,
        &args(&common(&[
            "provision",
            "--hash-key",
            "id:S",
            "--ttl",
            "--dry-run",
        ])),
        0,
    )
    .await;
    assert!(plan.contains("time to live on vhs:ttl"), "{plan}");
    let template = json(
        &url,
        &args(&common(&[
            "provision",
            "--hash-key",
            "id:S",
            "--ttl",
            "--format",
            "cloudformation",
        ])),
    )
    .await;
    assert_eq!(
        template["Resources"]["Table"]["Properties"]["TimeToLiveSpecification"],
        serde_json::json!({"AttributeName": "vhs:ttl", "Enabled": true}),
        "{template}"
    );
    let store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &bucket,
    )
    .prefix("vhs")
    .table_for::<Sess>(&table)
    .build()
    .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Sess>().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (id, expires) in [("live", now + 3600), ("expired", now - 60)] {
        store
            .create_large(&Sess {
                id: id.into(),
                expires: Some(expires),
                body: Some(Bytes::from(id.repeat(100))),
            })
            .await
            .unwrap();
    }
    // get: the live one with its expiry (RFC 3339), the expired one not found.
    let got = json(&url, &args(&common(&["get", "live"]))).await;
    let at = rfc3339(now + 3600);
    assert_eq!(got[0]["expires_at"], serde_json::json!(at), "{got}");
    let out = vhs(&url, &args(&common(&["get", "expired"]))).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    // ls: hidden.
    let listed = json(&url, &args(&common(&["ls"]))).await;
    let keys: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["live"], "{listed}");
    assert_eq!(listed["items"][0]["expires_at"], serde_json::json!(at));
}

/// Epoch seconds as RFC 3339 UTC text (`2026-12-05T04:00:00Z`): the civil
/// date from the day count (Howard Hinnant's algorithm).
fn rfc3339(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_verify_by_shard_add_up_and_keep_a_checkpoint() {
    let url = emulator::endpoint().await;
    let config = emulator::sdk_config().await;
    let (table, bucket) = (unique("shards"), unique("shardbkt"));
    let store = Store::builder(
        AwsBackend::with_options(&config, AwsOptions::emulator(&url)),
        &bucket,
    )
    .table_for::<Doc>(&table)
    .build()
    .unwrap();
    store.ensure_bucket().await.unwrap();
    store.ensure_table::<Doc>().await.unwrap();
    for id in ["a", "%b", "/c", "~d", "é", "9"] {
        store
            .create_large(&Doc {
                id: id.into(),
                title: id.into(),
                body: Some(Bytes::from(format!("body {id}"))),
                thumb: None,
            })
            .await
            .unwrap();
    }
    // Two orphans beside the live objects, in the same layout.
    let s3 = s3(&config);
    let live = keys_under(&s3, &bucket, "").await;
    let some = live.iter().find(|k| k.contains("/attr=body/")).unwrap();
    let prefix = &some[..some.find("pk=").unwrap()];
    let mut orphans = Vec::new();
    for id in ["orphan-1", "zz-orphan"] {
        let body = format!("orphan {id}");
        let key = format!(
            "{prefix}pk={id}/attr=body/md5={}",
            hex(&Md5::digest(body.as_bytes()))
        );
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
        orphans.push(key);
    }
    orphans.sort();
    let t = ["--table", table.as_str(), "--bucket", bucket.as_str()];
    fn with<'a>(t: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
        [t, rest].concat()
    }

    // Verify by shard: the two shards' counts add up to one run's.
    let whole = json(&url, &with(&t, &["verify"])).await;
    let (mut items, mut pointers, mut found) = (0, 0, 0);
    for shard in ["0/2", "1/2"] {
        let part = json(&url, &with(&t, &["verify", "--shard", shard])).await;
        assert_eq!(part["clean"], true, "{part}");
        items += part["items"].as_u64().unwrap();
        pointers += part["pointers"].as_u64().unwrap();
        found += part["orphans"].as_u64().unwrap();
    }
    assert_eq!((items, pointers, found), (6, 6, 2), "{whole}");
    assert_eq!(whole["orphans"], 2, "{whole}");

    // Bad shards and a checkpoint without one are usage errors (exit 2).
    for bad in [
        &["--shard", "2/2"][..],
        &["--shard", "1"],
        &["--resume-from", "k"],
    ] {
        let out = vhs(&url, &with(&t, &[&["gc"][..], bad].concat())).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }

    // A checkpoint past every key: the shard resumes there and deletes nothing;
    // the file goes once the shard is done.
    let dir = std::env::temp_dir().join(unique("checkpoint"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shard-0-of-1");
    std::fs::write(&file, "\u{10ffff}\n").unwrap();
    let path = file.to_str().unwrap();
    let gc = &["gc", "--grace", "0s", "--shard"];
    let resumed = json(
        &url,
        &with(&t, &[gc, &["0/1", "--checkpoint", path][..]].concat()),
    )
    .await;
    assert_eq!(
        resumed["deleted"].as_array().map(Vec::len),
        Some(0),
        "{resumed}"
    );
    assert!(
        !file.exists(),
        "the checkpoint stays after the shard finished"
    );

    // GC by shard, each with its checkpoint file: each orphan deleted once.
    let mut deleted = Vec::new();
    for shard in ["0/2", "1/2"] {
        let part = json(
            &url,
            &with(&t, &[gc, &[shard, "--checkpoint", path][..]].concat()),
        )
        .await;
        assert_eq!(part["failed"].as_array().map(Vec::len), Some(0), "{part}");
        for key in part["deleted"].as_array().unwrap() {
            deleted.push(key.as_str().unwrap().to_owned());
        }
        assert!(!file.exists());
    }
    deleted.sort();
    assert_eq!(deleted, orphans);
    assert_eq!(keys_under(&s3, &bucket, "").await, live);
    let after = json(&url, &with(&t, &["verify"])).await;
    assert_eq!(
        (&after["clean"], &after["orphans"]),
        (&Value::Bool(true), &Value::from(0))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
