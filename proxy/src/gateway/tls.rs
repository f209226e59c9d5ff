//! Trust anchors for the pass-through's TLS upstreams, in Pingora's form.

use std::sync::Arc;

/// Trust anchors for TLS upstreams with a `caFile`: the system roots plus the file's
/// certificates, loaded once per file. (Pingora's per-peer CA list replaces its default
/// store, so the system roots are added here.)
#[derive(Debug, Default)]
pub struct CaBundles {
    loaded:
        parking_lot::Mutex<std::collections::HashMap<String, Arc<pingora::protocols::tls::CaType>>>,
}

impl CaBundles {
    pub fn get(&self, file: &str) -> Result<Arc<pingora::protocols::tls::CaType>, String> {
        if let Some(b) = self.loaded.lock().get(file) {
            return Ok(Arc::clone(b));
        }
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let pem = open_cli_config::files::read_regular(
            std::path::Path::new(file),
            open_cli_config::files::MAX_CA_BYTES,
        )
        .map_err(|e| format!("cannot read caFile `{file}`: {e}"))?;
        let mut ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("caFile `{file}` is not a PEM bundle: {e}"))?;
        if ders.is_empty() {
            return Err(format!("caFile `{file}` holds no certificate"));
        }
        ders.extend(
            rustls_native_certs::load_native_certs()
                .certs
                .into_iter()
                .map(|c| c.to_vec()),
        );
        let wrapped = std::panic::catch_unwind(|| {
            ders.into_iter()
                .map(|d| pingora::utils::tls::WrappedX509::new(d, pingora::utils::tls::parse_x509))
                .collect::<Vec<_>>()
        })
        .map_err(|_| format!("caFile `{file}` holds a certificate that cannot be parsed"))?;
        let bundle: Arc<pingora::protocols::tls::CaType> = Arc::from(wrapped.into_boxed_slice());
        self.loaded
            .lock()
            .insert(file.to_string(), Arc::clone(&bundle));
        Ok(bundle)
    }
}
