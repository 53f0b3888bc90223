//! TLS towards clients, with rustls.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use anyhow::Context;
use switchyard_core::config::Tls;
use tokio_rustls::TlsAcceptor;

/// Builds an acceptor from the configured PEM certificate chain and key.
pub fn acceptor(tls: &Tls) -> anyhow::Result<TlsAcceptor> {
    let open = |path: &std::path::Path, what: &str| {
        File::open(path).map(BufReader::new).with_context(|| {
            format!(
                "tls.{what}: cannot open `{}`; fix the path or remove the `tls:` section",
                path.display()
            )
        })
    };
    let certs = rustls_pemfile::certs(&mut open(&tls.cert, "cert")?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "tls.cert: `{}` is not a PEM certificate",
                tls.cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "tls.cert: `{}` holds no certificate; give a PEM file with BEGIN CERTIFICATE blocks",
            tls.cert.display()
        );
    }
    let key = rustls_pemfile::private_key(&mut open(&tls.key, "key")?)
        .with_context(|| format!("tls.key: `{}` is not a PEM private key", tls.key.display()))?
        .with_context(|| {
            format!(
                "tls.key: `{}` holds no private key; give a PEM file with a PRIVATE KEY block",
                tls.key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: the certificate and the key do not belong together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
