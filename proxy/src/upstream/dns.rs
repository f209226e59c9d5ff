//! Upstream host names, resolved asynchronously and cached briefly.

use std::net::SocketAddr;
use std::time::Instant;

/// Upstream host names resolved asynchronously and cached briefly. IP literals never come
/// here: they are parsed once per snapshot ([`crate::snapshot::index::Target::ip`]).
#[derive(Debug, Default)]
pub struct Resolver {
    cache: parking_lot::Mutex<std::collections::HashMap<(String, u16), (SocketAddr, Instant)>>,
}

const DNS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Resolver {
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let key = (host.to_string(), port);
        if let Some((a, at)) = self.cache.lock().get(&key)
            && at.elapsed() < DNS_TTL
        {
            return Ok(*a);
        }
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{host}` resolves to no address"))?;
        self.cache.lock().insert(key, (addr, Instant::now()));
        Ok(addr)
    }
}
