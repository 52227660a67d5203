//! TLS settings for `rediss://` and `rediss+sentinel://` members (feature `tls`): a custom
//! root certificate, a client certificate for mutual TLS, and the loudly named switch that
//! turns verification off. Without the feature the settings are empty and TLS URLs are
//! refused by `build()`.

use redis::{ConnectionAddr, ConnectionInfo, RedisError};

use crate::error::ConfigError;

/// The TLS settings of one manager, applied to its TLS members.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// PEM root certificate(s) trusted instead of the system's roots.
    #[cfg(feature = "tls")]
    pub(crate) root_certificate: Option<Vec<u8>>,
    /// PEM client certificate chain and private key, for mutual TLS.
    #[cfg(feature = "tls")]
    pub(crate) client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate. Only ever set by
    /// `LockManagerBuilder::danger_accept_invalid_certificates`.
    #[cfg(feature = "tls")]
    pub(crate) danger_accept_invalid_certificates: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("TlsSettings");
        #[cfg(feature = "tls")]
        {
            d.field("root_certificate", &self.root_certificate.is_some())
                .field("client_identity", &self.client_identity.is_some())
                .field(
                    "danger_accept_invalid_certificates",
                    &self.danger_accept_invalid_certificates,
                );
        }
        d.finish()
    }
}

impl TlsSettings {
    /// Whether anything was configured (a custom root, a client identity, or no verification).
    pub(crate) fn is_configured(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.root_certificate.is_some()
                || self.client_identity.is_some()
                || self.danger_accept_invalid_certificates
        }
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Checks that the PEM inputs hold what they should: at least one certificate in the
    /// root and in the client chain, and a private key, so that a wrong file is reported by
    /// `build()` rather than as an untrusted certificate at the first handshake.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        #[cfg(feature = "tls")]
        {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let certificates = |what: &'static str, pem: &[u8]| {
                let mut found = 0usize;
                for cert in CertificateDer::pem_slice_iter(pem) {
                    cert.map_err(|e| ConfigError::InvalidPem {
                        what,
                        reason: e.to_string(),
                    })?;
                    found = found.saturating_add(1);
                }
                if found == 0 {
                    return Err(ConfigError::InvalidPem {
                        what,
                        reason: "no `BEGIN CERTIFICATE` block".to_owned(),
                    });
                }
                Ok(())
            };
            if let Some(root) = &self.root_certificate {
                certificates("root certificate", root)?;
            }
            if let Some((cert, key)) = &self.client_identity {
                certificates("client certificate", cert)?;
                let key =
                    PrivateKeyDer::from_pem_slice(key).map_err(|e| ConfigError::InvalidPem {
                        what: "client key",
                        reason: e.to_string(),
                    })?;
                // What rustls itself will refuse at the first handshake (a key that does not
                // match the certificate, an X.509 v1 certificate), refused here instead.
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError::InvalidPem {
                        what: "client certificate",
                        reason: e.to_string(),
                    })?;
                install_ring_provider();
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ConfigError::InvalidPem {
                        what: "client certificate",
                        reason: format!(
                            "{e} (client certificates must be X.509 v3, and the key must be \
                             the certificate's)"
                        ),
                    })?;
            }
        }
        Ok(())
    }

    /// Sets the address's verification flag from the settings (never from the URL).
    pub(crate) fn apply_to_addr(&self, addr: ConnectionAddr) -> ConnectionAddr {
        match addr {
            #[cfg(feature = "tls")]
            ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: self.danger_accept_invalid_certificates,
                tls_params,
            },
            other => other,
        }
    }

    /// A client for a direct member.
    pub(crate) fn client(&self, info: ConnectionInfo) -> Result<redis::Client, RedisError> {
        #[cfg(feature = "tls")]
        if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            install_ring_provider();
            if let Some(certificates) = self.certificates() {
                return redis::Client::build_with_tls(info, certificates);
            }
        }
        redis::Client::open(info)
    }

    #[cfg(feature = "tls")]
    pub(crate) fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.root_certificate.is_none() && self.client_identity.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self
                .client_identity
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.root_certificate.clone(),
        })
    }
}

/// Makes rustls's `ring` provider the process default, unless the application installed one
/// already (then that one is used).
#[cfg(feature = "tls")]
fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS cause of a connection error, if it has one: the rustls error in its source
/// chain (an unknown issuer, a name mismatch, a refused client certificate), else `None`.
pub(crate) fn tls_cause(e: &RedisError) -> Option<String> {
    #[cfg(feature = "tls")]
    {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(tls) = s.downcast_ref::<rustls::Error>() {
                return Some(tls.to_string());
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
                && let Some(tls) = inner.downcast_ref::<rustls::Error>()
            {
                return Some(tls.to_string());
            }
            // redis-rs keeps its I/O errors behind an `Arc<dyn Error>`, which the source
            // chain does not look through.
            if let Some(arc) =
                s.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
                && let Some(io) = arc.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
                && let Some(tls) = inner.downcast_ref::<rustls::Error>()
            {
                return Some(tls.to_string());
            }
            source = s.source();
        }
    }
    let _ = e;
    None
}
