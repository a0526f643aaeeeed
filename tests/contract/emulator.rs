//! The local DynamoDB + S3 emulator that the contract tests run against.
//!
//! One server per test process, started on first use and shared by every test in it.
//!
//! - `VHS_TEST_ENDPOINT=http://host:port`: use that server as it is; nothing is started.
//! - `VHS_TEST_EMULATOR=ministack` (the default) or `moto`: install that emulator (pinned
//!   version, with pip into a virtualenv under `target/tmp/vhs-emulators/`, once, guarded by a
//!   file lock across processes) and start it on a free port of 127.0.0.1. Anything else panics.
//!
//! moto runs as `moto_serial.py`: moto's own server with each request applied under a lock,
//! because moto 5.2.5 checks a write's condition and applies it without one (two concurrent
//! conditional writes can both pass), while DynamoDB applies each atomically.
//!
//! The server runs under `watchdog.py`, whose standard input is a pipe this process keeps open
//! until it exits: when the test binary ends in any way (done, panicked, killed), the pipe
//! closes and the watchdog stops the server. Logs go to `target/tmp/vhs-emulators/logs/`; the
//! server's scratch files go to `target/tmp/vhs-emulators/state/<name>-<port>-<pid>/`, which
//! the watchdog removes afterwards. Data itself is kept in memory.
//!
//! Python 3 with `venv` and `pip` is required for the local emulators; without it the tests
//! that need a server fail with a message saying so (they are never skipped).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Pinned emulator versions: change them here (the virtualenv directory is named after them,
/// so a new version is installed beside the old one).
const MINISTACK_VERSION: &str = "1.5.33";
const MOTO_VERSION: &str = "5.2.5";
/// DuckDB, installed beside ministack: its Athena runs SQL with it (without
/// it, a mock that answers every SELECT with one made-up row).
const DUCKDB_VERSION: &str = "2.0.1";

/// How long a started server has to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts (a new port each time) when the server exits right away, e.g. because
/// another process took the port between our probe and its bind.
const START_ATTEMPTS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ministack,
    Moto,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ministack => "ministack",
            Kind::Moto => "moto",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Kind::Ministack => MINISTACK_VERSION,
            Kind::Moto => MOTO_VERSION,
        }
    }

    fn pip_requirements(self) -> Vec<String> {
        match self {
            Kind::Ministack => vec![
                format!("ministack=={MINISTACK_VERSION}"),
                format!("duckdb=={DUCKDB_VERSION}"),
            ],
            Kind::Moto => vec![format!("moto[server]=={MOTO_VERSION}")],
        }
    }

    /// The console script pip installs into the virtualenv's `bin/`.
    fn executable(self) -> &'static str {
        match self {
            Kind::Ministack => "ministack",
            Kind::Moto => "moto_server",
        }
    }

    /// A path that answers 200 once the server is up.
    fn health_path(self) -> &'static str {
        match self {
            Kind::Ministack => "/_ministack/health",
            Kind::Moto => "/moto-api/",
        }
    }
}

enum Choice {
    External(String),
    Local(Kind),
}

fn choice() -> Choice {
    if let Some(url) = std::env::var_os("VHS_TEST_ENDPOINT") {
        let url = url
            .into_string()
            .unwrap_or_else(|bad| panic!("VHS_TEST_ENDPOINT is not valid UTF-8: {bad:?}"));
        let url = url.trim().trim_end_matches('/');
        if !url.is_empty() {
            return Choice::External(url.to_owned());
        }
    }
    match std::env::var("VHS_TEST_EMULATOR").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("") | Ok("ministack") => {
            Choice::Local(Kind::Ministack)
        }
        Ok("moto") => Choice::Local(Kind::Moto),
        Ok(other) => panic!(
            "VHS_TEST_EMULATOR={other:?} is not supported: use `ministack` (the default) or \
             `moto`, or set VHS_TEST_ENDPOINT=http://host:port to use a server you started"
        ),
        Err(err) => panic!("VHS_TEST_EMULATOR: {err}"),
    }
}

