//! What one quorum member is — a Redis URL, or a Sentinel group that names the current
//! master — and the parsing of a comma-separated server list (`REDLOCK_SERVERS`).
//!
//! A Sentinel group is written as one URL with several hosts, in the form Lettuce and
//! Spring use:
//!
//! ```text
//! redis+sentinel://[user:password@]host:port[,host:port…]/<master-name>[/<db>]
//!     [?sentinel_username=U&sentinel_password=P]
//! ```
//!
//! `user:password` are the master's credentials; `sentinel_*` are the sentinels' own.
//! `rediss+sentinel://` speaks TLS to the sentinels and to the master.
//!
//! A Redis Cluster is one member too, written with its seed nodes (any nodes of the
//! cluster; the layout is learnt from them, see [`cluster`](super::cluster)):
//!
//! ```text
//! redis+cluster://[user:password@]host:port[,host:port…][/]
//! ```
//!
//! `rediss+cluster://` speaks TLS to every node. A cluster has one database (0): no path.

use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError};

use crate::error::ConfigError;
use crate::transport::cluster::Cluster;
use crate::transport::failover::FailoverWatch;
use crate::transport::sentinel::SentinelGroup;
use crate::transport::tls::TlsSettings;

/// The environment variable [`LockManagerBuilder::from_env`](crate::LockManagerBuilder::from_env)
/// and the `redlock` CLI read the masters from: a comma-separated list of member URLs.
pub const SERVERS_ENV: &str = "REDLOCK_SERVERS";

/// Characters of a master name written percent-encoded when a Sentinel URL is shown.
const NAME_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'@')
    .add(b',')
    .add(b'%');

/// The port sentinels listen on when a Sentinel URL names none.
const SENTINEL_PORT: u16 = 26379;
/// The port of a cluster's seed node when its URL names none.
const REDIS_PORT: u16 = 6379;

/// The schemes of a Sentinel group, plain and TLS.
const SENTINEL_SCHEME: &str = "redis+sentinel://";
const SENTINEL_TLS_SCHEME: &str = "rediss+sentinel://";
/// The schemes of a Redis Cluster, plain and TLS.
const CLUSTER_SCHEME: &str = "redis+cluster://";
const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

/// Splits a comma-separated list of member URLs, as in `REDLOCK_SERVERS`:
/// `redis://a:6379,redis://b:6379,redis+sentinel://s1:26379,s2:26379/mymaster`.
///
/// A part without a scheme right after a Sentinel URL whose host list is still open (no `/`
/// yet) continues that host list, so Sentinel URLs keep their commas. Spaces around parts are
/// ignored; a list of only spaces gives no member.
///
/// # Errors
///
/// [`ConfigError::InvalidUrl`] for an empty part (`a,,b`) or a part without a scheme
/// (`localhost:6379`); passwords are redacted in the message. The URLs themselves are
/// checked by [`build`](crate::LockManagerBuilder::build).
///
/// # Examples
///
/// ```
/// let members = tokio_redlock::parse_server_list(
///     "redis://a:6379, redis+sentinel://s1:26379,s2:26379/jobs ,redis://c:6379",
/// )?;
/// assert_eq!(
///     members,
///     ["redis://a:6379", "redis+sentinel://s1:26379,s2:26379/jobs", "redis://c:6379"]
/// );
/// # Ok::<(), tokio_redlock::ConfigError>(())
/// ```
pub fn parse_server_list(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut members: Vec<String> = Vec::new();
    if list.trim().is_empty() {
        return Ok(members);
    }
    // Whether the last member is a Sentinel URL still in its host list.
    let mut open_hosts = false;
    // Parts are never quoted in errors: a part may be the tail of a password that held an
    // unencoded comma.
    for (position, part) in list.split(',').map(str::trim).enumerate() {
        let entry = position.saturating_add(1);
        if part.is_empty() {
            return Err(ConfigError::InvalidUrl {
                url: format!("server list entry {entry}"),
                reason: "empty entry (two commas in a row, or a comma at an end)".to_owned(),
            });
        }
        if part.contains("://") {
            open_hosts = (is_sentinel_url(part) || is_cluster_url(part)) && !host_list_closed(part);
            members.push(part.to_owned());
            continue;
        }
        match members.last_mut() {
            Some(last) if open_hosts => {
                last.push(',');
                last.push_str(part);
                open_hosts = !host_list_closed(part);
            }
            _ => {
                return Err(ConfigError::InvalidUrl {
                    url: format!("server list entry {entry}"),
                    reason: "no scheme: write redis://host:port (or rediss://, redis+unix://, \
                             redis+sentinel://, redis+cluster://); a comma inside a password is \
                             written %2C"
                        .to_owned(),
                });
            }
        }
    }
    Ok(members)
}

