//! TLS and mutual TLS on the runtime's own listener (`runtime.server.tls`, `--tls-*`).
//!
//! - **rustls only** (the `ring` provider, as everywhere in the runtime), TLS 1.2 and 1.3,
//!   ALPN `h2` then `http/1.1`: an HTTP/2 caller is served by Pingora's h2 server, an
//!   HTTP/1.1 one by the runtime's own connection loop (`crate::gateway::conn`) with the same
//!   deadlines as plain HTTP. The handshake must finish within the head deadline.
//! - **Reload**: the certificate, key and client CA are read again on SIGHUP and when one of
//!   the files changes (checked once a second: size, modification time and inode, so a
//!   Kubernetes secret's symlink swap counts). New connections get the new pair; open ones
//!   keep theirs, so nothing is dropped. A pair that fails to load (unreadable, not PEM, a key
//!   that does not match the certificate) is reported and the old one stays in use.
//! - **Client certificates** (`clientAuth: optional|required`, `clientCAFile`): verified
//!   against the CA by rustls' WebPKI verifier during the handshake (`required`: a caller
//!   without one chained to the CA is refused there). The verified certificate's subject
//!   (or, when it has none, its first SAN) is the caller's `clientCert`, recorded in audit
//!   events and checked by `runtime.server.auth.requireClientCert`.
//!
//! How a request finds its connection's certificate: Pingora hands the gateway a session
//! whose digest carries the connection's [`SslDigest`] (for HTTP/1.1 and HTTP/2 alike), but
//! the digest's own extension slot cannot be set outside Pingora. So the digest carries the
//! certificate's SHA-256 fingerprint (`cert_digest`, its documented use) and
//! [`client_identity`] looks the identity up in a process-wide table filled at the
//! handshake. Each connection holds a [`Registered`] entry, which removes it when the last
//! connection with that certificate closes: the table never outgrows the open connections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use pingora::protocols::tls::SslDigest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use open_cli_config::model::ClientAuth;

/// The most bytes a certificate chain, key or CA file may hold.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Where the listener's TLS material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// The listener's TLS configuration, swapped whole on reload.
#[derive(Debug)]
pub struct EdgeTls {
    files: TlsFiles,
    current: ArcSwap<rustls::ServerConfig>,
    /// The files' identities when last loaded (or tried).
    stamps: parking_lot::Mutex<Vec<Option<Stamp>>>,
    /// Loads that failed since start-up (reported by `/metrics` and the log).
    failures: std::sync::atomic::AtomicU64,
}

/// What tells a changed file: size, modification time, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64, Option<std::time::SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks: a swapped `..data` link shows as a new inode.
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(m.len(), m.modified().ok(), m.ino()))
}

impl EdgeTls {
    /// Load the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        let stamps = files.stamps();
        let config = build(&files)?;
        Ok(Self {
            files,
            current: ArcSwap::from_pointee(config),
            stamps: parking_lot::Mutex::new(stamps),
            failures: Default::default(),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current.load_full()
    }

    /// Read the files again (SIGHUP, or a change seen by [`EdgeTls::reload_if_changed`]).
    /// On failure the old configuration stays and the error is logged and returned.
    pub fn reload(&self, why: &str) -> Result<(), String> {
        *self.stamps.lock() = self.files.stamps();
        match build(&self.files) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                crate::metrics::tls_reloaded(true);
                tracing::info!(cert = %self.files.cert.display(), trigger = why, "listener TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                self.failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::metrics::tls_reloaded(false);
                tracing::error!(error = %e, trigger = why, "listener TLS reload failed: the previous certificate stays in use");
                Err(e)
            }
        }
    }

    /// Reload when a file changed since the last load (called once a second).
    pub fn reload_if_changed(&self) {
        let now = self.files.stamps();
        if *self.stamps.lock() != now {
            let _ = self.reload("file change");
        }
    }

    /// Reloads that failed since start-up.
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    fn stamps(&self) -> Vec<Option<Stamp>> {
        self.paths().map(stamp).collect()
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    open_cli_config::files::read_regular(path, MAX_PEM_BYTES)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {what} {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the {what} {} holds no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// The rustls configuration for `files`.
fn build(files: &TlsFiles) -> Result<rustls::ServerConfig, String> {
    let chain = certificates(&files.cert, "certificate file")?;
    let key_pem = read_pem(&files.key, "key file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "the key file {} holds no PEM private key: {e}",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let builder = match (&files.client_ca, files.client_auth) {
        (Some(ca), ClientAuth::Optional | ClientAuth::Required) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client CA file")? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "the client CA file {} holds a bad certificate: {e}",
                        ca.display()
                    )
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if files.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("cannot use the client CA file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, ClientAuth::Optional | ClientAuth::Required) => {
            return Err(format!(
                "clientAuth `{}` needs a client CA file",
                files.client_auth.as_str()
            ));
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "the certificate {} and key {} cannot be used together: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A verified client certificate, as recorded for the caller.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The subject (`CN=agent-7,O=Acme`), or when empty the first SAN (`DNS:agent.example`).
    pub name: Arc<str>,
}

type Table = parking_lot::Mutex<HashMap<Vec<u8>, (Arc<ClientIdentity>, usize)>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// A connection's entry in the identity table; dropping it releases the entry.
#[derive(Debug)]
pub struct Registered(Vec<u8>);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut table = table().lock();
        if let Some((_, n)) = table.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.0);
            }
        }
    }
}

/// What the handshake established: the digest Pingora sees, and the connection's entry in
/// the identity table (held as long as the connection is open).
pub fn digest(conn: &rustls::ServerConnection) -> (Arc<SslDigest>, Option<Registered>) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("unknown");
    let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
        return (
            Arc::new(SslDigest::new(cipher, version, None, None, Vec::new())),
            None,
        );
    };
    use sha2::Digest;
    let fingerprint = sha2::Sha256::digest(cert.as_ref()).to_vec();
    let (organization, serial, name) = describe(cert.as_ref());
    let identity = Arc::new(ClientIdentity { name: name.into() });
    table()
        .lock()
        .entry(fingerprint.clone())
        .and_modify(|(_, n)| *n += 1)
        .or_insert((identity, 1));
    let digest = SslDigest::new(cipher, version, organization, serial, fingerprint.clone());
    (Arc::new(digest), Some(Registered(fingerprint)))
}

/// The verified client certificate of a request's connection, if it has one.
pub fn client_identity(digest: Option<&SslDigest>) -> Option<Arc<ClientIdentity>> {
    let digest = digest?;
    if digest.cert_digest.is_empty() {
        return None;
    }
    table()
        .lock()
        .get(&digest.cert_digest)
        .map(|(id, _)| Arc::clone(id))
}

/// The organization, the serial number and the name ([`ClientIdentity::name`]) of a
/// certificate the verifier accepted.
fn describe(der: &[u8]) -> (Option<String>, Option<String>, String) {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        // The verifier parsed it; this parser disagreeing is not expected.
        return (None, None, "unparsed certificate".into());
    };
    let subject = cert.subject();
    let organization = subject
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .map(str::to_string);
    let serial = Some(cert.raw_serial_as_string());
    let mut name = subject.to_string();
    if name.is_empty()
        && let Ok(Some(san)) = cert.subject_alternative_name()
    {
        name = san
            .value
            .general_names
            .iter()
            .find_map(|n| match n {
                GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
                GeneralName::URI(u) => Some(format!("URI:{u}")),
                GeneralName::RFC822Name(e) => Some(format!("email:{e}")),
                _ => None,
            })
            .unwrap_or_default();
    }
    (organization, serial, name)
}