/// Which server the tests of this process run against: `"ministack"`, `"moto"` or
/// `"external"` (`VHS_TEST_ENDPOINT`). Starts nothing.
pub fn emulator_name() -> &'static str {
    match choice() {
        Choice::External(_) => "external",
        Choice::Local(kind) => kind.name(),
    }
}

/// The running server of this process. Lives in a static that is never dropped: the
/// watchdog's stdin must stay open until the process exits.
struct Running {
    url: String,
    _watchdog: Option<(Child, ChildStdin)>,
}

/// Success or the failure message, so that after one failed start every other test fails
/// at once with the same message instead of trying (and waiting) again.
static EMULATOR: OnceLock<Result<Running, String>> = OnceLock::new();

/// Base URL (`http://127.0.0.1:PORT`) of this process's emulator, started on first use.
///
/// Blocking: callable from any thread, with or without a tokio runtime. Concurrent first
/// calls wait for the one that starts the server. Panics if it cannot be started.
pub fn endpoint_blocking() -> String {
    let state = EMULATOR.get_or_init(|| {
        std::panic::catch_unwind(start).unwrap_or_else(|panic| {
            Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "starting the emulator panicked".to_owned()))
        })
    });
    match state {
        Ok(running) => running.url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Base URL (`http://127.0.0.1:PORT`) of this process's emulator, started on first use.
///
/// Safe to call from many `#[tokio::test]`s at once, each on its own runtime: the server is
/// started exactly once per process, by blocking std code that holds no runtime resource.
pub async fn endpoint() -> String {
    if let Some(Ok(running)) = EMULATOR.get() {
        return running.url.clone();
    }
    match tokio::task::spawn_blocking(endpoint_blocking).await {
        Ok(url) => url,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("starting the emulator was cancelled: {err}"),
    }
}

/// SDK configuration for this process's emulator: test credentials, `us-east-1`, and the
/// emulator's endpoint.
///
/// S3 clients built from it also need `force_path_style(true)` (the emulators serve buckets
/// as paths, not as `bucket.host` names): `aws_sdk_s3::config::Builder::from(&config)
/// .force_path_style(true).build()`. The library's `AwsBackend` does that itself.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_for(&endpoint().await).await
}

/// [`sdk_config`] for a server at `url` (this process's emulator behind a proxy, say).
pub async fn sdk_config_for(url: &str) -> aws_config::SdkConfig {
    // ministack's root key: presigned URLs are verified even without AUTH,
    // and only against the keys it knows.
    let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "vhs-tests");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(credentials)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .load()
        .await
}

fn start() -> Result<Running, String> {
    match choice() {
        Choice::External(url) => Ok(Running {
            url,
            _watchdog: None,
        }),
        Choice::Local(kind) => start_local(kind),
    }
}

fn work_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("vhs-emulators")
}

/// A file of this harness directory (`tests/contract/` of the workspace root),
/// whichever crate of the workspace includes this module (`vhs-cli`'s tests do).
fn harness_file(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = manifest.join("tests/contract").join(name);
    if here.exists() {
        return here;
    }
    manifest.join("../tests/contract").join(name)
}

fn watchdog_script() -> PathBuf {
    harness_file("watchdog.py")
}

/// moto_server with a lock around each request: moto applies a conditional write without
/// one, so two concurrent writes can both pass their conditions (measured in the script).
fn moto_serial_script() -> PathBuf {
    harness_file("moto_serial.py")
}

fn io_err(what: impl std::fmt::Display, err: std::io::Error) -> String {
    format!("vhs test emulator: {what}: {err}")
}