/// Whether a URL names a Sentinel group.
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    let lower = url.get(..SENTINEL_TLS_SCHEME.len()).unwrap_or(url);
    lower.eq_ignore_ascii_case(SENTINEL_TLS_SCHEME)
        || url
            .get(..SENTINEL_SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(SENTINEL_SCHEME))
}

/// Whether a URL names a Redis Cluster.
pub(crate) fn is_cluster_url(url: &str) -> bool {
    strip_scheme(url, CLUSTER_SCHEME).is_some() || strip_scheme(url, CLUSTER_TLS_SCHEME).is_some()
}

/// Whether the host list of (a part of) a Sentinel URL has ended: a path or query began.
fn host_list_closed(part: &str) -> bool {
    let hosts = part.split_once("://").map_or(part, |(_, rest)| rest);
    hosts.contains(['/', '?'])
}

/// A Sentinel group as configured.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelSpec {
    /// TLS to the sentinels and to the master.
    pub(crate) tls: bool,
    /// The sentinels, as host and port.
    pub(crate) hosts: Vec<(String, u16)>,
    /// The name the sentinels monitor the master under.
    pub(crate) master_name: String,
    /// The database on the master.
    pub(crate) db: i64,
    /// The master's credentials.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The sentinels' credentials.
    pub(crate) sentinel_username: Option<String>,
    pub(crate) sentinel_password: Option<String>,
}

impl SentinelSpec {
    /// Parses `redis+sentinel://…`; the error is the reason, for `ConfigError::InvalidUrl`.
    ///
    /// The master's credentials are split off first: the URL is read once for each `@` in
    /// it (and once without credentials), and exactly one reading must parse, so a password
    /// holding `/`, `?`, `#`, `@` or `:` is never read as a path, a query or a host.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = strip_scheme(url, SENTINEL_TLS_SCHEME) {
            (true, rest)
        } else if let Some(rest) = strip_scheme(url, SENTINEL_SCHEME) {
            (false, rest)
        } else {
            return Err("not a redis+sentinel:// URL".to_owned());
        };
        one_reading(rest, |userinfo, after| {
            Self::parse_after(tls, userinfo, after)
        })
    }

    /// Parses what follows the credentials: `hosts/<name>[/<db>][?query]`.
    fn parse_after(tls: bool, userinfo: Option<&str>, rest: &str) -> Result<Self, String> {
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.contains('#') {
            return Err(FRAGMENT_REFUSED.to_owned());
        }
        if rest.contains(['#', '@']) {
            return Err(
                "a `#` or `@` outside the credentials and the query (characters such \
                        as / ? # @ in a password are written percent-encoded)"
                    .to_owned(),
            );
        }
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (username, password) = match userinfo {
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                (non_empty(decode(user)?), non_empty(decode(pass)?))
            }
            None => (None, None),
        };
        let hosts = hosts
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, host)| parse_host(i, host, SENTINEL_PORT, "sentinel"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let master_name = match segments.next() {
            Some(name) => decode(name)?,
            None => {
                return Err(
                    "no master name: write redis+sentinel://host:port/<master-name>".to_owned(),
                );
            }
        };
        let db = match segments.next() {
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| "the database (after the master name) is not a number".to_owned())?,
            None => 0,
        };
        if segments.next().is_some() {
            return Err("too many path segments: /<master-name>[/<db>]".to_owned());
        }
        let mut sentinel_username = None;
        let mut sentinel_password = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "sentinel_username" => sentinel_username = non_empty(value.into_owned()),
                "sentinel_password" => sentinel_password = non_empty(value.into_owned()),
                // Not quoted: with an unencoded `?` in a password, the "name" is its tail.
                _ => {
                    return Err("unknown query parameter (known: sentinel_username, \
                                sentinel_password)"
                        .to_owned());
                }
            }
        }
        Ok(Self {
            tls,
            hosts,
            master_name,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
        })
    }

    /// The URL rebuilt for display: passwords replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        let scheme = if self.tls {
            SENTINEL_TLS_SCHEME
        } else {
            SENTINEL_SCHEME
        };
        let userinfo = redacted_userinfo(self.username.as_deref(), self.password.is_some());
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(host, port)| show_host(host, *port))
            .collect();
        let mut shown = format!(
            "{scheme}{userinfo}{}/{}",
            hosts.join(","),
            percent_encoding::utf8_percent_encode(&self.master_name, NAME_ESCAPES)
        );
        if self.db != 0 {
            shown.push_str(&format!("/{}", self.db));
        }
        let mut query = Vec::new();
        if let Some(user) = &self.sentinel_username {
            query.push(format!("sentinel_username={user}"));
        }
        if self.sentinel_password.is_some() {
            query.push("sentinel_password=***".to_owned());
        }
        if !query.is_empty() {
            shown.push('?');
            shown.push_str(&query.join("&"));
        }
        shown
    }

    /// The passwords in this spec, to scrub from error texts.
    pub(crate) fn secrets(&self) -> Vec<String> {
        [&self.password, &self.sentinel_password]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The group's identity for duplicate detection: the sentinels and the master's name.
    pub(crate) fn identity(&self) -> String {
        let mut hosts: Vec<String> = self.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        hosts.sort();
        format!(
            "sentinel:{}/{}/{}",
            hosts.join(","),
            self.master_name,
            self.db
        )
    }

    /// One client per sentinel, with the sentinels' credentials and the TLS settings.
    pub(crate) fn sentinel_clients(
        &self,
        tls: &TlsSettings,
    ) -> Result<Vec<redis::Client>, RedisError> {
        let credentials = RedisConnectionInfo::default();
        let credentials = match &self.sentinel_username {
            Some(user) => credentials.set_username(user),
            None => credentials,
        };
        let credentials = match &self.sentinel_password {
            Some(pass) => credentials.set_password(pass),
            None => credentials,
        };
        self.hosts
            .iter()
            .map(|(host, port)| server_client(self.tls, host, *port, credentials.clone(), tls))
            .collect()
    }

    /// A client for the master at `host:port` (as a sentinel named it), with the master's
    /// credentials and database.
    pub(crate) fn master_client(
        &self,
        host: &str,
        port: u16,
        tls: &TlsSettings,
    ) -> Result<redis::Client, RedisError> {
        let credentials = RedisConnectionInfo::default().set_db(self.db);
        let credentials = match &self.username {
            Some(user) => credentials.set_username(user),
            None => credentials,
        };
        let credentials = match &self.password {
            Some(pass) => credentials.set_password(pass),
            None => credentials,
        };
        server_client(self.tls, host, port, credentials, tls)
    }
}

