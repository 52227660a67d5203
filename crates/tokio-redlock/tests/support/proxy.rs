//! An in-process loopback TCP proxy that injects network faults between a
//! client and one Redis server: latency, stalls, lost replies, refused and
//! reset connections.
//!
//! Every accepted connection runs as one task with two directions
//! (client→server "requests", server→client "replies"). Each direction is a
//! reader that stamps every chunk with `deliver_at = read_time + latency`
//! and queues it, and a writer that sleeps until `deliver_at`, waits while
//! the proxy is stalled, then forwards the chunk. Controls are plain
//! setters usable from sync code; running connections see them at once.
//!
//! Like real TCP, the proxy never loses bytes inside a live connection: a
//! connection that had replies discarded by [`FaultProxy::drop_replies`]
//! discards every later reply too, and is reset (both sides closed) when the
//! fault is lifted, so a pipelined client can never match a reply to the
//! wrong request.
//!
//! [`FaultProxy::blackhole_existing`] is the one exception on purpose: it
//! models a flow a NAT or firewall forgot (or a peer host that vanished
//! without a reset) — the connection stays open and silently swallows every
//! byte, while new connections work.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{mpsc, watch},
    task::AbortHandle,
    time::Instant,
};

/// Shared state between the [`FaultProxy`] handle and its tasks.
struct Shared {
    upstream: SocketAddr,
    reply_latency: Mutex<Duration>,
    request_latency: Mutex<Duration>,
    /// `true` while stalled; writers wait on it.
    stall: watch::Sender<bool>,
    drop_replies: AtomicBool,
    refuse: AtomicBool,
    /// Bumped by `reset_all`; a connection whose epoch is stale stops
    /// forwarding immediately, even before its task is aborted.
    epoch: AtomicU64,
    open: AtomicUsize,
    conns: Mutex<Vec<Conn>>,
}

/// Per-connection fault state, shared by its two directions and the proxy.
#[derive(Default)]
struct ConnState {
    /// Set once a reply byte was discarded by `drop_replies`. From then on
    /// every reply byte of this connection is discarded as well (the stream
    /// has a hole and must never carry bytes again), until it is reset.
    discarded: AtomicBool,
    /// Set when the proxy resets this connection: no byte is forwarded on
    /// it any more, even before its task is aborted.
    reset: AtomicBool,
    /// Set by `blackhole_existing`: from then on every byte of this
    /// connection, in both directions, is read and discarded, and the
    /// sockets stay open (no FIN, no RST) until it is reset.
    blackholed: AtomicBool,
}

/// A registered connection: its state and the handle that tears it down.
struct Conn {
    state: Arc<ConnState>,
    abort: AbortHandle,
}

