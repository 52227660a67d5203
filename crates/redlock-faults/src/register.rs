//! The fenced register: the protected resource of the tests, kept in the test process.
//!
//! A write carries a fencing token and is accepted iff the token is ≥ the largest token the
//! register has seen for that resource. Every write is logged in the register's own order
//! (as [`Op::RegisterWrite`] events), which is what the "never A, B, A" check reads.
//!
//! Beside it sits an **unfenced** counter per resource (read, then write back +1, no token):
//! the etcd "locked set" workload, whose lost updates show what fencing prevents.
//!
//! `lock-worker` processes reach the register over a line protocol on 127.0.0.1
//! ([`serve`], [`RemoteRegister`]):
//!
//! ```text
//! W <res> <holder> <fence>   → A <max> | R <max>      fenced write: accepted / rejected
//! G <res>                    → V <value>              read the unfenced counter
//! S <res> <value>            → OK                     write the unfenced counter
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::history::{Op, Recorder};

#[derive(Default)]
struct State {
    max: HashMap<String, u64>,
    counter: HashMap<String, u64>,
    increments: HashMap<String, u64>,
    writers: std::collections::HashSet<String>,
    seq: u64,
}

/// The in-process fenced register.
pub struct FencedRegister {
    state: Mutex<State>,
    rec: Recorder,
    writes: broadcast::Sender<(String, bool)>,
}

impl std::fmt::Debug for FencedRegister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedRegister").finish_non_exhaustive()
    }
}

impl FencedRegister {
    /// A register that logs its writes through `rec` (under the process name `register`).
    pub fn new(rec: &Recorder) -> Self {
        Self {
            state: Mutex::new(State::default()),
            rec: rec.named("register"),
            writes: broadcast::Sender::new(256),
        }
    }

    /// A fenced write by `holder` (`process#id`): accepted iff `fence` ≥ the largest token
    /// seen for `res`. Returns (accepted, largest token seen after the write).
    pub fn write(&self, res: &str, holder: &str, fence: u64) -> (bool, u64) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let max = st.max.entry(res.to_owned()).or_insert(0);
        let accepted = fence >= *max;
        if accepted {
            *max = fence;
        }
        let max = *max;
        st.seq = st.seq.saturating_add(1);
        let first = st.writers.insert(holder.to_owned());
        // Stamped under the lock: the log order is the register's order.
        self.rec.record(Op::RegisterWrite {
            res: res.to_owned(),
            holder: holder.to_owned(),
            fence,
            accepted,
            seq: st.seq,
        });
        drop(st);
        // Tells a waiting nemesis which holder just entered its critical section.
        let _ = self.writes.send((holder.to_owned(), first));
        (accepted, max)
    }

    /// Reads the unfenced counter of `res`.
    pub fn read_counter(&self, res: &str) -> u64 {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.counter.get(res).copied().unwrap_or(0)
    }

    /// Writes the unfenced counter of `res` (an acknowledged increment).
    pub fn set_counter(&self, res: &str, value: u64) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.counter.insert(res.to_owned(), value);
        let n = st.increments.entry(res.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Lost updates of the unfenced counters: acknowledged increments minus final values,
    /// summed over resources.
    pub fn lost_updates(&self) -> u64 {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.increments
            .iter()
            .map(|(res, acked)| acked.saturating_sub(st.counter.get(res).copied().unwrap_or(0)))
            .sum()
    }

    /// Every write from now on, as it happens: the holder (`process#id`) and whether it is
    /// that holder's first write (it has just entered its critical section).
    pub fn subscribe_writes(&self) -> broadcast::Receiver<(String, bool)> {
        self.writes.subscribe()
    }
}

/// A running TCP front of a register; stops when dropped.
#[derive(Debug)]
pub struct RegisterServer {
    addr: SocketAddr,
    accept: AbortHandle,
}

impl RegisterServer {
    /// `127.0.0.1:port` of the service.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RegisterServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves `register` on a free port of 127.0.0.1.
///
/// # Errors
///
/// When no loopback port can be bound.
pub async fn serve(register: Arc<FencedRegister>) -> std::io::Result<RegisterServer> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            conns.spawn(serve_conn(stream, Arc::clone(&register)));
            while conns.try_join_next().is_some() {}
        }
    })
    .abort_handle();
    Ok(RegisterServer { addr, accept })
}