/// A Redis Cluster as configured: its seed nodes and the credentials of every node.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClusterSpec {
    /// TLS to every node.
    pub(crate) tls: bool,
    /// The seed nodes, as host and port.
    pub(crate) seeds: Vec<(String, u16)>,
    /// The nodes' credentials.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The password as written in the URL (percent-encoded), when it differs.
    written_password: Option<String>,
}

impl ClusterSpec {
    /// Parses `redis+cluster://…`; the error is the reason, for `ConfigError::InvalidUrl`.
    /// Credentials are split off first, as for a Sentinel URL ([`one_reading`]).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = strip_scheme(url, CLUSTER_TLS_SCHEME) {
            (true, rest)
        } else if let Some(rest) = strip_scheme(url, CLUSTER_SCHEME) {
            (false, rest)
        } else {
            return Err("not a redis+cluster:// URL".to_owned());
        };
        one_reading(rest, |userinfo, after| {
            Self::parse_after(tls, userinfo, after)
        })
    }

    /// Parses what follows the credentials: `hosts[/]`.
    fn parse_after(tls: bool, userinfo: Option<&str>, rest: &str) -> Result<Self, String> {
        if rest.contains('#') {
            return Err(FRAGMENT_REFUSED.to_owned());
        }
        if rest.contains(['@', '?']) {
            return Err(
                "a `@` or `?` outside the credentials (characters such as / ? # @ in \
                        a password are written percent-encoded; a cluster URL takes no query)"
                    .to_owned(),
            );
        }
        let hosts = rest.strip_suffix('/').unwrap_or(rest);
        if hosts.contains('/') {
            return Err("a path: a cluster has one database (0), write \
                        redis+cluster://host:port[,host:port…]"
                .to_owned());
        }
        let (username, password, written_password) = match userinfo {
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let decoded = non_empty(decode(pass)?);
                let written =
                    (decoded.as_deref() != Some(pass) && !pass.is_empty()).then(|| pass.to_owned());
                (non_empty(decode(user)?), decoded, written)
            }
            None => (None, None, None),
        };
        let seeds = hosts
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, host)| parse_host(i, host, REDIS_PORT, "seed node"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tls,
            seeds,
            username,
            password,
            written_password,
        })
    }

    /// The URL rebuilt for display: the password replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        let scheme = if self.tls {
            CLUSTER_TLS_SCHEME
        } else {
            CLUSTER_SCHEME
        };
        let userinfo = redacted_userinfo(self.username.as_deref(), self.password.is_some());
        let hosts: Vec<String> = self
            .seeds
            .iter()
            .map(|(host, port)| show_host(host, *port))
            .collect();
        format!("{scheme}{userinfo}{}", hosts.join(","))
    }

    /// The password, as decoded and as written, to scrub from error texts.
    pub(crate) fn secrets(&self) -> Vec<String> {
        [&self.password, &self.written_password]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The cluster's identity for duplicate detection: its seeds.
    pub(crate) fn identity(&self) -> String {
        let mut hosts: Vec<String> = self.seeds.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        hosts.sort();
        format!("cluster:{}", hosts.join(","))
    }

    /// The connection information of the node at `host:port`, with the credentials (TLS
    /// parameters not applied yet).
    pub(crate) fn node_info(&self, host: &str, port: u16) -> Result<ConnectionInfo, RedisError> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let credentials = RedisConnectionInfo::default();
        let credentials = match &self.username {
            Some(user) => credentials.set_username(user),
            None => credentials,
        };
        let credentials = match &self.password {
            Some(pass) => credentials.set_password(pass),
            None => credentials,
        };
        Ok(format!("{scheme}://{}", show_host(host, port))
            .into_connection_info()?
            .set_redis_settings(credentials))
    }

    /// A client for the node at `host:port`, with the credentials and TLS settings.
    pub(crate) fn node_client(
        &self,
        host: &str,
        port: u16,
        tls: &TlsSettings,
    ) -> Result<redis::Client, RedisError> {
        direct_client(self.node_info(host, port)?, tls)
    }
}

impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("tls", &self.tls)
            .field("seeds", &self.seeds)
            .finish_non_exhaustive()
    }
}

/// `host:port`, with brackets around an IPv6 host.
/// The userinfo part of a redacted URL (`user:***@`, `:***@`, `user@` or nothing): the
/// password is never shown, only whether there is one.
fn redacted_userinfo(username: Option<&str>, has_password: bool) -> String {
    match (username, has_password) {
        (Some(user), true) => format!("{user}:***@"),
        (None, true) => ":***@".to_owned(),
        (Some(user), false) => format!("{user}@"),
        (None, false) => String::new(),
    }
}

pub(crate) fn show_host(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A client for one server of a Sentinel group: TCP (or TLS) to `host:port`, with
/// `TCP_NODELAY`, the given credentials and the TLS settings.
fn server_client(
    tls_on: bool,
    host: &str,
    port: u16,
    credentials: RedisConnectionInfo,
    tls: &TlsSettings,
) -> Result<redis::Client, RedisError> {
    let scheme = if tls_on { "rediss" } else { "redis" };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let info = format!("{scheme}://{host}:{port}")
        .into_connection_info()?
        .set_redis_settings(credentials);
    direct_client(info, tls)
}

impl std::fmt::Debug for SentinelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSpec")
            .field("tls", &self.tls)
            .field("hosts", &self.hosts)
            .field("master_name", &self.master_name)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// Where one member's connections go.
pub(crate) enum Target {
    /// A Redis server at a fixed address.
    Direct(redis::Client),
    /// The master a Sentinel group names at the time of connecting.
    Sentinel(SentinelGroup),
    /// A Redis Cluster: every request goes to the master of its key's slot.
    Cluster(Cluster),
}

impl Target {
    /// Whether the member is a Sentinel group.
    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// The failover watch of a Sentinel group.
    pub(crate) fn watch(&self) -> Option<&FailoverWatch> {
        match self {
            Self::Direct(_) | Self::Cluster(_) => None,
            Self::Sentinel(group) => Some(group.watch()),
        }
    }

    /// The member's identity for duplicate detection at build time.
    pub(crate) fn identity(&self) -> String {
        match self {
            Self::Direct(client) => {
                let info = client.get_connection_info();
                format!(
                    "{:?}/{}",
                    strip_tls(info.addr()),
                    info.redis_settings().db()
                )
            }
            Self::Sentinel(group) => group.spec().identity(),
            Self::Cluster(cluster) => cluster.spec().identity(),
        }
    }

    /// Whether connections speak TLS.
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            Self::Direct(client) => matches!(
                client.get_connection_info().addr(),
                ConnectionAddr::TcpTls { .. }
            ),
            Self::Sentinel(group) => group.spec().tls,
            Self::Cluster(cluster) => cluster.spec().tls,
        }
    }

    /// The cluster of a Redis Cluster member.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        match self {
            Self::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }
}

/// The address without its TLS parameters (which hold certificates), for identities.
fn strip_tls(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
        other => format!("{other:?}"),
    }
}

