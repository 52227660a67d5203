//! Settings, their defaults, and the builder that validates them.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;
use crate::manager::LockManager;
use crate::transport::member::{SERVERS_ENV, parse_server_list};
use crate::transport::node::{Node, NodeOptions, ServerIds};
use crate::transport::redact::redact_url;
use crate::transport::tls::TlsSettings;

/// Default lock TTL: 10 s, as aioredlock and the Redlock spec's examples.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Default number of retries after the first attempt: 3 (so 4 attempts in all).
pub const DEFAULT_RETRY_COUNT: u32 = 3;
/// Default base delay between attempts: 200 ms.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Default jitter around the retry delay: ±100 ms, so a sleep lies in [100 ms, 300 ms).
pub const DEFAULT_RETRY_JITTER: Duration = Duration::from_millis(100);
/// Default clock drift factor: 0.01 (1 % of the TTL, plus 2 ms).
pub const DEFAULT_DRIFT_FACTOR: f64 = 0.01;
/// Default per-master budget for one request: 50 ms (the Redlock spec suggests 5–50 ms for
/// a 10 s TTL).
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(50);
/// Default budget for opening a connection to one master: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest TTL accepted: 100 × 365 days. Larger values are rejected, never wrapped.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// The longest sleep between two attempts of one acquisition the builder accepts: the retry
/// delay plus its jitter, at most 1 minute. A longer sleep only keeps the caller waiting
/// after the resource is free (an acquisition with a retry count listens to no release);
/// to wait long for a lock, use [`LockRequest::wait`](crate::LockRequest::wait).
pub const MAX_RETRY_SLEEP: Duration = Duration::from_secs(60);

/// Validated settings shared by every operation.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) ttl: Duration,
    pub(crate) retry_count: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) retry_jitter: Duration,
    pub(crate) drift_factor: f64,
    pub(crate) node_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) key_prefix: Arc<[u8]>,
    pub(crate) fencing: bool,
    pub(crate) notifications: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("ttl", &self.ttl)
            .field("retry_count", &self.retry_count)
            .field("retry_delay", &self.retry_delay)
            .field("retry_jitter", &self.retry_jitter)
            .field("drift_factor", &self.drift_factor)
            .field("node_timeout", &self.node_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field(
                "key_prefix",
                &crate::keys::Printable(&self.key_prefix).to_string(),
            )
            .field("fencing", &self.fencing)
            .field("notifications", &self.notifications)
            .finish()
    }
}

/// Builds a [`LockManager`]. Every setting has a default; only the servers are required.
///
/// `build()` validates everything and never connects: masters are reached on first use, so a
/// master that is down at start-up is not an error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio_redlock::LockManager;
///
/// let manager = LockManager::builder()
///     .servers(["redis://127.0.0.1:6379", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"])
///     .ttl(Duration::from_secs(30))
///     .retry_count(5)
///     .node_timeout(Duration::from_millis(100))
///     .build()?;
/// assert_eq!(manager.quorum(), 2);
///
/// // Bad settings are reported by `build`, with passwords redacted.
/// let err = LockManager::builder()
///     .server("redis://:hunter2@127.0.0.1:6379")
///     .ttl(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert!(!err.to_string().contains("hunter2"));
/// # Ok::<(), tokio_redlock::ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct LockManagerBuilder {
    servers: Vec<String>,
    /// Every other setting, validated by `build()`.
    settings: Settings,
    tls: TlsSettings,
    /// A server list that did not parse, reported by `build()`.
    list_error: Option<ConfigError>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            retry_count: DEFAULT_RETRY_COUNT,
            retry_delay: DEFAULT_RETRY_DELAY,
            retry_jitter: DEFAULT_RETRY_JITTER,
            drift_factor: DEFAULT_DRIFT_FACTOR,
            node_timeout: DEFAULT_NODE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            key_prefix: Arc::from(&b""[..]),
            fencing: false,
            notifications: true,
        }
    }
}

