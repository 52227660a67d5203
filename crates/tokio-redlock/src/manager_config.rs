//! The builder's settings as plain data, for configuration files: `Deserialize` and
//! `Serialize` with the `serde` feature, durations written the `humantime` way (`"10s"`,
//! `"200ms"`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DRIFT_FACTOR, DEFAULT_NODE_TIMEOUT, DEFAULT_RETRY_COUNT,
    DEFAULT_RETRY_DELAY, DEFAULT_RETRY_JITTER, DEFAULT_TTL, LockManagerBuilder,
};
use crate::error::ConfigError;
use crate::manager::LockManager;
#[cfg(feature = "serde")]
use crate::transport::member::parse_server_list;
use crate::transport::redact::redact_url;

/// Every setting of a [`LockManagerBuilder`], as plain data: what a configuration file holds.
///
/// Each field has the builder method of the same name's meaning and default. With the
/// `serde` feature it derives `Deserialize` and `Serialize`; missing fields take their
/// defaults, unknown fields are errors (a typo must not fall back to a default silently),
/// durations are `humantime` strings such as `"10s"`, `"1m 30s"`, `"200ms"`, and
/// `servers` is a list of URLs (taken verbatim) or one comma-separated string (split as
/// `REDLOCK_SERVERS` is).
///
/// The struct is `#[non_exhaustive]` (settings will be added): outside the crate, start from
/// [`LockManagerConfig::default()`] and assign fields, or deserialize it.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "serde")] {
/// let config: tokio_redlock::LockManagerConfig = serde_json::from_str(r#"{
///     "servers": "redis://127.0.0.1:6379,redis://127.0.0.1:6380,redis://127.0.0.1:6381",
///     "ttl": "30s",
///     "node_timeout": "100ms"
/// }"#)?;
/// let manager = config.build()?;
/// assert_eq!(manager.quorum(), 2);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct LockManagerConfig {
    /// The quorum members, one URL each: see [`LockManagerBuilder::servers`]. Default: none
    /// (required).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "servers::deserialize"))]
    pub servers: Vec<String>,
    /// See [`LockManagerBuilder::ttl`]. Default: 10 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub ttl: Duration,
    /// See [`LockManagerBuilder::retry_count`]. Default: 3.
    pub retry_count: u32,
    /// See [`LockManagerBuilder::retry_delay`]. Default: 200 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub retry_delay: Duration,
    /// See [`LockManagerBuilder::retry_jitter`]. Default: 100 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub retry_jitter: Duration,
    /// See [`LockManagerBuilder::drift_factor`]. Default: 0.01.
    pub drift_factor: f64,
    /// See [`LockManagerBuilder::node_timeout`]. Default: 50 ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub node_timeout: Duration,
    /// See [`LockManagerBuilder::connect_timeout`]. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub connect_timeout: Duration,
    /// See [`LockManagerBuilder::key_prefix`] (text here). Default: empty.
    pub key_prefix: String,
    /// See [`LockManagerBuilder::fencing`]. Default: `false`.
    pub fencing: bool,
    /// See [`LockManagerBuilder::notifications`]. Default: `true`.
    pub notifications: bool,
    /// A PEM file for `LockManagerBuilder::tls_root_certificate` (feature `tls`), read by
    /// [`into_builder`](Self::into_builder). Default: none.
    pub tls_root_certificate: Option<PathBuf>,
    /// A PEM certificate chain for `LockManagerBuilder::tls_client_certificate` (feature
    /// `tls`); needs [`tls_client_key`](Self::tls_client_key). Default: none.
    pub tls_client_certificate: Option<PathBuf>,
    /// The PEM private key of [`tls_client_certificate`](Self::tls_client_certificate).
    /// Default: none.
    pub tls_client_key: Option<PathBuf>,
    /// `LockManagerBuilder::danger_accept_invalid_certificates` (feature `tls`): **no
    /// certificate verification**. Default: `false`.
    pub danger_accept_invalid_certificates: bool,
}

impl Default for LockManagerConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            ttl: DEFAULT_TTL,
            retry_count: DEFAULT_RETRY_COUNT,
            retry_delay: DEFAULT_RETRY_DELAY,
            retry_jitter: DEFAULT_RETRY_JITTER,
            drift_factor: DEFAULT_DRIFT_FACTOR,
            node_timeout: DEFAULT_NODE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            key_prefix: String::new(),
            fencing: false,
            notifications: true,
            tls_root_certificate: None,
            tls_client_certificate: None,
            tls_client_key: None,
            danger_accept_invalid_certificates: false,
        }
    }
}