/// A direct member's client: the URL's connection information with `TCP_NODELAY`, and the
/// TLS settings when the URL is `rediss://`.
pub(crate) fn direct_client(
    info: ConnectionInfo,
    tls: &TlsSettings,
) -> Result<redis::Client, RedisError> {
    // TCP_NODELAY: a request queued behind an unacknowledged one must not wait for the
    // delayed ACK (~40 ms on Linux); every lock operation is a small write.
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    let info = info.set_tcp_settings(tcp);
    let addr = tls.apply_to_addr(info.addr().clone());
    tls.client(info.set_addr(addr))
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| url.get(scheme.len()..))
        .flatten()
}

fn decode(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "percent-encoded text is not UTF-8".to_owned())
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Reads `rest` (a URL after its scheme) once without credentials and once for each `@` in
/// it, taking what comes before that `@` as `user:password`; `parse` reads the part after
/// the credentials. Exactly one reading must parse: a password may then hold any printable
/// character, `/ ? # @ :` included, unencoded. None parsing gives the reason of the reading
/// at the last `@` (the likeliest meant), several the advice to percent-encode. No reason
/// quotes the URL: any part of it may be a password.
fn one_reading<T>(
    rest: &str,
    parse: impl Fn(Option<&str>, &str) -> Result<T, String>,
) -> Result<T, String> {
    let splits = std::iter::once(None).chain(rest.match_indices('@').map(|(at, _)| Some(at)));
    let mut parsed = None;
    let mut last_reason = String::new();
    for split in splits {
        let (userinfo, after) = match split {
            None => (None, rest),
            Some(at) => (
                rest.get(..at),
                rest.get(at.saturating_add(1)..).unwrap_or_default(),
            ),
        };
        match parse(userinfo, after) {
            Ok(value) if parsed.is_none() => parsed = Some(value),
            Ok(_) => {
                return Err("ambiguous: the URL parses in more than one way; write the \
                            characters / ? # @ of a password percent-encoded (%2F %3F %23 %40)"
                    .to_owned());
            }
            Err(reason) => last_reason = reason,
        }
    }
    parsed.ok_or(last_reason)
}

/// One member's URL taken apart before anything else reads it. The credentials are split
/// off first ([`one_reading`]), so no password is ever handed to a URL parser, shown, or
/// read as a host, path, query or fragment.
pub(crate) struct MemberUrl {
    /// The URL for display: every password replaced by `***`.
    pub(crate) shown: String,
    /// The passwords, as written and percent-decoded, to scrub from any text.
    pub(crate) secrets: Vec<String>,
    /// What the member is.
    pub(crate) kind: MemberKind,
}

/// What a member URL names.
pub(crate) enum MemberKind {
    /// A server at a fixed address (TCP, TLS or a Unix socket), credentials included.
    Direct(ConnectionInfo),
    /// A Sentinel group.
    Sentinel(SentinelSpec),
    /// A Redis Cluster.
    Cluster(ClusterSpec),
}

/// A member ready for a `Node`: its address as shown, where its connections go, and the
/// passwords to scrub from any error text.
pub(crate) struct Member {
    /// The URL, passwords replaced by `***`.
    pub(crate) address: std::sync::Arc<str>,
    /// A fixed server or a Sentinel group.
    pub(crate) target: Target,
    /// The member's passwords, as written and decoded.
    pub(crate) secrets: Vec<String>,
}