async fn serve_conn(stream: TcpStream, register: Arc<FencedRegister>) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    while let Some(line) = lines.next_line().await? {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let reply = match parts.as_slice() {
            ["W", res, holder, fence] => match fence.parse::<u64>() {
                Ok(fence) => {
                    let (ok, max) = register.write(res, holder, fence);
                    format!("{} {max}\n", if ok { "A" } else { "R" })
                }
                Err(_) => "E bad fence\n".to_owned(),
            },
            ["G", res] => format!("V {}\n", register.read_counter(res)),
            ["S", res, value] => match value.parse::<u64>() {
                Ok(v) => {
                    register.set_counter(res, v);
                    "OK\n".to_owned()
                }
                Err(_) => "E bad value\n".to_owned(),
            },
            _ => "E unknown command\n".to_owned(),
        };
        wr.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// A client of [`serve`] (one connection, one request at a time).
#[derive(Debug)]
pub struct RemoteRegister {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    wr: tokio::net::tcp::OwnedWriteHalf,
}

impl RemoteRegister {
    /// Connects to a register service.
    ///
    /// # Errors
    ///
    /// When the connection fails.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Ok(Self {
            lines: BufReader::new(rd).lines(),
            wr,
        })
    }

    async fn call(&mut self, line: String) -> std::io::Result<Vec<String>> {
        self.wr.write_all(line.as_bytes()).await?;
        let reply = self
            .lines
            .next_line()
            .await?
            .ok_or_else(|| std::io::Error::other("register closed the connection"))?;
        Ok(reply.split_whitespace().map(str::to_owned).collect())
    }

    /// A fenced write; see [`FencedRegister::write`].
    ///
    /// # Errors
    ///
    /// On I/O errors or a malformed reply.
    pub async fn write(
        &mut self,
        res: &str,
        holder: &str,
        fence: u64,
    ) -> std::io::Result<(bool, u64)> {
        let reply = self.call(format!("W {res} {holder} {fence}\n")).await?;
        match reply.as_slice() {
            [verdict, max] if verdict == "A" || verdict == "R" => {
                let max = max.parse().map_err(std::io::Error::other)?;
                Ok((verdict == "A", max))
            }
            other => Err(std::io::Error::other(format!(
                "bad register reply {other:?}"
            ))),
        }
    }

    /// Reads the unfenced counter.
    ///
    /// # Errors
    ///
    /// On I/O errors or a malformed reply.
    pub async fn read_counter(&mut self, res: &str) -> std::io::Result<u64> {
        let reply = self.call(format!("G {res}\n")).await?;
        match reply.as_slice() {
            [v, value] if v == "V" => value.parse().map_err(std::io::Error::other),
            other => Err(std::io::Error::other(format!(
                "bad register reply {other:?}"
            ))),
        }
    }

    /// Writes the unfenced counter.
    ///
    /// # Errors
    ///
    /// On I/O errors or a malformed reply.
    pub async fn set_counter(&mut self, res: &str, value: u64) -> std::io::Result<()> {
        let reply = self.call(format!("S {res} {value}\n")).await?;
        match reply.as_slice() {
            [ok] if ok == "OK" => Ok(()),
            other => Err(std::io::Error::other(format!(
                "bad register reply {other:?}"
            ))),
        }
    }
}

/// The register as a worker sees it: in the same process, or over TCP.
#[derive(Debug)]
pub enum RegisterHandle {
    /// In-process: a write is one synchronous call (no gap between a validity check and it).
    Local(Arc<FencedRegister>),
    /// Over TCP, from a `lock-worker` process.
    Remote(tokio::sync::Mutex<RemoteRegister>),
}

impl RegisterHandle {
    /// A fenced write; `None` when the register could not be reached.
    pub async fn write(&self, res: &str, holder: &str, fence: u64) -> Option<(bool, u64)> {
        match self {
            Self::Local(r) => Some(r.write(res, holder, fence)),
            Self::Remote(r) => r.lock().await.write(res, holder, fence).await.ok(),
        }
    }

    /// Reads the unfenced counter.
    pub async fn read_counter(&self, res: &str) -> Option<u64> {
        match self {
            Self::Local(r) => Some(r.read_counter(res)),
            Self::Remote(r) => r.lock().await.read_counter(res).await.ok(),
        }
    }

    /// Writes the unfenced counter.
    pub async fn set_counter(&self, res: &str, value: u64) -> bool {
        match self {
            Self::Local(r) => {
                r.set_counter(res, value);
                true
            }
            Self::Remote(r) => r.lock().await.set_counter(res, value).await.is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iff_token_is_at_least_the_largest_seen() {
        let rec = Recorder::memory("t");
        let reg = FencedRegister::new(&rec);
        assert_eq!(reg.write("r", "a#1", 5), (true, 5));
        assert_eq!(reg.write("r", "a#1", 5), (true, 5));
        assert_eq!(reg.write("r", "b#1", 7), (true, 7));
        assert_eq!(reg.write("r", "a#1", 5), (false, 7));
        assert_eq!(reg.write("other", "a#1", 1), (true, 1));
        let log = rec.take();
        assert_eq!(log.len(), 5);
        reg.set_counter("r", 1);
        reg.set_counter("r", 1);
        assert_eq!(reg.lost_updates(), 1);
    }

    #[tokio::test]
    async fn the_tcp_front_speaks_the_same_rules() {
        let rec = Recorder::memory("t");
        let reg = Arc::new(FencedRegister::new(&rec));
        let server = serve(Arc::clone(&reg)).await.unwrap();
        let mut client = RemoteRegister::connect(server.addr()).await.unwrap();
        assert_eq!(client.write("r", "p0#1", 3).await.unwrap(), (true, 3));
        assert_eq!(client.write("r", "p0#2", 2).await.unwrap(), (false, 3));
        client.set_counter("r", 9).await.unwrap();
        assert_eq!(client.read_counter("r").await.unwrap(), 9);
        assert_eq!(reg.read_counter("r"), 9);
    }
}
