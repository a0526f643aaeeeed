//! A fault-injecting HTTP proxy on loopback, for running the SDK clients (and the store)
//! against an emulator over a network that misbehaves.
//!
//! [`ChaosProxy::start`] binds `127.0.0.1:0` and forwards to one upstream address (the local
//! emulator); it never connects anywhere else. It speaks just enough HTTP/1.1 for the AWS SDK:
//!
//! - **One request per connection.** Every forwarded request head is rewritten to carry
//!   `Connection: close` (replacing any `Connection`, `Keep-Alive` or `Proxy-Connection`
//!   header), and so is every forwarded response head, so neither the upstream nor the client
//!   (hyper) reuses a connection. The fault decision is made per connection, which is then
//!   per request.
//! - **Seeded decisions.** Each accepted connection draws from a small xorshift generator seeded
//!   by [`ChaosConfig::seed`]: with probability [`ChaosConfig::fault_rate`] it gets a fault,
//!   whose kind is drawn uniformly from [`ChaosConfig::kinds`]. The sequence of decisions is
//!   deterministic in accept order (so fully deterministic for a client that sends one
//!   request at a time).
//! - **Request bodies** are framed by `Transfer-Encoding: chunked` (read to the last chunk and
//!   its trailers) or else `Content-Length` (which is also how the SDK frames
//!   `Content-Encoding: aws-chunked` uploads: as opaque bytes of that length); without either,
//!   a request has no body. Response bodies likewise, plus "until EOF" when neither header is
//!   present, and none for `HEAD` requests or 1xx/204/304 responses.
//!
//! Fault kinds ([`FaultKind`]):
//!
//! - `Reset`: waits until the whole request head has arrived, *peeking* at it without reading
//!   it, then closes the client socket. Closing a TCP socket with unread received data makes
//!   the kernel (Linux, and BSDs alike) abort the connection with an RST instead of a FIN; std
//!   has no stable `set_linger`, and this gets the same RST without `libc`/`socket2`. Nothing
//!   is forwarded.
//! - `Http500` / `Http503`: reads the whole request (head and body), does not forward it, and
//!   answers `HTTP/1.1 500 Internal Server Error` / `503 Service Unavailable` with
//!   `Content-Length: 0` and `Connection: close`.
//! - `DropResponse`: forwards the request, reads the upstream's whole response, then closes the
//!   client connection (FIN) without sending any of it: the server applied the request but the
//!   client never learns the outcome.
//!
//! - `CutBody`: forwards the request and relays the response head, then, for an S3 GetObject
//!   (`?x-id=GetObject`) whose body is more than 1 KiB (by `Content-Length`), only the first
//!   half of the body before closing the client connection: a download cut midway. Other
//!   responses are relayed whole.
//!
//! Without a fault the request is forwarded and the response relayed. [`ChaosConfig::latency`]
//! is slept before each request is forwarded (fault-free or `DropResponse`).
//!
//! Set `VHS_CHAOS_TRACE=1` to print each request's start line, body framing and fault.
//!
//! Threads: one accept thread, plus one short-lived thread per connection. Dropping the proxy
//! stops the accept thread (woken by a connection to itself) and joins it, and shuts down every
//! socket still in use so that connection threads exit promptly; they are not joined. Every
//! socket also has read/write timeouts, so no thread can block for long.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::emulator::create_table;

/// Read/write timeout of every socket the proxy uses.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout for connecting to the upstream (and to itself, when stopping).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size or trailer line accepted in a chunked body.
const MAX_LINE: usize = 8 * 1024;

/// What [`ChaosProxy`] does to the traffic it forwards.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// Fraction of connections (= requests) that get a fault, from 0.0 to 1.0.
    pub fault_rate: f64,
    /// Slept before each request is forwarded upstream (zero: none).
    pub latency: Duration,
    /// Seed of the generator that decides which connections get which faults.
    pub seed: u64,
    /// The faults to draw from, uniformly. Empty: no faults whatever the rate.
    pub kinds: Vec<FaultKind>,
}

impl ChaosConfig {
    /// Faults of every kind at `fault_rate`, no latency.
    pub fn new(fault_rate: f64, seed: u64) -> ChaosConfig {
        ChaosConfig {
            fault_rate,
            latency: Duration::ZERO,
            seed,
            kinds: FaultKind::ALL.to_vec(),
        }
    }
}

/// One kind of fault; see the module documentation for exactly what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The connection is aborted (TCP RST) after the request head arrived; nothing forwarded.
    Reset,
    /// `500 Internal Server Error` without forwarding.
    Http500,
    /// `503 Service Unavailable` without forwarding.
    Http503,
    /// Forwarded and applied upstream, but the response never reaches the client.
    DropResponse,
    /// Forwarded; the response to an S3 GetObject whose body has a `Content-Length` above 1 KiB
    /// reaches the client with its head and the first half of its body, then the connection
    /// closes (FIN). Other responses are relayed whole. Not in [`FaultKind::ALL`]: only tests
    /// of reads use it.
    CutBody,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Reset,
        FaultKind::Http500,
        FaultKind::Http503,
        FaultKind::DropResponse,
    ];
}