impl Member {
    /// Parses a member URL ([`MemberUrl::parse`]) and makes its client; never connects.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`], which quotes the URL redacted (only its scheme when it
    /// does not parse) and never a part of a password.
    pub(crate) fn new(
        url: &str,
        tls: &TlsSettings,
        node_timeout: std::time::Duration,
        connect_timeout: std::time::Duration,
    ) -> Result<Self, ConfigError> {
        let parsed = MemberUrl::parse(url).map_err(|reason| ConfigError::InvalidUrl {
            url: unparsed_url_shown(url),
            reason,
        })?;
        let invalid = |reason: String| ConfigError::InvalidUrl {
            url: parsed.shown.clone(),
            reason: crate::transport::redact::scrub(&reason, &parsed.secrets),
        };
        if parsed.is_tls() && !cfg!(feature = "tls") {
            return Err(invalid(
                "TLS URLs need the crate's `tls` feature (tokio-redlock = { features = \
                 [\"tls\"] })"
                    .to_owned(),
            ));
        }
        let target = match parsed.kind {
            MemberKind::Direct(info) => {
                Target::Direct(direct_client(info, tls).map_err(|e| invalid(e.to_string()))?)
            }
            MemberKind::Sentinel(spec) => Target::Sentinel(
                SentinelGroup::new(spec, tls, node_timeout, connect_timeout)
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            MemberKind::Cluster(spec) => Target::Cluster(
                Cluster::new(spec, tls, node_timeout, connect_timeout)
                    .map_err(|e| invalid(e.to_string()))?,
            ),
        };
        Ok(Self {
            address: parsed.shown.clone().into(),
            target,
            secrets: parsed.secrets.clone(),
        })
    }
}

/// Why a URL with a `#` after its credentials is refused.
const FRAGMENT_REFUSED: &str = "URL fragments are not accepted (`#insecure` would turn \
    certificate checks off): use `danger_accept_invalid_certificates` on the builder (a `#` \
    in a query value such as `pass=` is written %23; in `user:password@` it may stay as is)";

/// Schemes of a server at a fixed TCP address (the second of each pair speaks TLS).
const TCP_SCHEMES: [&str; 4] = ["redis", "rediss", "valkey", "valkeys"];
/// Schemes of a server on a Unix socket.
const UNIX_SCHEMES: [&str; 3] = ["redis+unix", "valkey+unix", "unix"];

impl MemberUrl {
    /// Parses a member URL; the error is the reason, which quotes nothing of the URL.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        if is_sentinel_url(raw) {
            let spec = SentinelSpec::parse(raw)?;
            return Ok(Self {
                shown: spec.redacted(),
                secrets: spec.secrets(),
                kind: MemberKind::Sentinel(spec),
            });
        }
        if is_cluster_url(raw) {
            let spec = ClusterSpec::parse(raw)?;
            return Ok(Self {
                shown: spec.redacted(),
                secrets: spec.secrets(),
                kind: MemberKind::Cluster(spec),
            });
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err(
                "not a URL: write redis://host:port (or rediss://, redis+unix://, \
                        redis+sentinel://)"
                    .to_owned(),
            );
        };
        let scheme = scheme.to_ascii_lowercase();
        if TCP_SCHEMES.contains(&scheme.as_str()) {
            one_reading(rest, |userinfo, after| tcp_member(&scheme, userinfo, after))
        } else if UNIX_SCHEMES.contains(&scheme.as_str()) {
            unix_member(&scheme, rest)
        } else {
            Err(
                "unknown scheme (known: redis, rediss, redis+unix, unix, redis+sentinel, \
                 rediss+sentinel, redis+cluster, rediss+cluster, valkey, valkeys, valkey+unix)"
                    .to_owned(),
            )
        }
    }

    /// Whether the member speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        match &self.kind {
            MemberKind::Direct(info) => matches!(info.addr(), ConnectionAddr::TcpTls { .. }),
            MemberKind::Sentinel(spec) => spec.tls,
            MemberKind::Cluster(spec) => spec.tls,
        }
    }
}

/// The URL shown when it cannot be parsed: its scheme at most, since any other part may be
/// a password.
pub(crate) fn unparsed_url_shown(raw: &str) -> String {
    match raw.split_once("://") {
        Some((scheme, _))
            if (1..=20).contains(&scheme.len())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            format!("{scheme}://*** (redacted: it does not parse as a URL)")
        }
        _ => "*** (redacted: it does not parse as a URL)".to_owned(),
    }
}

/// A password as written and percent-decoded (what the server compares), for scrubbing.
fn secret_forms(written: &str, decoded: &str) -> Vec<String> {
    let mut forms = vec![decoded.to_owned()];
    if written != decoded {
        forms.push(written.to_owned());
    }
    forms.retain(|s| !s.is_empty());
    forms
}

/// `scheme://[user[:password]@]host[:port][/db][?protocol=N]` read with `userinfo` as its
/// credentials and `after` as the rest.
fn tcp_member(scheme: &str, userinfo: Option<&str>, after: &str) -> Result<MemberUrl, String> {
    let bad_address = "the address is not host:port or [v6]:port (characters such as / ? # @ \
                       in a password are written percent-encoded)";
    if after.contains('#') {
        return Err(FRAGMENT_REFUSED.to_owned());
    }
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (address, tail) = after.split_at(end);
    if !is_host_port(address) {
        if let Some(port) = out_of_range_port(address) {
            return Err(format!("port {port} is out of range (1 to 65535)"));
        }
        return Err(bad_address.to_owned());
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let db = path.trim_matches('/');
    if !db.is_empty() && !db.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the path is not a database number (/0, /1, …)".to_owned());
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "protocol" || !["2", "3", "resp2", "resp3"].contains(&value) {
            return Err("unknown query parameter (known: protocol=2 or 3)".to_owned());
        }
    }
    let info = redis::IntoConnectionInfo::into_connection_info(format!("{scheme}://{after}"))
        .map_err(|e| e.to_string())?;
    let mut settings = info.redis_settings().clone();
    let mut secrets = Vec::new();
    let shown_userinfo = match userinfo {
        None => String::new(),
        Some(info) => {
            let (user, pass) = match info.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (info, None),
            };
            if let Some(user) = non_empty(decode(user)?) {
                settings = settings.set_username(user);
            }
            let shown_pass = match pass {
                Some(pass) => {
                    let decoded = decode(pass)?;
                    secrets = secret_forms(pass, &decoded);
                    if let Some(pass) = non_empty(decoded) {
                        settings = settings.set_password(pass);
                    }
                    ":***"
                }
                None => "",
            };
            format!("{user}{shown_pass}@")
        }
    };
    Ok(MemberUrl {
        shown: format!("{scheme}://{shown_userinfo}{after}"),
        secrets,
        kind: MemberKind::Direct(info.set_redis_settings(settings)),
    })
}