impl fmt::Debug for LockManagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<String> = self.servers.iter().map(|s| redact_url(s)).collect();
        f.debug_struct("LockManagerConfig")
            .field("servers", &servers)
            .field("ttl", &self.ttl)
            .field("retry_count", &self.retry_count)
            .field("retry_delay", &self.retry_delay)
            .field("retry_jitter", &self.retry_jitter)
            .field("drift_factor", &self.drift_factor)
            .field("node_timeout", &self.node_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("key_prefix", &self.key_prefix)
            .field("fencing", &self.fencing)
            .field("notifications", &self.notifications)
            .field("tls_root_certificate", &self.tls_root_certificate)
            .field("tls_client_certificate", &self.tls_client_certificate)
            .field("tls_client_key", &self.tls_client_key)
            .field(
                "danger_accept_invalid_certificates",
                &self.danger_accept_invalid_certificates,
            )
            .finish()
    }
}

impl LockManagerConfig {
    /// A builder with these settings; certificate files are read here.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TlsFile`] when a certificate or key file cannot be read;
    /// [`ConfigError::TlsClientIdentityIncomplete`] for a certificate without its key or the
    /// reverse; [`ConfigError::TlsFeatureDisabled`] when TLS settings are given but the
    /// crate was built without the `tls` feature. Everything else is checked by
    /// [`LockManagerBuilder::build`].
    pub fn into_builder(self) -> Result<LockManagerBuilder, ConfigError> {
        let builder = LockManager::builder()
            .servers(self.servers)
            .ttl(self.ttl)
            .retry_count(self.retry_count)
            .retry_delay(self.retry_delay)
            .retry_jitter(self.retry_jitter)
            .drift_factor(self.drift_factor)
            .node_timeout(self.node_timeout)
            .connect_timeout(self.connect_timeout)
            .key_prefix(self.key_prefix.as_bytes())
            .fencing(self.fencing)
            .notifications(self.notifications);
        let identity = match (&self.tls_client_certificate, &self.tls_client_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(ConfigError::TlsClientIdentityIncomplete),
        };
        let wants_tls = self.tls_root_certificate.is_some()
            || identity.is_some()
            || self.danger_accept_invalid_certificates;
        if !wants_tls {
            return Ok(builder);
        }
        #[cfg(feature = "tls")]
        {
            let mut builder =
                builder.danger_accept_invalid_certificates(self.danger_accept_invalid_certificates);
            if let Some(path) = &self.tls_root_certificate {
                builder = builder.tls_root_certificate(read("root certificate", path)?);
            }
            if let Some((cert, key)) = identity {
                builder = builder.tls_client_certificate(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                );
            }
            Ok(builder)
        }
        #[cfg(not(feature = "tls"))]
        Err(ConfigError::TlsFeatureDisabled)
    }

    /// [`into_builder`](Self::into_builder) then [`build`](LockManagerBuilder::build).
    ///
    /// # Errors
    ///
    /// Those of both.
    pub fn build(self) -> Result<LockManager, ConfigError> {
        self.into_builder()?.build()
    }
}

#[cfg(feature = "tls")]
fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::TlsFile {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `servers` as a list of URLs or one comma-separated string.
#[cfg(feature = "serde")]
mod servers {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Servers {
        List(Vec<String>),
        One(String),
    }

    /// A list is taken entry by entry, verbatim (a URL may hold an unencoded comma); one
    /// string is split as `REDLOCK_SERVERS` is.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match Servers::deserialize(d)? {
            Servers::List(list) => Ok(list),
            Servers::One(list) => super::parse_server_list(&list).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_builder() {
        let c = LockManagerConfig::default();
        assert_eq!(c.ttl, DEFAULT_TTL);
        assert_eq!(c.retry_count, 3);
        assert!(c.notifications && !c.fencing);
        assert!(!c.danger_accept_invalid_certificates);
    }

    #[test]
    fn an_incomplete_client_identity_is_refused() {
        let c = LockManagerConfig {
            servers: vec!["rediss://127.0.0.1:1".to_owned()],
            tls_client_certificate: Some("cert.pem".into()),
            ..LockManagerConfig::default()
        };
        assert_eq!(
            c.into_builder().err(),
            Some(ConfigError::TlsClientIdentityIncomplete)
        );
    }

    #[test]
    fn debug_redacts_passwords() {
        let c = LockManagerConfig {
            servers: vec!["redis://:hunter2@127.0.0.1:1".to_owned()],
            ..LockManagerConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