impl Conn {
    fn reset(&self) {
        self.state.reset.store(true, Ordering::SeqCst);
        // Aborting drops the task's future and with it both sockets.
        self.abort.abort();
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Request,
    Reply,
}

impl Shared {
    fn latency(&self, dir: Direction) -> Duration {
        let slot = match dir {
            Direction::Request => &self.request_latency,
            Direction::Reply => &self.reply_latency,
        };
        *slot.lock().unwrap()
    }
}

/// A fault-injecting TCP proxy in front of one upstream address.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: AbortHandle,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`. Must be called on
    /// a tokio runtime; all work runs as tasks on it.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy local_addr");
        let shared = Arc::new(Shared {
            upstream,
            reply_latency: Mutex::new(Duration::ZERO),
            request_latency: Mutex::new(Duration::ZERO),
            stall: watch::Sender::new(false),
            drop_replies: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let listener = tokio::spawn(accept_loop(listener, Arc::clone(&shared))).abort_handle();
        Self {
            addr,
            shared,
            listener,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.addr.port())
    }

    /// Delays server→client bytes read from now on by `latency`.
    pub fn set_reply_latency(&self, latency: Duration) {
        *self.shared.reply_latency.lock().unwrap() = latency;
    }

    /// Delays client→server bytes read from now on by `latency`.
    pub fn set_request_latency(&self, latency: Duration) {
        *self.shared.request_latency.lock().unwrap() = latency;
    }

    /// While on, bytes in both directions are read but held; turning it off
    /// releases them in order. Sockets stay open throughout.
    pub fn stall(&self, on: bool) {
        self.shared.stall.send_replace(on);
    }

    /// While on, server→client bytes are discarded: the server executes
    /// the commands but the client never hears back (a one-way partition).
    ///
    /// Real TCP never loses bytes inside a live connection: after a one-way
    /// partition the bytes either arrive late or the connection is reset.
    /// So a connection that discarded at least one byte keeps discarding
    /// every later reply, and is **reset** (client and server sides closed)
    /// when `drop_replies(false)` (or [`heal`](Self::heal)) is called; the
    /// client sees its old connection fail and must reconnect, and a
    /// pipelined client is never desynchronised (no reply is ever matched to
    /// the wrong request). Connections that discarded nothing are untouched.
    /// No byte is forwarded on a reset connection after this returns.
    pub fn drop_replies(&self, on: bool) {
        self.shared.drop_replies.store(on, Ordering::SeqCst);
        if !on {
            // Pairs with the reader, which marks a connection `discarded`
            // *before* re-reading this flag: either we see the mark here, or
            // the reader sees the flag off and resets the connection itself.
            self.shared.conns.lock().unwrap().retain(|conn| {
                if conn.state.discarded.load(Ordering::SeqCst) {
                    conn.reset();
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Blackholes every connection open right now: from now on each of them
    /// silently swallows every byte in both directions (requests never reach
    /// the server, replies never reach the client), and its sockets stay
    /// open — no FIN, no RST, nothing for the client to notice but silence.
    /// Connections opened later are not affected and work normally.
    ///
    /// This models a connection whose flow a NAT or firewall dropped, or
    /// whose peer host vanished without a reset: only replacing the
    /// connection helps. A blackholed connection stays silent until
    /// [`reset_all`](Self::reset_all) or [`heal`](Self::heal) resets it (it
    /// lost bytes, so it is never resumed).
    pub fn blackhole_existing(&self) {
        let mut conns = self.shared.conns.lock().unwrap();
        conns.retain(|c| !c.abort.is_finished());
        for conn in conns.iter() {
            conn.state.blackholed.store(true, Ordering::SeqCst);
        }
    }

    /// While on, new client connections are accepted and closed at once.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Closes every current connection (both sides); new ones still work.
    /// No byte is forwarded on an old connection after this returns.
    pub fn reset_all(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for conn in self.shared.conns.lock().unwrap().drain(..) {
            conn.reset();
        }
    }

    /// Removes every fault: no latency, no stall, replies flow, accepts.
    /// Connections that lost replies are reset (see
    /// [`drop_replies`](Self::drop_replies)), and so are blackholed ones
    /// (see [`blackhole_existing`](Self::blackhole_existing)).
    pub fn heal(&self) {
        self.set_reply_latency(Duration::ZERO);
        self.set_request_latency(Duration::ZERO);
        self.stall(false);
        self.drop_replies(false);
        self.refuse(false);
        self.shared.conns.lock().unwrap().retain(|conn| {
            if conn.state.blackholed.load(Ordering::SeqCst) {
                conn.reset();
                false
            } else {
                true
            }
        });
    }

    /// Client connections currently open through the proxy.
    pub fn connection_count(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.reset_all();
    }
}

/// Decrements the open-connection count when a connection task ends or is
/// aborted (aborting drops the task's future, and with it this guard).
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // e.g. EMFILE: back off briefly and keep serving.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let _ = client.set_nodelay(true);
        shared.open.fetch_add(1, Ordering::SeqCst);
        let guard = OpenGuard(Arc::clone(&shared));
        let epoch = shared.epoch.load(Ordering::SeqCst);
        let state = Arc::new(ConnState::default());
        // Registered under the lock before the task can discard anything, so
        // `drop_replies(false)` cannot miss it.
        let mut conns = shared.conns.lock().unwrap();
        conns.retain(|c| !c.abort.is_finished());
        let conn_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let _ = serve(client, &guard.0, &conn_state, epoch).await;
            drop(guard);
        });
        conns.push(Conn {
            state,
            abort: task.abort_handle(),
        });
    }
}

/// Proxies one client connection until both directions are done or one
/// fails (any error tears down both sockets).
async fn serve(
    client: TcpStream,
    shared: &Shared,
    conn: &ConnState,
    epoch: u64,
) -> std::io::Result<()> {
    let server = TcpStream::connect(shared.upstream).await?;
    let _ = server.set_nodelay(true);
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    futures_util::future::try_join(
        pump(
            client_rd,
            server_wr,
            Direction::Request,
            shared,
            conn,
            epoch,
        ),
        pump(server_rd, client_wr, Direction::Reply, shared, conn, epoch),
    )
    .await?;
    Ok(())
}

/// One direction: read chunks, stamp and queue them; deliver them in order.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Direction,
    shared: &Shared,
    conn: &ConnState,
    epoch: u64,
) -> std::io::Result<()> {
    let reset = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "proxy reset");
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();

    let reader = async move {
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok(()); // EOF: dropping `tx` lets the writer finish
            }
            if conn.blackholed.load(Ordering::SeqCst) {
                continue; // swallowed: the peer never hears of these bytes
            }
            if matches!(dir, Direction::Reply)
                && (conn.discarded.load(Ordering::SeqCst)
                    || shared.drop_replies.load(Ordering::SeqCst))
            {
                // Mark first, then re-read the flag (see `drop_replies`).
                conn.discarded.store(true, Ordering::SeqCst);
                if !shared.drop_replies.load(Ordering::SeqCst) {
                    // Turned off meanwhile: this connection lost bytes, so it
                    // is reset rather than resumed with a hole in it.
                    conn.reset.store(true, Ordering::SeqCst);
                    return Err(reset());
                }
                continue;
            }
            let deliver_at = Instant::now() + shared.latency(dir);
            // The writer only stops early on error, which ends us too.
            let _ = tx.send((deliver_at, buf[..n].to_vec()));
        }
    };

    let writer = async move {
        let mut stalled = shared.stall.subscribe();
        while let Some((deliver_at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(deliver_at).await;
            // Sender lives in `shared`, so this only returns once un-stalled.
            let _ = stalled.wait_for(|on| !*on).await;
            if shared.epoch.load(Ordering::SeqCst) != epoch || conn.reset.load(Ordering::SeqCst) {
                return Err(reset());
            }
            if conn.blackholed.load(Ordering::SeqCst) {
                continue; // queued before the blackhole, swallowed all the same
            }
            to.write_all(&bytes).await?;
        }
        // Propagate the half-close after everything queued was delivered.
        to.shutdown().await
    };

    futures_util::future::try_join(reader, writer).await?;
    Ok(())
}