/// The port of `host:port` or `[v6]:port` when it is written in digits but is not a port
/// (0, or above 65535), to name in the message. No secret shows: the reason of a reading
/// that keeps no credentials is reported only for a URL without an `@` ([`one_reading`]
/// reports the last reading's), which has no password.
fn out_of_range_port(s: &str) -> Option<&str> {
    let (_, port) = s.rsplit_once(':')?;
    let digits = !port.is_empty() && port.len() <= 20 && port.bytes().all(|b| b.is_ascii_digit());
    (digits && !matches!(port.parse::<u16>(), Ok(p) if p > 0)).then_some(port)
}

/// Whether `s` is `host`, `host:port`, `[v6]` or `[v6]:port` (no `@`, no spaces, a port of
/// digits when a `:` is written).
fn is_host_port(s: &str) -> bool {
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let Some((host, rest)) = v6.split_once(']') else {
            return false;
        };
        if !host
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return false,
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return false;
        }
        (host, port)
    };
    !host.is_empty() && port.is_none_or(port_ok)
}

/// `scheme:///path[?db=N&user=U&pass=P&protocol=N]`. Values are percent-decoded (`+`
/// stays `+`; `&`, `%` and `#` in a password are written %26, %25, %23); a parameter that looks like a secret but is not `pass` is refused, so that a
/// misspelt password is neither shown nor silently dropped.
fn unix_member(scheme: &str, rest: &str) -> Result<MemberUrl, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query.contains('#') {
        return Err(FRAGMENT_REFUSED.to_owned());
    }
    if !path.starts_with('/') || path.contains(['#', '@']) {
        return Err(
            "write a Unix socket as redis+unix:///path/to/socket[?db=N&pass=…] (a \
                    password goes in `pass=`, percent-encoded where it holds & or %)"
                .to_owned(),
        );
    }
    let mut kept = Vec::new();
    let mut shown = Vec::new();
    let mut password = None;
    let mut secrets = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "pass" => {
                let decoded = decode(value)?;
                secrets.extend(secret_forms(value, &decoded));
                password = non_empty(decoded);
                shown.push("pass=***".to_owned());
            }
            "db" | "user" | "protocol"
                if value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._%".contains(&b)) =>
            {
                kept.push(pair);
                shown.push(pair.to_owned());
            }
            _ => {
                return Err(
                    "unknown or malformed query parameter (known: db, user, pass, \
                            protocol; a password goes in `pass=`)"
                        .to_owned(),
                );
            }
        }
    }
    let mut plain = format!("{scheme}://{path}");
    if !kept.is_empty() {
        plain.push('?');
        plain.push_str(&kept.join("&"));
    }
    let info = redis::IntoConnectionInfo::into_connection_info(plain.clone())
        .map_err(|e| e.to_string())?;
    let settings = match password {
        Some(pass) => info.redis_settings().clone().set_password(pass),
        None => info.redis_settings().clone(),
    };
    let mut shown_url = format!("{scheme}://{path}");
    if !shown.is_empty() {
        shown_url.push('?');
        shown_url.push_str(&shown.join("&"));
    }
    Ok(MemberUrl {
        shown: shown_url,
        secrets,
        kind: MemberKind::Direct(info.set_redis_settings(settings)),
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` (`default_port` when none is written); `index`
/// counts from 0; `what` names the address in messages ("sentinel", "seed node").
fn parse_host(
    index: usize,
    part: &str,
    default_port: u16,
    what: &str,
) -> Result<(String, u16), String> {
    // Not quoted: with an unencoded `/` in a password, the "address" is the password's head.
    let bad = || {
        format!(
            "{what} address {} is not host:port (characters such as / ? # @ in a password are \
             written percent-encoded)",
            index.saturating_add(1)
        )
    };
    if part.is_empty() {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = part.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or_else(bad)?;
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match part.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (part, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_split_on_commas_and_keep_sentinel_hosts_together() {
        assert_eq!(parse_server_list("  "), Ok(vec![]));
        assert_eq!(
            parse_server_list("redis://a:1,redis://b:2"),
            Ok(vec!["redis://a:1".to_owned(), "redis://b:2".to_owned()])
        );
        assert_eq!(
            parse_server_list(
                "redis+sentinel://s1:1,s2:2,[::1]:3/m?sentinel_password=x,redis+unix:///tmp/r.sock"
            ),
            Ok(vec![
                "redis+sentinel://s1:1,s2:2,[::1]:3/m?sentinel_password=x".to_owned(),
                "redis+unix:///tmp/r.sock".to_owned()
            ])
        );
        for bad in [
            "redis://a:1,,redis://b:2",
            "redis://a:1,",
            "localhost:6379",
            "redis://a:1,b:2",
        ] {
            assert!(
                matches!(parse_server_list(bad), Err(ConfigError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        // A host after a closed sentinel list is not a continuation.
        assert!(parse_server_list("redis+sentinel://s1:1/m,s2:2").is_err());
        let err = parse_server_list("redis://:hunter2@a:1,,x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_port_out_of_range_is_named() {
        for (url, port) in [
            ("redis://127.0.0.1:99999", "99999"),
            ("redis://:pw@h:0/0", "0"),
            ("rediss://[::1]:70000", "70000"),
        ] {
            let e = crate::LockManager::builder()
                .server(url)
                .build()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains(&format!("port {port} is out of range (1 to 65535)")),
                "{url}: {e}"
            );
            assert!(!e.contains("pw"), "{e}");
        }
        // Not digits: the general message, without echoing the address.
        let e = crate::LockManager::builder()
            .server("redis://h:x6379")
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("is not host:port"), "{e}");
    }

    #[test]
    fn cluster_urls_parse_with_credentials_and_default_ports() {
        let spec = ClusterSpec::parse("rediss+cluster://u:p%40ss@n1,[::1]:7001,n3:7002/")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(spec.tls);
        assert_eq!(
            spec.seeds,
            [
                ("n1".to_owned(), 6379),
                ("::1".to_owned(), 7001),
                ("n3".to_owned(), 7002)
            ]
        );
        assert_eq!(spec.username.as_deref(), Some("u"));
        assert_eq!(spec.password.as_deref(), Some("p@ss"));
        assert_eq!(spec.secrets(), ["p@ss", "p%40ss"]);
        assert_eq!(
            spec.redacted(),
            "rediss+cluster://u:***@n1:6379,[::1]:7001,n3:7002"
        );
        assert!(!format!("{spec:?}").contains("p@ss"));
        // A password with `/`, `@` and `,` unencoded still reads as the credentials.
        let spec = ClusterSpec::parse("redis+cluster://:a/b@c@n1:7000,n2:7001")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(spec.password.as_deref(), Some("a/b@c"));
        assert_eq!(spec.seeds.len(), 2);
        for bad in [
            "redis+cluster://",
            "redis+cluster://n1:7000/0",
            "redis+cluster://n1:7000?x=1",
            "redis+cluster://n1:x",
            "redis+cluster://n1:7000,,n2:7001",
            "redis+cluster://n1:7000#insecure",
        ] {
            assert!(ClusterSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_server_list("redis://a:1, redis+cluster://n1:7000,n2:7001 ,redis://c:3"),
            Ok(vec![
                "redis://a:1".to_owned(),
                "redis+cluster://n1:7000,n2:7001".to_owned(),
                "redis://c:3".to_owned()
            ])
        );
    }

    #[test]
    fn sentinel_urls_parse_with_credentials_db_and_defaults() {
        let spec = SentinelSpec::parse(
            "rediss+sentinel://u:p%40ss@s1,[::1]:26380/my%20master/3?sentinel_password=sp",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(spec.tls);
        assert_eq!(
            spec.hosts,
            [("s1".to_owned(), 26379), ("::1".to_owned(), 26380)]
        );
        assert_eq!(spec.master_name, "my master");
        assert_eq!(spec.db, 3);
        assert_eq!(spec.username.as_deref(), Some("u"));
        assert_eq!(spec.password.as_deref(), Some("p@ss"));
        assert_eq!(spec.sentinel_password.as_deref(), Some("sp"));
        assert_eq!(spec.secrets(), ["p@ss", "sp"]);
        assert!(!format!("{spec:?}").contains("p@ss"));
        for bad in [
            "redis+sentinel://s1:1",
            "redis+sentinel://s1:1/",
            "redis+sentinel://s1:x/m",
            "redis+sentinel://s1:1,/m",
            "redis+sentinel://s1:1/m/x",
            "redis+sentinel://s1:1/m/1/2",
            "redis+sentinel://s1:1/m?sentinel_pasword=typo",
        ] {
            assert!(SentinelSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