fn start_local(kind: Kind) -> Result<Running, String> {
    let venv = ensure_installed(kind)?;
    let root = work_root();
    let logs = root.join("logs");
    fs::create_dir_all(&logs).map_err(|e| io_err(format_args!("create {}", logs.display()), e))?;
    let python = venv.join("bin/python");
    let server = venv.join("bin").join(kind.executable());
    let watchdog = watchdog_script();
    if !watchdog.is_file() {
        return Err(format!(
            "vhs test emulator: {} is missing",
            watchdog.display()
        ));
    }

    prune(&root);

    let mut failures = Vec::new();
    for attempt in 1..=START_ATTEMPTS {
        let port = free_port()?;
        let tag = format!("{}-{}-{}", kind.name(), port, std::process::id());
        let log_path = logs.join(format!("{tag}.log"));
        let state = root.join("state").join(&tag);
        fs::create_dir_all(&state)
            .map_err(|e| io_err(format_args!("create {}", state.display()), e))?;
        let log = File::create(&log_path)
            .map_err(|e| io_err(format_args!("create {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| io_err("duplicate log file handle", e))?;

        let mut cmd = Command::new(&python);
        cmd.arg(&watchdog).arg("--cleanup").arg(&state).arg("--");
        if kind == Kind::Ministack {
            cmd.arg(&server);
        }
        cmd.current_dir(&state)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("TMPDIR", &state);
        match kind {
            Kind::Ministack => {
                cmd.env("GATEWAY_PORT", port.to_string())
                    .env("BIND_HOST", "127.0.0.1")
                    .env("SERVICES", "s3,dynamodb,dynamodbstreams,athena,glue")
                    // In memory only; the paths keep whatever it might write under target/.
                    .env("PERSIST_STATE", "0")
                    .env("S3_PERSIST", "0")
                    .env_remove("LOCALSTACK_PERSISTENCE")
                    .env("STATE_DIR", state.join("state"))
                    .env("S3_DATA_DIR", state.join("s3"))
                    // Off: the IoT MQTT listener binds 0.0.0.0:8883 when `cryptography` is
                    // importable, and neither listener is needed here.
                    .env("IOT_MTLS_ENABLED", "0")
                    .env("SFTP_ENABLED", "0");
            }
            Kind::Moto => {
                // moto's own server and arguments, one request at a time (see the script).
                cmd.arg(venv.join("bin/python"))
                    .arg(moto_serial_script())
                    .arg("-H")
                    .arg("127.0.0.1")
                    .arg("-p")
                    .arg(port.to_string());
            }
        }

        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            io_err(
                format_args!("start {} {}", python.display(), watchdog.display()),
                e,
            )
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");

        match wait_ready(kind, port, &mut child) {
            Ok(()) => {
                note(format!(
                    "vhs tests: {} {} ready at http://127.0.0.1:{port} in {:.2} s (log: {})",
                    kind.name(),
                    kind.version(),
                    started.elapsed().as_secs_f64(),
                    log_path.display()
                ));
                return Ok(Running {
                    url: format!("http://127.0.0.1:{port}"),
                    _watchdog: Some((child, stdin)),
                });
            }
            Err(Failure::Exited(status)) => {
                drop(stdin);
                failures.push(format!(
                    "attempt {attempt}: the server exited before it was ready ({status}); \
                     log {}:\n{}",
                    log_path.display(),
                    log_tail(&log_path)
                ));
                // Most likely the port was taken under our feet: try another one.
            }
            Err(Failure::Timeout(last_error)) => {
                // Closing the pipe makes the watchdog stop the server.
                drop(stdin);
                let _ = wait_with_timeout(&mut child, Duration::from_secs(8));
                failures.push(format!(
                    "attempt {attempt}: no answer from GET http://127.0.0.1:{port}{} within \
                     {} s (last error: {last_error}); log {}:\n{}",
                    kind.health_path(),
                    READY_TIMEOUT.as_secs(),
                    log_path.display(),
                    log_tail(&log_path)
                ));
                break;
            }
        }
    }
    Err(format!(
        "vhs test emulator: could not start {} {}:\n{}",
        kind.name(),
        kind.version(),
        failures.join("\n")
    ))
}

/// Housekeeping: scratch directories of test processes that are gone (their watchdog was
/// killed too, so it could not remove them), and all but the newest logs.
fn prune(root: &Path) {
    const KEEP_LOGS: usize = 50;
    if let Ok(entries) = fs::read_dir(root.join("state")) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.rsplit('-').next());
            let alive = match pid {
                Some(pid) => Path::new("/proc").join(pid).exists(),
                None => true,
            };
            if !alive && Path::new("/proc/self").exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    if let Ok(entries) = fs::read_dir(root.join("logs")) {
        let mut logs: Vec<_> = entries
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if logs.len() > KEEP_LOGS {
            logs.sort();
            for (_, path) in &logs[..logs.len() - KEEP_LOGS] {
                let _ = fs::remove_file(path);
            }
        }
    }
}

enum Failure {
    Exited(std::process::ExitStatus),
    Timeout(String),
}

fn wait_ready(kind: Kind, port: u16, watchdog: &mut Child) -> Result<(), Failure> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = watchdog.try_wait() {
            return Err(Failure::Exited(status));
        }
        let last_error = match probe(port, kind.health_path()) {
            Ok(200) => {
                // Answered: make sure it is our server and not one that got the port first.
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(Some(status)) = watchdog.try_wait() {
                    return Err(Failure::Exited(status));
                }
                return Ok(());
            }
            Ok(status) => format!("HTTP status {status}"),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(Failure::Timeout(last_error));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One blocking `GET path` on 127.0.0.1:port; returns the HTTP status code.
fn probe(port: u16, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[..len])
        .ok()
        .and_then(|text| text.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not an HTTP response: {:?}",
                    String::from_utf8_lossy(&head[..len])
                ),
            )
        })
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| io_err("bind 127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| io_err("read the port of 127.0.0.1:0", e))
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A line on the real stderr, past libtest's output capture (which only takes `eprint!`):
/// a test run shows once which server it used, and how long it took to start.
fn note(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn log_tail(path: &Path) -> String {
    const MAX: usize = 6000;
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(MAX);
            let text = String::from_utf8_lossy(&bytes[start..]);
            let prefix = if start > 0 { "[...]\n" } else { "" };
            format!("{prefix}{text}")
        }
        Err(err) => format!("(cannot read the log: {err})"),
    }
}