impl fmt::Debug for LockManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<String> = self.servers.iter().map(|s| redact_url(s)).collect();
        f.debug_struct("LockManagerBuilder")
            .field("servers", &servers)
            .field("settings", &self.settings)
            .field("tls", &self.tls)
            .finish()
    }
}

impl LockManagerBuilder {
    /// Adds quorum members, one URL each:
    ///
    /// - `redis://[user:password@]host:port[/db]` — a master at a fixed address;
    /// - `rediss://…` — the same over TLS (feature `tls`, which adds the builder's
    ///   `tls_root_certificate`, `tls_client_certificate` and
    ///   `danger_accept_invalid_certificates`);
    /// - `redis+unix:///path[?db=N&pass=…]` or `unix:///path` — a Unix socket;
    /// - `redis+sentinel://[user:password@]host:port[,host:port…]/<master-name>[/<db>]
    ///   [?sentinel_username=U&sentinel_password=P]` — **one** member whose master is
    ///   whichever server the sentinels name (`rediss+sentinel://` for TLS). `user:password`
    ///   are the master's; the `sentinel_*` parameters are the sentinels' own.
    ///
    /// Use independent masters (no replication between them); a quorum is `N/2 + 1`. Odd
    /// counts (1, 3, 5) make the most of each server: with 3 masters one may fail, with 5 two.
    ///
    /// A Sentinel group is one member: its replicas add nothing to the quorum, and a failover
    /// can lose the latest lock (replication is asynchronous, so a promoted replica may not
    /// have the key yet — another client can then take the same resource on that member).
    /// That is Redlock's "amnesia" case: a lock held on exactly a bare quorum that included
    /// the member can then be taken again (a lock held on every member survives). Independent
    /// masters without replication are the setting Redlock's argument is made for; keep
    /// Sentinel members a minority and use fencing tokens — see the README's "What a failover
    /// costs".
    ///
    /// Default: none (required).
    pub fn servers<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.servers.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Adds one master. See [`servers`](Self::servers).
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.push(url.into());
        self
    }

    /// Adds the members of a comma-separated list, as in `REDLOCK_SERVERS`:
    /// `redis://a:6379,redis://b:6379,redis+sentinel://s1:26379,s2:26379/mymaster`. Parsed by
    /// [`parse_server_list`](crate::parse_server_list); a list that does not parse is reported
    /// by [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = tokio_redlock::LockManager::builder()
    ///     .server_list("redis://127.0.0.1:6379, redis://127.0.0.1:6380, redis://127.0.0.1:6381")
    ///     .build()?;
    /// assert_eq!(manager.quorum(), 2);
    /// # Ok::<(), tokio_redlock::ConfigError>(())
    /// ```
    pub fn server_list(mut self, list: &str) -> Self {
        match parse_server_list(list) {
            Ok(members) => self.servers.extend(members),
            Err(e) => self.list_error = Some(e),
        }
        self
    }

    /// A builder with the members named by the `REDLOCK_SERVERS` environment variable (a
    /// comma-separated list, see [`server_list`](Self::server_list)) and every other setting
    /// at its default. The `redlock` CLI reads the same variable.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEnv`] when the variable is unset, empty or not UTF-8;
    /// [`ConfigError::InvalidUrl`] when the list does not parse.
    pub fn from_env() -> Result<Self, ConfigError> {
        let list = std::env::var(SERVERS_ENV).unwrap_or_default();
        let members = parse_server_list(&list)?;
        if members.is_empty() {
            return Err(ConfigError::MissingEnv(SERVERS_ENV));
        }
        Ok(Self::default().servers(members))
    }

    /// Trusts this PEM root certificate (one or more `BEGIN CERTIFICATE` blocks) for TLS
    /// members instead of the system's roots: a private CA, or a managed service's own.
    /// Applies to every `rediss://` and `rediss+sentinel://` member.
    /// Default: the system's roots (`rustls-native-certs`).
    ///
    /// Needs the crate's `tls` feature.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_certificate = Some(pem.into());
        self
    }

    /// Presents this PEM certificate chain and PEM private key to TLS members that require
    /// client authentication (mutual TLS, `tls-auth-clients yes`). Default: none.
    ///
    /// Needs the crate's `tls` feature.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_identity = Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// **Turns off verification of the servers' TLS certificates**: any certificate for
    /// any name is accepted, so anyone on the path can impersonate a master and grant or
    /// steal locks. For tests against self-signed servers only; prefer
    /// [`tls_root_certificate`](Self::tls_root_certificate). This is the only way to turn
    /// verification off (a `#insecure` URL fragment is refused), and `build()` logs a
    /// warning when it is on. Default: `false`.
    ///
    /// Needs the crate's `tls` feature.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn danger_accept_invalid_certificates(mut self, accept: bool) -> Self {
        self.tls.danger_accept_invalid_certificates = accept;
        self
    }

    /// Lifetime of the lock keys, sent as `PX` milliseconds; a lock's validity is this minus
    /// the time acquisition took minus the drift. Whole milliseconds, from 1 ms up to
    /// [`MAX_TTL`]. Default: [`DEFAULT_TTL`] (10 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// Retries after a failed first attempt when the resource is held elsewhere or a quorum
    /// agreed too late; `0` means one attempt only. Attempts that fail because a quorum is
    /// unreachable are not retried. Default: [`DEFAULT_RETRY_COUNT`] (3).
    pub fn retry_count(mut self, retries: u32) -> Self {
        self.settings.retry_count = retries;
        self
    }

    /// Base sleep between attempts. With its jitter at most [`MAX_RETRY_SLEEP`] (1 min).
    /// Default: [`DEFAULT_RETRY_DELAY`] (200 ms).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.settings.retry_delay = delay;
        self
    }

    /// Random spread around the retry delay: each sleep is drawn uniformly from
    /// `[delay − jitter, delay + jitter)`, so contending clients fall out of step. A jitter
    /// larger than the delay is allowed; sleeps below zero are then zero. The delay plus the
    /// jitter is at most [`MAX_RETRY_SLEEP`] (1 min).
    /// Default: [`DEFAULT_RETRY_JITTER`] (±100 ms).
    pub fn retry_jitter(mut self, jitter: Duration) -> Self {
        self.settings.retry_jitter = jitter;
        self
    }

    /// Allowance for clock-rate differences between this host and the masters: the drift is
    /// `ttl × factor + 2 ms`, subtracted from every validity. Must lie in `[0, 1)`.
    /// Default: [`DEFAULT_DRIFT_FACTOR`] (0.01).
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.settings.drift_factor = factor;
        self
    }

    /// Budget for one request to one master; a master that does not answer in time counts
    /// as failed for that round. Must be below the TTL. Default: [`DEFAULT_NODE_TIMEOUT`]
    /// (50 ms).
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.settings.node_timeout = timeout;
        self
    }

    /// Budget for opening a connection to one master (TCP connect, `HELLO`/`AUTH`), kept apart
    /// from the per-request budget so a first connection is not judged by it. A failed
    /// connection is retried on the next request. Default: [`DEFAULT_CONNECT_TIMEOUT`] (1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Bytes put before every resource name to form its key. Default: empty, so the key is
    /// the resource name itself and locks interoperate with other Redlock libraries.
    pub fn key_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.settings.key_prefix = prefix.as_ref().into();
        self
    }

    /// Issue a [`FencingToken`](crate::FencingToken) with every lock: a per-resource number,
    /// agreed by a majority, that grows with every acquisition. It costs nothing extra in the
    /// common case (the counter is incremented in the acquire script) and one more round trip
    /// when the masters' counters have drifted apart. Each resource then has a counter key
    /// `{<key>}:fence` (or `<key>:fence` when the key has a hash tag) that never expires.
    /// Keys of those forms are reserved whether fencing is on or not: a resource whose key
    /// is another's counter is refused with [`LockError::ReservedKey`](crate::LockError::ReservedKey).
    /// For the guarantee, run the masters with `appendonly yes` and `appendfsync always`.
    /// Default: `false`.
    pub fn fencing(mut self, on: bool) -> Self {
        self.settings.fencing = on;
        self
    }

    /// Wake waiting acquisitions (`wait`, `wait_forever`) on release notifications: the release
    /// script publishes on a per-resource channel, and a waiter subscribes (one subscriber connection per master,
    /// opened on first need and shared) so that a released lock changes hands in about one
    /// round trip instead of a retry delay. Off, waiters poll: they sleep the retry delay or
    /// until the holder's keys expire. Default: `true`.
    ///
    /// With Redis ACLs, the users need channel permission on `redlock:released:*` (e.g.
    /// `&redlock:released:*`) to publish and subscribe; without it releases still work, and
    /// waiters fall back to polling.
    pub fn notifications(mut self, on: bool) -> Self {
        self.settings.notifications = on;
        self
    }

    /// Validates the settings and creates the manager. Does not connect.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for: no server; a URL or server list that does not parse (shown
    /// redacted); a TLS URL without the `tls` feature, or with a `#insecure` fragment; TLS
    /// settings with no TLS member, or certificates and keys that are not PEM; the same master twice; a TTL below 1 ms or above
    /// [`MAX_TTL`]; a drift factor outside `[0, 1)`; a zero node or connect timeout; a node
    /// timeout not below the TTL; a retry delay plus jitter above [`MAX_RETRY_SLEEP`].
    pub fn build(self) -> Result<LockManager, ConfigError> {
        if let Some(e) = self.list_error {
            return Err(e);
        }
        if self.servers.is_empty() {
            return Err(ConfigError::NoServers);
        }
        ConfigError::check_ttl(self.settings.ttl)?;
        if !(self.settings.drift_factor.is_finite()
            && (0.0..1.0).contains(&self.settings.drift_factor))
        {
            return Err(ConfigError::DriftFactor(self.settings.drift_factor));
        }
        if self.settings.node_timeout.is_zero() {
            return Err(ConfigError::ZeroNodeTimeout);
        }
        let (delay, jitter) = (self.settings.retry_delay, self.settings.retry_jitter);
        if delay
            .checked_add(jitter)
            .is_none_or(|sleep| sleep > MAX_RETRY_SLEEP)
        {
            return Err(ConfigError::RetrySleepTooLong {
                delay,
                jitter,
                max: MAX_RETRY_SLEEP,
            });
        }
        if self.settings.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        if crate::quorum::lease(self.settings.ttl, self.settings.drift_factor).is_none() {
            return Err(ConfigError::TtlNotAboveDrift {
                ttl: self.settings.ttl,
                drift: crate::quorum::drift(self.settings.ttl, self.settings.drift_factor),
            });
        }
        if self.settings.node_timeout >= self.settings.ttl {
            return Err(ConfigError::NodeTimeoutNotBelowTtl {
                node_timeout: self.settings.node_timeout,
                ttl: self.settings.ttl,
            });
        }
        self.tls.validate()?;
        let mut seen = HashSet::new();
        let mut nodes = Vec::with_capacity(self.servers.len());
        let servers = Arc::new(ServerIds::default());
        let options = NodeOptions {
            node_timeout: self.settings.node_timeout,
            connect_timeout: self.settings.connect_timeout,
            tls: &self.tls,
        };
        for (index, url) in self.servers.iter().enumerate() {
            let node = Node::new(url, index, Arc::clone(&servers), &options)?;
            if !seen.insert(node.identity()) {
                return Err(ConfigError::DuplicateServer(node.address().to_string()));
            }
            nodes.push(Arc::new(node));
        }
        if let [only] = nodes.as_slice()
            && only.is_cluster()
        {
            tracing::warn!(
                member = %only.address(),
                "one Redis Cluster is the only member: a failover inside it can promote a \
                 replica that missed the latest lock (asynchronous replication), and another \
                 client may then take it; use three independent clusters (or masters), and \
                 fencing tokens"
            );
        }
        if self.tls.is_configured() && !nodes.iter().any(|n| n.is_tls()) {
            return Err(ConfigError::TlsWithoutTlsServer);
        }
        #[cfg(feature = "tls")]
        if self.tls.danger_accept_invalid_certificates {
            tracing::warn!(
                "danger_accept_invalid_certificates is on: TLS certificates are NOT verified, \
                 anyone on the network path can impersonate a master"
            );
        }
        let settings = self.settings;
        Ok(LockManager::from_parts(settings, nodes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> LockManagerBuilder {
        LockManager::builder().server("redis://127.0.0.1:1")
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        assert_eq!(
            LockManager::builder().build().err(),
            Some(ConfigError::NoServers)
        );
        assert_eq!(
            one().ttl(Duration::ZERO).build().err(),
            Some(ConfigError::TtlTooSmall(Duration::ZERO))
        );
        assert!(matches!(
            one().ttl(MAX_TTL + Duration::from_millis(1)).build().err(),
            Some(ConfigError::TtlTooLarge { .. })
        ));
        for f in [-0.1, 1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                one().drift_factor(f).build().err(),
                Some(ConfigError::DriftFactor(_))
            ));
        }
        assert!(matches!(
            one().node_timeout(Duration::from_secs(10)).build().err(),
            Some(ConfigError::NodeTimeoutNotBelowTtl { .. })
        ));
        assert_eq!(
            one().node_timeout(Duration::ZERO).build().err(),
            Some(ConfigError::ZeroNodeTimeout)
        );
        assert!(matches!(
            LockManager::builder().server("not a url").build().err(),
            Some(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            one().server("redis://127.0.0.1:1/").build().err(),
            Some(ConfigError::DuplicateServer(_))
        ));
    }

    #[test]
    fn urls_with_passwords_are_redacted_everywhere() {
        let b = LockManager::builder().server("redis://user:hunter2@127.0.0.1:1");
        assert!(!format!("{b:?}").contains("hunter2"));
        let m = b.clone().build().unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!format!("{m:?}").contains("hunter2"));
        let e = b
            .server("redis://user:hunter2@127.0.0.1:1")
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("***") && !e.contains("hunter2"), "{e}");
        let e = LockManager::builder()
            .server("redis://user:hunter2@[::1")
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_inputs_must_be_pem_of_the_right_kind() {
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let (cert_pem, key_pem) = (ca.cert.pem(), ca.signing_key.serialize_pem());
        let tls = || LockManager::builder().server("rediss://127.0.0.1:1");
        assert!(tls().tls_root_certificate(cert_pem.clone()).build().is_ok());
        assert!(
            tls()
                .tls_client_certificate(cert_pem.clone(), key_pem.clone())
                .build()
                .is_ok()
        );
        let der = ca.cert.der().to_vec();
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()])
            .unwrap_or_else(|e| unreachable!("{e}"));
        for (builder, what) in [
            (
                tls().tls_client_certificate(cert_pem.clone(), other.signing_key.serialize_pem()),
                "client certificate",
            ),
            (tls().tls_root_certificate(der), "root certificate"),
            (tls().tls_root_certificate("hello"), "root certificate"),
            (
                tls().tls_client_certificate(cert_pem.clone(), cert_pem.clone()),
                "client key",
            ),
            (
                tls().tls_client_certificate(key_pem.clone(), key_pem),
                "client certificate",
            ),
        ] {
            match builder.build() {
                Err(ConfigError::InvalidPem { what: w, .. }) => assert_eq!(w, what),
                other => panic!("expected InvalidPem for the {what}, got {other:?}"),
            }
        }
        assert_eq!(
            one().tls_root_certificate(cert_pem).build().err(),
            Some(ConfigError::TlsWithoutTlsServer)
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let b = LockManagerBuilder::default();
        assert_eq!(b.settings.ttl, Duration::from_secs(10));
        assert_eq!(b.settings.retry_count, 3);
        assert_eq!(b.settings.retry_delay, Duration::from_millis(200));
        assert_eq!(b.settings.retry_jitter, Duration::from_millis(100));
        assert!((b.settings.drift_factor - 0.01).abs() < f64::EPSILON);
        assert_eq!(b.settings.node_timeout, Duration::from_millis(50));
        assert!(b.settings.key_prefix.is_empty());
    }
}
