//! TLS towards backends, with rustls: the client configuration each backend
//! gets from its `tls`, `ca`, `cert` and `key` (built once per
//! configuration, not per connection), and the handshake.
//!
//! The modes mean what libpq's `sslmode` means. `verify-full` is rustls'
//! own web-PKI check. `verify-ca` is the same check with a name mismatch
//! forgiven: rustls checks the chain before the name, so a name error
//! means the chain was good. `prefer` and `require` without `ca` accept any
//! certificate but still check the handshake's signatures, so the
//! encryption holds against a passive listener; `require` with `ca` is
//! `verify-ca`, while `prefer` ignores `ca`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use switchyard_core::config::{Backend, BackendTlsMode};
use tokio_rustls::TlsConnector;

use super::backend_stream::{BackendStream, Socket};
use super::dial::Endpoint;

/// A backend's TLS setting, ready to use.
#[derive(Clone)]
pub struct BackendTls {
    /// The configured mode.
    pub mode: BackendTlsMode,
    /// The rustls client; `None` when `mode` is `disable`.
    connector: Option<TlsConnector>,
}

/// Plain connections, for backends without TLS settings.
pub static DISABLED: BackendTls = BackendTls {
    mode: BackendTlsMode::Disable,
    connector: None,
};

/// A backend TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("backends.{backend}.{field}: `{}` {reason}", .path.display())]
pub struct TlsFileError {
    /// The backend's name.
    backend: String,
    /// `ca`, `cert` or `key`.
    field: &'static str,
    /// The file.
    path: std::path::PathBuf,
    /// What is wrong with it, and the fix.
    reason: String,
}

/// TLS with a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The server declined TLS while the mode demands it.
    #[error("backend `{name}` at {addr} does not offer TLS, and `tls: {mode}` requires it; enable TLS on the server, or set `tls: prefer` to accept a plain connection")]
    Refused {
        /// The backend's name.
        name: String,
        /// `host:port`.
        addr: String,
        /// The configured mode.
        mode: BackendTlsMode,
    },
    /// The handshake failed; `reason` names the certificate problem.
    #[error("backend `{name}` at {addr}: TLS handshake failed: {reason}")]
    Handshake {
        /// The backend's name.
        name: String,
        /// `host:port`.
        addr: String,
        /// What went wrong, with the fix.
        reason: String,
    },
}

impl BackendTls {
    /// Reads the CA and client certificate files of one backend.
    pub fn build(name: &str, backend: &Backend) -> Result<BackendTls, TlsFileError> {
        let mode = backend.tls;
        if mode == BackendTlsMode::Disable {
            return Ok(DISABLED.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let fail = |field, path: &Path, reason: String| TlsFileError {
            backend: name.to_string(),
            field,
            path: path.to_path_buf(),
            reason,
        };
        // `prefer` never checks the certificate, even with `ca` (as libpq):
        // it settles for whatever the server offers.
        let ca = backend
            .ca
            .as_ref()
            .filter(|_| mode != BackendTlsMode::Prefer);
        let verifier: Arc<dyn ServerCertVerifier> = match ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca).map_err(|r| fail("ca", ca, r))? {
                    roots.add(cert).map_err(|e| {
                        fail(
                            "ca",
                            ca,
                            format!("holds a certificate rustls refuses ({e})"),
                        )
                    })?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| {
                            fail("ca", ca, format!("cannot be used as a trust anchor ({e})"))
                        })?;
                if mode == BackendTlsMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
            None => Arc::new(AnyCertificate(provider.clone())),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&backend.cert, &backend.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert).map_err(|r| fail("cert", cert, r))?;
                let key_der = read_key(key).map_err(|r| fail("key", key, r))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| fail("key", key, format!("does not belong to `cert` ({e})")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(BackendTls {
            mode,
            connector: Some(TlsConnector::from(Arc::new(config))),
        })
    }

    /// Whether a connection to `endpoint` asks the server for TLS. Never on a
    /// Unix socket (PostgreSQL does not offer it there, as libpq assumes).
    pub fn wanted(&self, endpoint: &Endpoint) -> bool {
        self.connector.is_some() && !endpoint.is_unix()
    }

    /// The error for a server that declined TLS when the mode demands it;
    /// `None` means going on in plain is allowed (`prefer`).
    pub fn refused(&self, name: &str, endpoint: &Endpoint) -> Option<TlsError> {
        self.mode.mandatory().then(|| TlsError::Refused {
            name: name.to_string(),
            addr: endpoint.to_string(),
            mode: self.mode,
        })
    }

    /// The rustls client configuration, for a driver that runs its own
    /// handshake (the catalog's tokio-postgres); `None` when `disable`.
    pub fn client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.connector.as_ref().map(|c| c.config().clone())
    }

    /// Runs the TLS handshake on a socket the server agreed to encrypt.
    pub async fn handshake(
        &self,
        name: &str,
        endpoint: &Endpoint,
        socket: Socket,
    ) -> Result<BackendStream, TlsError> {
        let fail = |reason: String| TlsError::Handshake {
            name: name.to_string(),
            addr: endpoint.to_string(),
            reason,
        };
        let (Some(connector), Endpoint::Tcp { host, .. }) = (&self.connector, endpoint) else {
            return Err(fail("TLS is not configured for this connection".into()));
        };
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| fail(format!("`{host}` is not a valid TLS server name ({e})")))?;
        match connector.connect(server_name, socket).await {
            Ok(stream) => Ok(BackendStream::Tls(Box::new(stream))),
            Err(e) => Err(fail(explain(&e, host, self.mode))),
        }
    }
}

/// The reason of a failed handshake, with what to change.
fn explain(error: &std::io::Error, host: &str, mode: BackendTlsMode) -> String {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => explain_rustls(tls, host, mode),
        None => format!("{error}"),
    }
}

/// The first rustls error in `error`'s chain, for drivers that wrap the
/// handshake's error in their own (an `io::Error` hides its inner error
/// from `source()`, so it is opened by hand).
pub fn find_rustls<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if inner.is_some() {
            return inner;
        }
        next = e.source();
    }
    None
}

/// A rustls error as a reason, with what to change for the usual
/// certificate problems.
pub fn explain_rustls(tls: &rustls::Error, host: &str, mode: BackendTlsMode) -> String {
    let hint = match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("; `{host}` is not a name in the server's certificate: connect by a name it holds, or use `tls: verify-ca` to check the chain only"),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "; the certificate is not signed by the CA in `ca`: give the CA that issued it".to_string()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "; the server's certificate has expired: renew it".to_string(),
        rustls::Error::InvalidCertificate(_) => format!("; the server's certificate does not pass `tls: {mode}`"),
        _ => String::new(),
    };
    format!("{tls}{hint}")
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = File::open(path).map_err(|e| format!("cannot be opened ({e})"))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err("holds no certificate; give a PEM file with BEGIN CERTIFICATE blocks".into());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = File::open(path).map_err(|e| format!("cannot be opened ({e})"))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("is not a PEM private key ({e})"))?
        .ok_or_else(|| "holds no private key; give a PEM file with a PRIVATE KEY block".into())
}

/// `verify-ca`: the chain must lead to `ca`; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // rustls checks the name only after the chain verified.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`, and `require` without `ca`: any certificate, but the
/// handshake's signatures are still checked against it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