/// The virtualenv holding `kind`, installed first if needed. The marker file is written only
/// after a successful install, so an interrupted install is redone; the lock file keeps two
/// test processes from installing at the same time.
fn ensure_installed(kind: Kind) -> Result<PathBuf, String> {
    python_env(
        &format!("{}-{}", kind.name(), kind.version()),
        &kind
            .pip_requirements()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        kind.executable(),
    )
}

/// A virtualenv `target/tmp/vhs-emulators/<name>/` with `requirements` pip-installed, made
/// once (guarded by a file lock across processes) and reused while its marker file lists the
/// same requirements and `bin/<executable>` exists. Returns its directory.
///
/// The emulators are installed this way; so are other Python tools the harness needs (the
/// benchmark's peer library).
pub fn python_env(name: &str, requirements: &[&str], executable: &str) -> Result<PathBuf, String> {
    let root = work_root();
    let venv = root.join(name);
    let wanted = requirements.join("\n");
    if installed(&venv, &wanted, executable) {
        return Ok(venv);
    }

    fs::create_dir_all(&root).map_err(|e| io_err(format_args!("create {}", root.display()), e))?;
    let lock_path = root.join(format!("{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_err(format_args!("open {}", lock_path.display()), e))?;
    // Released when `lock` is dropped at the end of this function, or when the process dies.
    // `File::lock` needs Rust 1.89; only the test harness uses it, not the library (MSRV 1.85).
    #[allow(clippy::incompatible_msrv)]
    lock.lock()
        .map_err(|e| io_err(format_args!("lock {}", lock_path.display()), e))?;
    if installed(&venv, &wanted, executable) {
        return Ok(venv); // another process installed it while we waited
    }

    let python = find_python()?;
    let listed = requirements.join(" ");
    note(format!(
        "vhs tests: installing {listed} into {} (once; needs PyPI)",
        venv.display()
    ));
    let started = Instant::now();
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .map_err(|e| io_err(format_args!("remove the incomplete {}", venv.display()), e))?;
    }
    run(
        Command::new(python).arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
        "server-backed tests need Python 3 with the venv module (Debian/Ubuntu: apt-get install \
         python3-venv)",
    )?;
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(requirements),
        &format!("pip install {listed}"),
        "server-backed tests need pip and access to PyPI the first time (or a pip cache)",
    )?;
    let installed_executable = venv.join("bin").join(executable);
    if !installed_executable.is_file() {
        return Err(format!(
            "vhs test emulator: pip installed {listed} but {} does not exist",
            installed_executable.display()
        ));
    }
    let marker = venv.join(".vhs-installed");
    fs::write(&marker, format!("{wanted}\n"))
        .map_err(|e| io_err(format_args!("write {}", marker.display()), e))?;
    note(format!(
        "vhs tests: installed {listed} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    drop(lock);
    Ok(venv)
}

fn installed(venv: &Path, requirements: &str, executable: &str) -> bool {
    let marker_ok = fs::read_to_string(venv.join(".vhs-installed"))
        .map(|text| text.trim() == requirements)
        .unwrap_or(false);
    // `bin/python` is a symlink to the interpreter the venv was made from: if that one went
    // away (Python upgraded), reinstall.
    marker_ok && venv.join("bin/python").exists() && venv.join("bin").join(executable).is_file()
}

fn find_python() -> Result<&'static str, String> {
    const PYTHON: &str = "python3";
    match Command::new(PYTHON).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(PYTHON),
        Ok(out) => Err(format!(
            "vhs test emulator: `{PYTHON} --version` failed ({}): {}{}\nserver-backed tests need \
             Python 3 with venv+pip; install python3 (Debian/Ubuntu: apt-get install python3 \
             python3-venv python3-pip), or point VHS_TEST_ENDPOINT at a running server",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(err) => Err(format!(
            "vhs test emulator: cannot run `{PYTHON}`: {err}\nserver-backed tests need Python 3 \
             with venv+pip; install python3 (Debian/Ubuntu: apt-get install python3 python3-venv \
             python3-pip), or point VHS_TEST_ENDPOINT at a running server"
        )),
    }
}

fn run(cmd: &mut Command, what: &str, hint: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_err(format_args!("run {what}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "vhs test emulator: {what} failed ({}):\n{}{}\n{hint}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The emulator serves what the library needs: a DynamoDB table and an S3 bucket, each
/// written and read back through the plain SDK clients.
#[tokio::test]
async fn emulator_smoke() {
    use aws_sdk_dynamodb::types::AttributeValue;

    let config = sdk_config().await;
    assert!(
        ["ministack", "moto", "external"].contains(&emulator_name()),
        "{}",
        emulator_name()
    );
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );

    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("vhs-smoke-{unique}");
    create_table(&ddb, &table).await;
    ddb.put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("a".into()))
        .item("n", AttributeValue::N("42".into()))
        .send()
        .await
        .expect("PutItem");
    let got = ddb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("a".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let item = got.item().expect("the item just put");
    assert_eq!(item.get("n"), Some(&AttributeValue::N("42".into())));
    ddb.delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("DeleteTable");

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("vhs-smoke-{unique}");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    let body = b"hello, emulator".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key("dir/object one")
        .body(body.clone().into())
        .send()
        .await
        .expect("PutObject");
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key("dir/object one")
        .send()
        .await
        .expect("GetObject");
    let bytes = object
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());
    s3.delete_object()
        .bucket(&bucket)
        .key("dir/object one")
        .send()
        .await
        .expect("DeleteObject");
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("DeleteBucket");
}

/// Concurrent first calls from separate runtimes get the one server of this process.
#[tokio::test]
async fn emulator_endpoint_is_shared() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(endpoint())
            })
        })
        .collect();
    let mine = endpoint().await;
    for thread in threads {
        assert_eq!(thread.join().unwrap(), mine);
    }
    assert_eq!(endpoint_blocking(), mine);
}

/// Creates a pay-per-request table with the string hash key `pk`, for tests that use
/// raw SDK clients.
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateTable");
}