/// Counters of a [`ChaosProxy`] since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChaosStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests whose head arrived (at most one per connection).
    pub requests: u64,
    /// Requests sent on to the upstream: fault-free ones and `DropResponse` ones.
    pub forwarded: u64,
    /// Fault-free requests whose response was relayed to the client in full.
    pub completed: u64,
    /// Faults injected, by kind (counted when the request head has arrived).
    pub faults: HashMap<FaultKind, u64>,
    /// Connections that ended with an I/O or protocol error on the proxy's side (client went
    /// away, upstream unreachable, malformed HTTP, timeout).
    pub errors: u64,
}

impl ChaosStats {
    /// Faults of this kind injected.
    pub fn faults_of(&self, kind: FaultKind) -> u64 {
        self.faults.get(&kind).copied().unwrap_or(0)
    }

    /// Faults of every kind injected.
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// A fault-injecting HTTP/1.1 proxy on `127.0.0.1`; see the module documentation.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    fault_rate_bits: AtomicU64,
    latency: Duration,
    kinds: Vec<FaultKind>,
    rng: Mutex<XorShift>,
    stats: Mutex<ChaosStats>,
    /// Set (under `live`'s lock) when the proxy is dropped.
    stop: AtomicBool,
    /// Sockets of the connections in progress, by connection id, to shut down on drop.
    live: Mutex<HashMap<u64, Vec<TcpStream>>>,
    next_id: AtomicU64,
    /// `VHS_CHAOS_TRACE` set: one line per request on stderr.
    trace: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the proxy down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ChaosProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding to `upstream`.
    pub fn start(upstream: SocketAddr, config: ChaosConfig) -> ChaosProxy {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .expect("chaos proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("chaos proxy: local address");
        let shared = Arc::new(Shared {
            upstream,
            fault_rate_bits: AtomicU64::new(clamp_rate(config.fault_rate).to_bits()),
            latency: config.latency,
            kinds: config.kinds,
            rng: Mutex::new(XorShift::new(config.seed)),
            stats: Mutex::new(ChaosStats::default()),
            stop: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            trace: std::env::var_os("VHS_CHAOS_TRACE").is_some_and(|v| !v.is_empty()),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("chaos-accept-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("chaos proxy: spawn the accept thread")
        };
        ChaosProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, for an SDK client's `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ChaosStats {
        lock(&self.shared.stats).clone()
    }

    /// The statistics once every connection accepted so far has been accounted for
    /// (completed, faulted or failed). A client can have its whole response before
    /// the proxy's thread has counted the connection as completed, so tests that
    /// compare exact counts read these (waiting at most 5 s).
    pub fn settled_stats(&self) -> ChaosStats {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.stats();
            if s.requests == s.completed + s.faults_total() + s.errors || Instant::now() > deadline
            {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Changes the fault rate for connections accepted from now on (clamped to 0..=1).
    pub fn set_fault_rate(&self, rate: f64) {
        self.shared
            .fault_rate_bits
            .store(clamp_rate(rate).to_bits(), Ordering::SeqCst);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        {
            let live = lock(&self.shared.live);
            self.shared.stop.store(true, Ordering::SeqCst);
            for sockets in live.values() {
                for socket in sockets {
                    let _ = socket.shutdown(Shutdown::Both);
                }
            }
        }
        // Wake the blocking accept; it sees `stop` and returns, dropping the listener.
        let woke = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT).is_ok();
        if let Some(accept) = self.accept.take() {
            if woke {
                let _ = accept.join();
            }
            // Otherwise abandon it rather than risk hanging: it is blocked in accept.
        }
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// xorshift64*: small, seeded, good enough to pick faults.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Scramble the seed (splitmix64 step) so that nearby seeds give unrelated sequences;
        // the state must not be zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Shared {
    /// The fault for the next connection. Always draws twice, so the sequence of decisions
    /// depends only on the seed and the rates in force, not on the outcomes.
    fn decide(&self) -> Option<FaultKind> {
        let rate = f64::from_bits(self.fault_rate_bits.load(Ordering::SeqCst));
        let mut rng = lock(&self.rng);
        let roll = rng.next_f64();
        let pick = rng.next_u64();
        if roll < rate && !self.kinds.is_empty() {
            Some(self.kinds[(pick % self.kinds.len() as u64) as usize])
        } else {
            None
        }
    }

    fn count(&self, update: impl FnOnce(&mut ChaosStats)) {
        update(&mut lock(&self.stats));
    }

    /// Registers a socket of connection `id` to be shut down on drop. Fails once stopped.
    fn register(&self, id: u64, socket: &TcpStream) -> io::Result<()> {
        let clone = socket.try_clone()?;
        let mut live = lock(&self.live);
        if self.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("chaos proxy stopped"));
        }
        live.entry(id).or_default().push(clone);
        Ok(())
    }

    fn unregister(&self, id: u64) {
        lock(&self.live).remove(&id);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let client = match incoming {
            Ok(client) => client,
            Err(_) => {
                // E.g. out of file descriptors: don't spin.
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let fault = shared.decide();
        shared.count(|s| s.connections += 1);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("chaos-conn-{id}"))
            .spawn(move || {
                let result = handle(&conn_shared, id, client, fault);
                conn_shared.unregister(id);
                if result.is_err() {
                    conn_shared.count(|s| s.errors += 1);
                }
            });
        if spawned.is_err() {
            shared.count(|s| s.errors += 1);
        }
    }
}

fn configure(socket: &TcpStream) -> io::Result<()> {
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.set_write_timeout(Some(IO_TIMEOUT))
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One connection: at most one request.
fn handle(shared: &Shared, id: u64, client: TcpStream, fault: Option<FaultKind>) -> io::Result<()> {
    configure(&client)?;
    shared.register(id, &client)?;

    if fault == Some(FaultKind::Reset) {
        if !peek_head(&client)? {
            return Ok(()); // closed without a request
        }
        shared.count(|s| {
            s.requests += 1;
            *s.faults.entry(FaultKind::Reset).or_default() += 1;
        });
        // The head is still unread in the receive queue: closing now sends an RST.
        drop(client);
        return Ok(());
    }

    let mut client_out = client.try_clone()?;
    let mut client_in = Reader::new(client);
    let Some(head) = client_in.read_head()? else {
        return Ok(()); // closed without a request
    };
    let method = head
        .split(|&b| b == b' ')
        .next()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    let request_body = body_framing(&head, false)?;
    // The SDK names the operation in the query: `GET /bucket/key?x-id=GetObject`.
    let get_object = {
        let start = head.split(|&b| b == b'\r').next().unwrap_or_default();
        String::from_utf8_lossy(start).contains("x-id=GetObject")
    };
    if shared.trace {
        let start = head.split(|&b| b == b'\r').next().unwrap_or_default();
        eprintln!(
            "chaos proxy: {} {request_body:?} fault {fault:?}",
            String::from_utf8_lossy(start)
        );
    }
    shared.count(|s| {
        s.requests += 1;
        if let Some(kind) = fault {
            *s.faults.entry(kind).or_default() += 1;
        }
    });

    if let Some(status @ (FaultKind::Http500 | FaultKind::Http503)) = fault {
        client_in.copy_body(request_body, &mut io::sink())?;
        let line = if status == FaultKind::Http500 {
            "500 Internal Server Error"
        } else {
            "503 Service Unavailable"
        };
        client_out.write_all(
            format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        client_out.flush()?;
        let _ = client_out.shutdown(Shutdown::Write);
        return Ok(());
    }

    // Fault-free or DropResponse: forward.
    if !shared.latency.is_zero() {
        std::thread::sleep(shared.latency);
    }
    let upstream = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT)?;
    configure(&upstream)?;
    shared.register(id, &upstream)?;
    let mut upstream_out = upstream.try_clone()?;
    upstream_out.write_all(&with_connection_close(&head))?;
    client_in.copy_body(request_body, &mut upstream_out)?;
    upstream_out.flush()?;
    shared.count(|s| s.forwarded += 1);

    let drop_response = fault == Some(FaultKind::DropResponse);
    let mut upstream_in = Reader::new(upstream);
    let mut sink = io::sink();
    let to_client: &mut dyn Write = if drop_response {
        &mut sink
    } else {
        &mut client_out
    };
    loop {
        let head = upstream_in
            .read_head()?
            .ok_or_else(|| protocol_error("upstream closed before responding"))?;
        let status = response_status(&head)?;
        if (100..200).contains(&status) {
            // Interim response (100 Continue): relay as it is and read the final one.
            to_client.write_all(&head)?;
            continue;
        }
        let framing = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            body_framing(&head, true)?
        };
        to_client.write_all(&with_connection_close(&head))?;
        if let (Some(FaultKind::CutBody), Framing::Length(n)) = (fault, framing) {
            if n > 1024 && get_object {
                upstream_in.copy_exact(n / 2, to_client)?;
                to_client.flush()?;
                let _ = client_out.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        upstream_in.copy_body(framing, to_client)?;
        to_client.flush()?;
        break;
    }
    if drop_response {
        // The client gets a FIN and never a byte of the response.
        let _ = client_out.shutdown(Shutdown::Both);
    } else {
        let _ = client_out.shutdown(Shutdown::Write);
        shared.count(|s| s.completed += 1);
    }
    Ok(())
}

/// Waits, without consuming anything, until the receive queue holds a whole request head.
/// False if the client closed before sending a byte.
fn peek_head(client: &TcpStream) -> io::Result<bool> {
    let mut buf = vec![0u8; MAX_HEAD];
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut seen = 0;
    loop {
        // Blocks (up to the read timeout) while the queue is empty; returns at once otherwise.
        let n = client.peek(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        if find(&buf[..n], b"\r\n\r\n").is_some() || n == buf.len() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "incomplete request head",
            ));
        }
        if n == seen {
            std::thread::sleep(Duration::from_millis(1));
        }
        seen = n;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The header lines of a head (without the start line and the final empty line).
fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
        })
}

/// The head with every `Connection`, `Keep-Alive` and `Proxy-Connection` header replaced by
/// one `Connection: close`.
fn with_connection_close(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 20);
    let mut lines = head.split(|&b| b == b'\n');
    if let Some(start) = lines.next() {
        out.extend_from_slice(start.strip_suffix(b"\r").unwrap_or(start));
        out.extend_from_slice(b"\r\n");
    }
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .map(|colon| line[..colon].trim_ascii())
            .unwrap_or(line);
        let hop_by_hop = [
            &b"connection"[..],
            &b"keep-alive"[..],
            &b"proxy-connection"[..],
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        if !hop_by_hop {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

fn response_status(head: &[u8]) -> io::Result<u16> {
    let start = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = start.split(|&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/") {
        return Err(protocol_error("not an HTTP response"));
    }
    std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| protocol_error("bad status code"))
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    Length(u64),
    Chunked,
    UntilEof,
}

/// How the body after this head is delimited: chunked transfer-encoding wins over
/// Content-Length; without either a request has none and a response runs to EOF.
fn body_framing(head: &[u8], response: bool) -> io::Result<Framing> {
    let mut length = None;
    for (name, value) in header_lines(head) {
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let value = String::from_utf8_lossy(value).to_ascii_lowercase();
            if value.split(',').any(|coding| coding.trim() == "chunked") {
                return Ok(Framing::Chunked);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| protocol_error("bad Content-Length"))?;
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None if response => Framing::UntilEof,
        None => Framing::Length(0),
    })
}

/// A socket's read half with a buffer of bytes read but not yet used.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    fn new(stream: TcpStream) -> Reader {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more into the buffer; 0 at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next head, through its empty line; `None` at EOF before any byte.
    fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Ok(Some(self.buf.drain(..i + 4).collect()));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(protocol_error("head too long"));
            }
            if self.fill()? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// The next line, with its CRLF.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Ok(self.buf.drain(..i + 2).collect());
            }
            if self.buf.len() > MAX_LINE {
                return Err(protocol_error("line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn copy_exact(&mut self, mut n: u64, out: &mut dyn Write) -> io::Result<()> {
        while n > 0 {
            if self.buf.is_empty() && self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = self.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            out.write_all(&self.buf[..take])?;
            self.buf.drain(..take);
            n -= take as u64;
        }
        Ok(())
    }

    fn copy_body(&mut self, framing: Framing, out: &mut dyn Write) -> io::Result<()> {
        match framing {
            Framing::Length(n) => self.copy_exact(n, out),
            Framing::UntilEof => loop {
                out.write_all(&self.buf)?;
                self.buf.clear();
                if self.fill()? == 0 {
                    return Ok(());
                }
            },
            Framing::Chunked => loop {
                let line = self.read_line()?;
                out.write_all(&line)?;
                let digits = line[..line.len() - 2]
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                let size = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| u64::from_str_radix(d, 16).ok())
                    .ok_or_else(|| protocol_error("bad chunk size"))?;
                if size == 0 {
                    // Trailers, up to and including the empty line.
                    loop {
                        let trailer = self.read_line()?;
                        out.write_all(&trailer)?;
                        if trailer == b"\r\n" {
                            return Ok(());
                        }
                    }
                }
                self.copy_exact(size + 2, out)?; // the data and its CRLF
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: the proxy between the plain SDK clients and the emulator.

/// The emulator's address, which must be on loopback: the proxy connects nowhere else.
pub async fn upstream() -> SocketAddr {
    let url = crate::emulator::endpoint().await;
    let authority = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("chaos tests need an http:// emulator endpoint, not {url}"))
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    authority
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("resolve {authority}: {e}"))
        .find(|a| a.ip().is_loopback())
        .unwrap_or_else(|| panic!("chaos tests need an emulator on loopback, not {url}"))
}

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "chaos-{tag}-{}-{millis}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn no_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::disabled()
}

/// A DynamoDB client for `url` (the emulator's when `None`).
async fn dynamodb(
    url: Option<String>,
    retry: aws_config::retry::RetryConfig,
    timeout: Option<Duration>,
) -> aws_sdk_dynamodb::Client {
    let config = crate::emulator::sdk_config().await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&config).retry_config(retry);
    if let Some(url) = url {
        builder = builder.endpoint_url(url);
    }
    if let Some(timeout) = timeout {
        builder = builder.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .operation_attempt_timeout(timeout)
                .build(),
        );
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

async fn read_value(ddb: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> Option<String> {
    let got = ddb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    got.item().map(|item| match item.get("v") {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("item {pk}: v = {other:?}"),
    })
}

/// What the client saw of one fault, in terms precise enough to assert on.
fn describe<E: std::fmt::Debug, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(_) => "service error".into(),
        SdkError::DispatchFailure(failure) => format!(
            "dispatch failure (io: {}, timeout: {}, other: {:?})",
            failure.is_io(),
            failure.is_timeout(),
            failure.as_other()
        ),
        SdkError::TimeoutError(_) => "timeout".into(),
        SdkError::ResponseError(_) => "response error".into(),
        SdkError::ConstructionFailure(_) => "construction failure".into(),
        _ => "other".into(),
    }
}

/// Asserts that `err` is what a client with retries disabled sees of one `kind` fault.
fn assert_fault<E: std::fmt::Debug>(
    kind: FaultKind,
    what: &str,
    err: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) {
    let seen = describe(err);
    eprintln!("chaos: {kind:?} on {what}: {seen}: {err:?}");
    match kind {
        FaultKind::Http500 | FaultKind::Http503 => {
            let want = if kind == FaultKind::Http500 { 500 } else { 503 };
            assert!(
                matches!(err, SdkError::ServiceError(_)),
                "{kind:?} on {what}: want a service error, got {seen}: {err:?}"
            );
            let status = err.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(want), "{kind:?} on {what}: {err:?}");
        }
        FaultKind::Reset => {
            let io = matches!(err, SdkError::DispatchFailure(f) if f.is_io());
            assert!(
                io,
                "{kind:?} on {what}: want an I/O dispatch failure, got {seen}: {err:?}"
            );
        }
        FaultKind::DropResponse => {
            let transient = matches!(err, SdkError::DispatchFailure(f)
                if f.is_io() || f.as_other() == Some(aws_config::retry::ErrorKind::TransientError));
            assert!(
                transient,
                "{kind:?} on {what}: want a transient dispatch failure, got {seen}: {err:?}"
            );
        }
        FaultKind::CutBody => panic!("{kind:?} is checked by the reads it cuts, not here"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_proxy_forwards_cleanly() {
    const LATENCY: Duration = Duration::from_millis(20);
    let proxy = ChaosProxy::start(
        upstream().await,
        ChaosConfig {
            latency: LATENCY,
            ..ChaosConfig::new(0.0, 1)
        },
    );
    let started = Instant::now();

    let ddb = dynamodb(Some(proxy.url()), no_retries(), None).await;
    let table = unique("clean");
    create_table(&ddb, &table).await;
    ddb.put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("a".into()))
        .item("v", AttributeValue::S("through the proxy".into()))
        .send()
        .await
        .expect("PutItem");
    assert_eq!(
        read_value(&ddb, &table, "a").await.as_deref(),
        Some("through the proxy")
    );

    let config = crate::emulator::sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(proxy.url())
            .force_path_style(true)
            .retry_config(no_retries())
            .build(),
    );
    let bucket = unique("clean");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    let body: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    s3.put_object()
        .bucket(&bucket)
        .key("big/object")
        .body(body.clone().into())
        .send()
        .await
        .expect("PutObject");
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("big/object")
        .send()
        .await
        .expect("GetObject")
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes();
    assert!(got.as_ref() == body.as_slice(), "1 MiB body differs");

    // A streamed body (from a file) is sent with `Content-Encoding: aws-chunked` and a
    // trailing checksum, framed by Content-Length.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{bucket}.bin"));
    std::fs::write(&path, &body).expect("write the upload file");
    let stream = aws_sdk_s3::primitives::ByteStream::from_path(&path)
        .await
        .expect("open the upload file");
    let put = s3
        .put_object()
        .bucket(&bucket)
        .key("streamed")
        .body(stream)
        .send()
        .await;
    let _ = std::fs::remove_file(&path);
    put.expect("PutObject (streamed)");
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("streamed")
        .send()
        .await
        .expect("GetObject (streamed)")
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes();
    assert!(
        got.as_ref() == body.as_slice(),
        "streamed 1 MiB body differs"
    );

    let stats = proxy.settled_stats();
    assert_eq!(stats.requests, 8, "{stats:?}");
    assert_eq!(
        stats.connections, 8,
        "one request per connection: {stats:?}"
    );
    assert_eq!(stats.forwarded, 8, "{stats:?}");
    assert_eq!(stats.completed, 8, "{stats:?}");
    assert_eq!(stats.faults_total(), 0, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert!(started.elapsed() >= LATENCY * 8, "latency not applied");

    let addr = proxy.addr();
    drop(proxy);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "still listening after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_proxy_injects_each_kind() {
    let up = upstream().await;
    let direct = dynamodb(None, no_retries(), None).await;
    let table = unique("kinds");
    create_table(&direct, &table).await;

    for (seed, kind) in FaultKind::ALL.into_iter().enumerate() {
        let proxy = ChaosProxy::start(
            up,
            ChaosConfig {
                fault_rate: 1.0,
                latency: Duration::ZERO,
                seed: seed as u64,
                kinds: vec![kind],
            },
        );
        let ddb = dynamodb(
            Some(proxy.url()),
            no_retries(),
            Some(Duration::from_secs(2)),
        )
        .await;

        let err = ddb
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S("nothing".into()))
            .send()
            .await
            .expect_err("GetItem through a faulty proxy");
        assert_fault(kind, "GetItem", &err);

        let pk = format!("{kind:?}");
        let err = ddb
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(pk.clone()))
            .item("v", AttributeValue::S("written".into()))
            .send()
            .await
            .expect_err("PutItem through a faulty proxy");
        assert_fault(kind, "PutItem", &err);

        // Only a dropped response was applied upstream; the others never got there.
        let applied = read_value(&direct, &table, &pk).await;
        if kind == FaultKind::DropResponse {
            assert_eq!(applied.as_deref(), Some("written"), "{kind:?}");
        } else {
            assert_eq!(applied, None, "{kind:?}");
        }

        let stats = proxy.settled_stats();
        assert_eq!(stats.requests, 2, "{kind:?}: {stats:?}");
        assert_eq!(stats.faults_of(kind), 2, "{kind:?}: {stats:?}");
        assert_eq!(stats.faults_total(), 2, "{kind:?}: {stats:?}");
        let forwarded = if kind == FaultKind::DropResponse {
            2
        } else {
            0
        };
        assert_eq!(stats.forwarded, forwarded, "{kind:?}: {stats:?}");
        assert_eq!(stats.completed, 0, "{kind:?}: {stats:?}");
        assert_eq!(stats.errors, 0, "{kind:?}: {stats:?}");

        // Back to normal at rate 0, on the same proxy.
        proxy.set_fault_rate(0.0);
        if kind != FaultKind::DropResponse {
            ddb.put_item()
                .table_name(&table)
                .item("pk", AttributeValue::S(pk.clone()))
                .item("v", AttributeValue::S("written".into()))
                .send()
                .await
                .expect("PutItem at fault rate 0");
        }
        assert_eq!(
            read_value(&ddb, &table, &pk).await.as_deref(),
            Some("written")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_proxy_sdk_retries_through_faults() {
    const ROUNDS: usize = 50;
    let direct = dynamodb(None, no_retries(), None).await;
    let table = unique("retries");
    create_table(&direct, &table).await;

    let proxy = ChaosProxy::start(upstream().await, ChaosConfig::new(0.3, 42));
    // Standard retry mode with more attempts, and a short backoff to keep the test fast (the
    // default initial backoff is 1 s, jittered). A timeout in case a fault ever hangs.
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(10));
    let ddb = dynamodb(Some(proxy.url()), retry, Some(Duration::from_secs(10))).await;

    for i in 0..ROUNDS {
        let pk = format!("item-{i}");
        let value = format!("value {i}");
        ddb.put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(pk.clone()))
            .item("v", AttributeValue::S(value.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutItem {i}: {}: {e:?}", describe(&e)));
        let got = ddb
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetItem {i}: {}: {e:?}", describe(&e)));
        assert_eq!(
            got.item().and_then(|item| item.get("v")),
            Some(&AttributeValue::S(value)),
            "round {i}"
        );
    }

    let stats = proxy.settled_stats();
    eprintln!("chaos: retries through faults: {stats:?}");
    assert!(stats.requests >= 2 * ROUNDS as u64, "{stats:?}");
    assert_eq!(stats.completed, 2 * ROUNDS as u64, "{stats:?}");
    assert_eq!(
        stats.requests,
        stats.completed + stats.faults_total(),
        "every request either completed or got a fault: {stats:?}"
    );
    for kind in FaultKind::ALL {
        assert!(stats.faults_of(kind) > 0, "no {kind:?} injected: {stats:?}");
    }
    assert_eq!(stats.errors, 0, "{stats:?}");

    // Verification phase without faults: everything is there.
    proxy.set_fault_rate(0.0);
    let before = proxy.stats().faults_total();
    let plain = dynamodb(Some(proxy.url()), no_retries(), None).await;
    for i in 0..ROUNDS {
        assert_eq!(
            read_value(&plain, &table, &format!("item-{i}")).await,
            Some(format!("value {i}"))
        );
    }
    assert_eq!(proxy.stats().faults_total(), before);
}

/// Chunked request and response bodies (with extensions and trailers) pass through intact,
/// the hop-by-hop headers are replaced by `Connection: close` both ways, a response is ended
/// by its framing even when the upstream keeps the connection open, and the 503 and Reset
/// faults behave as documented on the wire. No emulator: a fake upstream on loopback.
#[test]
fn chaos_proxy_frames_chunked_bodies() {
    const TIMEOUT: Duration = Duration::from_secs(5);
    const REQUEST_HEAD: &[u8] = b"POST /x HTTP/1.1\r\nHost: upstream\r\nconnection: keep-alive\r\n\
        Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n";
    const REQUEST_BODY: &[u8] = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n";
    const RESPONSE_BODY: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";

    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let (received, receive) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut reader = Reader::new(socket.try_clone().unwrap());
        let head = reader.read_head().unwrap().expect("a request");
        let mut body = Vec::new();
        reader
            .copy_body(body_framing(&head, false).unwrap(), &mut body)
            .unwrap();
        let mut response =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
                .to_vec();
        response.extend_from_slice(RESPONSE_BODY);
        (&socket).write_all(&response).unwrap();
        received.send((head, body)).unwrap();
        socket // kept open until joined
    });

    let exchange = |proxy: &ChaosProxy| -> io::Result<Vec<u8>> {
        let mut client = TcpStream::connect(proxy.addr())?;
        client.set_read_timeout(Some(TIMEOUT))?;
        client.write_all(&[REQUEST_HEAD, REQUEST_BODY].concat())?;
        let mut response = Vec::new();
        client.read_to_end(&mut response)?;
        Ok(response)
    };

    let proxy = ChaosProxy::start(upstream_addr, ChaosConfig::new(0.0, 7));
    let response = exchange(&proxy).expect("a response through the proxy");
    let (head, body) = receive.recv_timeout(TIMEOUT).unwrap();
    let _upstream_socket = server.join().unwrap();
    let head = String::from_utf8(head).unwrap();
    assert_eq!(
        head,
        "POST /x HTTP/1.1\r\nHost: upstream\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    assert_eq!(body, REQUEST_BODY);
    let mut expected =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    expected.extend_from_slice(RESPONSE_BODY);
    assert_eq!(
        String::from_utf8_lossy(&response),
        String::from_utf8_lossy(&expected)
    );
    let stats = proxy.settled_stats();
    assert_eq!((stats.forwarded, stats.completed, stats.errors), (1, 1, 0));
    drop(proxy);

    // Nothing listens at the upstream address any more: these faults never connect to it.
    let only = |kind| ChaosConfig {
        kinds: vec![kind],
        ..ChaosConfig::new(1.0, 7)
    };
    let proxy = ChaosProxy::start(upstream_addr, only(FaultKind::Http503));
    let response = exchange(&proxy).expect("a 503 response");
    assert_eq!(
        String::from_utf8_lossy(&response),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    drop(proxy);

    let proxy = ChaosProxy::start(upstream_addr, only(FaultKind::Reset));
    let err = exchange(&proxy).expect_err("a reset connection");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    let stats = proxy.settled_stats();
    assert_eq!(stats.faults_of(FaultKind::Reset), 1, "{stats:?}");
    assert_eq!((stats.forwarded, stats.errors), (0, 0), "{stats:?}");
}

/// The store through the chaos proxy: 1,000 mixed operations with 10% of the
/// requests faulted (resets, 500s, 503s, responses dropped after the write was
/// applied). The SDK retries what is retryable; what reaches the caller is typed;
/// afterwards every pointer resolves, and GC removes the orphans the lost
/// responses left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_workload_keeps_the_invariants() {
    use vhs::maintenance::{GcOptions, VerifyOptions};
    use vhs::{Error, Model};

    let (ops, tasks, ids) = (1000usize, 8usize, 40usize);
    let proxy = ChaosProxy::start(upstream().await, ChaosConfig::new(0.10, 7));
    let config = crate::emulator::sdk_config().await;
    let through_proxy = vhs::AwsOptions::emulator(proxy.url())
        .max_attempts(10)
        .initial_backoff(Duration::from_millis(10))
        .timeouts(
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(60)),
        );
    let fx = crate::fixture::Fixture::new(crate::fixture::Kind::Emulator).await;
    let store = vhs::Store::builder(
        vhs::AwsBackend::with_options(&config, through_proxy),
        fx.bucket.clone(),
    )
    .table_for::<crate::models::Document>(fx.tables.0.clone())
    .build()
    .unwrap();

    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut outcomes: HashMap<String, u64> = HashMap::new();
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                for i in 0..ops / tasks {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = (rng % ids as u64) as usize;
                    let mut doc = crate::models::Document::sample(&format!("c{id}"), "s");
                    doc.html = Some(format!("task {t} op {i}"));
                    let key = doc.primary_key();
                    let (op, result) = match (rng >> 32) % 20 {
                        0..=5 => ("create", store.create_large(&doc).await.map(|_| ())),
                        6..=11 => {
                            let changes = crate::models::Document::changes()
                                .set_html(doc.html.clone())
                                .set_image(Some(vec![t as u8, i as u8]));
                            (
                                "update",
                                store.update_large(&key, changes).await.map(|_| ()),
                            )
                        }
                        12..=16 => ("get", store.get_large(&key).await.map(|_| ())),
                        _ => ("delete", store.delete_large(&key).await.map(|_| ())),
                    };
                    let outcome = match result {
                        Ok(()) => "ok",
                        Err(Error::AlreadyExists { .. }) => "AlreadyExists",
                        Err(Error::NotFound { .. }) => "NotFound",
                        Err(Error::DanglingPointer { .. }) => "DanglingPointer (read race)",
                        Err(Error::Busy { .. }) => "Busy (retryable)",
                        Err(e @ Error::Backend { .. }) if e.is_retryable() => {
                            "Backend, retries exhausted"
                        }
                        Err(e @ Error::Backend { .. }) => {
                            panic!("a non-retryable backend error from a transient fault: {e}")
                        }
                        Err(e) => panic!("{op}: unexpected {e}"),
                    };
                    *outcomes.entry(format!("{op} {outcome}")).or_default() += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    for h in handles {
        for (k, v) in h.await.unwrap() {
            *outcomes.entry(k).or_default() += v;
        }
    }
    // The background jobs (the ends of reservations) run under the same
    // faults; a process calls `flush` before it exits.
    store.flush().await;
    let elapsed = started.elapsed();
    let stats = proxy.settled_stats();
    proxy.set_fault_rate(0.0);

    // The invariants, checked around the proxy.
    let report = fx
        .store
        .verify::<crate::models::Document>(&VerifyOptions::default().rehash(true), |_| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "invariant 1 broken: {report:?}");
    let gc = fx
        .store
        .gc::<crate::models::Document>(&GcOptions::default().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    // Every orphan is deleted, or kept because a deletion mark is on it: a
    // reservation whose last step (removing the mark) failed under the faults,
    // which GC takes over only once the retention has passed. Taking over at
    // once, as after a crash (every worker is done), deletes those in one pass.
    assert_eq!(
        gc.deleted.len() as u64 + gc.rescued,
        report.orphans,
        "{gc:?}"
    );
    if gc.rescued > 0 {
        let reaped = fx
            .store
            .gc::<crate::models::Document>(
                &GcOptions::default()
                    .grace(Duration::ZERO)
                    .take_over_after(Duration::ZERO),
                |_| {},
            )
            .await
            .unwrap();
        assert!(reaped.marks_taken_over > 0, "{reaped:?}");
    }
    let after = fx
        .store
        .verify::<crate::models::Document>(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(after.is_clean() && after.orphans == 0, "{after:?}");
    assert!(stats.faults_total() > 0);
    let mut lines: Vec<String> = outcomes
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    lines.sort();
    println!(
        "chaos workload ({}): {ops} operations in {:.1} s; {} requests through the proxy, {} faulted ({:?}); outcomes: {}; verify: {} items, {} pointers, clean; GC removed {} orphans ({} bytes)",
        crate::emulator::emulator_name(),
        elapsed.as_secs_f64(),
        stats.requests,
        stats.faults_total(),
        stats.faults,
        lines.join(", "),
        report.items,
        report.pointers,
        gc.deleted.len(),
        gc.deleted_bytes,
    );
}

/// Downloads cut midway (`CutBody` on half of all requests): every read path gets the whole
/// value, MD5-checked, because the backend resumes a cut body from the byte it reached and the
/// store reads again what the backend could not: `get_large` of a value read whole and of a
/// `Blob` read range by range, `download_large`, `read_large_range`, `verify` with `rehash`,
/// and the model-less download the CLI's `cat` uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_cut_downloads_resume() {
    use vhs::maintenance::VerifyOptions;
    use vhs::{Blob, Model};

    use crate::models::Video;
    use crate::reads::noise;

    const PART: u64 = 5 * 1024 * 1024;
    let fx = crate::fixture::Fixture::new(crate::fixture::Kind::Emulator).await;
    let proxy = ChaosProxy::start(
        upstream().await,
        ChaosConfig {
            kinds: vec![FaultKind::CutBody],
            ..ChaosConfig::new(0.5, 11)
        },
    );
    let config = crate::emulator::sdk_config().await;
    let store = vhs::Store::builder(
        vhs::AwsBackend::with_options(&config, vhs::AwsOptions::emulator(proxy.url())),
        fx.bucket.clone(),
    )
    .table_for::<Video>(fx.store.table_name::<Video>())
    .multipart_threshold(PART)
    .part_size(PART)
    .build()
    .unwrap();
    // Written without faults.
    let big = noise(2 * PART as usize + 4321, 21);
    let thumb = noise(300_000, 22);
    let v = Video {
        id: "cut".into(),
        data: Some(Blob::from(big.clone())),
        thumb: Some(thumb.clone()),
    };
    fx.store.create_large(&v).await.unwrap();
    let key = v.primary_key();

    for round in 0..3 {
        let got = store.get_large(&key).await.unwrap();
        assert!(got.data.as_ref().unwrap().path().is_some(), "spooled");
        assert!(
            got.data.unwrap().to_bytes().await.unwrap() == big,
            "round {round}: the Blob"
        );
        assert!(
            got.thumb.unwrap() == thumb,
            "round {round}: the value read whole"
        );
        let mut out = Vec::new();
        store.download_large(&key, "data", &mut out).await.unwrap();
        assert!(out == big, "round {round}: download_large");
        let range = store
            .read_large_range(&key, "data", 1000..2_000_000)
            .await
            .unwrap();
        assert!(
            range == big.slice(1000..2_000_000),
            "round {round}: a range"
        );
        let report = store
            .verify::<Video>(&VerifyOptions::default().rehash(true), |_| {})
            .await
            .unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
        let table = store.open_table(store.table_name::<Video>()).await.unwrap();
        let item = table.get(&key.to_item()).await.unwrap().unwrap();
        let mut out = Vec::new();
        table.download(&item, "data", &mut out).await.unwrap();
        assert!(out == big, "round {round}: AnyTable::download");
    }
    let cuts = proxy.settled_stats().faults_of(FaultKind::CutBody);
    assert!(cuts >= 10, "the proxy cut {cuts} bodies");
}
