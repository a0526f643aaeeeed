//! A TCP proxy on loopback that delays every byte by a fixed time in each direction: a
//! network with that one-way latency and no bandwidth limit.
//!
//! Unlike the contract suite's chaos proxy it does not parse HTTP: connections are kept
//! alive and reused as the clients would reuse them against a real service, so what it adds
//! is latency alone. Each direction of each connection is a delay line: a reader stamps
//! every chunk it receives with `now + delay` and a writer sends it on at that instant, in
//! order; an end of stream is forwarded the same way.
//!
//! It runs on its own thread and runtime, so a busy benchmark cannot delay it, and stops
//! when dropped.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A running proxy; see the module documentation.
pub struct DelayProxy {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`, delaying each
    /// direction by `delay`.
    pub fn start(upstream: SocketAddr, delay: Duration) -> DelayProxy {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    ready_tx.send(listener.local_addr().unwrap()).unwrap();
                    let accept = async {
                        loop {
                            let Ok((client, _)) = listener.accept().await else {
                                continue;
                            };
                            tokio::spawn(connection(client, upstream, delay));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cancels every connection task.
            })
            .expect("spawn the proxy thread");
        DelayProxy {
            addr: ready_rx.recv().expect("the proxy started"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, delay: Duration) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_in, client_out) = client.into_split();
    let (server_in, server_out) = server.into_split();
    tokio::join!(
        pipe(client_in, server_out, delay),
        pipe(server_in, client_out, delay)
    );
}

/// One direction: read, stamp, and write each chunk at its stamp.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    // `None` is the end of the stream (or an error reading), forwarded as a shutdown.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            let last = chunk.is_none();
            if tx.send((Instant::now() + delay, chunk)).is_err() || last {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
