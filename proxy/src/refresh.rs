//! Rebuilding the catalog while serving (`GET|POST /v1/refresh`, SIGHUP).
//!
//! A rebuild runs on its own task (a caller that disconnects does not cancel it), one at a
//! time, and builds a complete new [`Snapshot`] before swapping it in atomically: requests in
//! flight keep the snapshot they loaded, and a failed rebuild leaves the old catalog in place
//! and reports why. `/v1/refresh` forces revalidation of every cached HTTP document; SIGHUP
//! re-reads the config file and rebuilds honouring cache freshness.

use std::sync::Arc;

use open_cli_config::load_file;
use open_cli_config::ntc::Catalog;
use open_cli_config::wire::{RefreshReport, RefreshStatus, SourceRefresh};

use crate::catalog;
use crate::snapshot::Snapshot;
use crate::state::RuntimeState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `/v1/refresh`: same config, force revalidation.
    Api,
    /// SIGHUP: re-read the config file, normal cache rules.
    Signal,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Signal => "sighup",
        }
    }
}

/// Rebuild on a separate task and wait for the outcome.
pub async fn rebuild(state: Arc<RuntimeState>, trigger: Trigger) -> Result<RefreshReport, String> {
    let task = tokio::spawn(rebuild_now(state, trigger));
    task.await
        .map_err(|e| format!("the rebuild task failed: {e}"))?
}

async fn rebuild_now(state: Arc<RuntimeState>, trigger: Trigger) -> Result<RefreshReport, String> {
    let _one_at_a_time = state.rebuild_lock.lock().await;
    let result = attempt(&state, trigger).await;
    let status = RefreshStatus {
        at: catalog::now_rfc3339(),
        trigger: trigger.as_str().into(),
        ok: result.is_ok(),
        error: result.as_ref().err().cloned(),
    };
    state.last_refresh.store(Some(Arc::new(status)));
    match &result {
        Ok(r) => tracing::info!(
            trigger = trigger.as_str(),
            tools = r.catalog.as_ref().map(|c| c.tools),
            "catalog rebuilt and swapped"
        ),
        Err(e) => {
            tracing::warn!(trigger = trigger.as_str(), error = %e, "catalog rebuild failed; still serving the previous catalog")
        }
    }
    result
}

async fn attempt(state: &RuntimeState, trigger: Trigger) -> Result<RefreshReport, String> {
    let loaded = match trigger {
        Trigger::Signal => Arc::new(load_file(&state.bound.path).map_err(|e| e.to_string())?),
        Trigger::Api => state.config(),
    };
    let fetcher = match trigger {
        Trigger::Api => state.fetcher.forced(),
        Trigger::Signal => state.fetcher.clone(),
    };
    let catalog = catalog::build(&loaded, &fetcher, &state.credentials)
        .await
        .map_err(|e| e.to_string())?;
    let report = report(&catalog);
    let snapshot = Snapshot::for_config(catalog, &loaded.config)
        .map_err(|e| format!("cannot render the catalog: {e}"))?;
    let summary = snapshot.summary.clone();
    if trigger == Trigger::Signal {
        let auth = crate::auth::Authenticator::from_config(loaded.config.server_auth())?;
        state.auth.store(auth.map(Arc::new));
    }
    state.swap(snapshot, loaded);
    Ok(RefreshReport {
        catalog: Some(summary),
        ..report
    })
}

/// Per source, how its main (first fetched) document was obtained.
fn report(catalog: &Catalog) -> RefreshReport {
    RefreshReport {
        refreshed_at: catalog.generated_at.clone(),
        sources: catalog
            .sources
            .iter()
            .map(|s| {
                let first = s.provenance.fetches.first();
                SourceRefresh {
                    id: s.id.clone(),
                    uri: s.uri.clone(),
                    cache_outcome: first.and_then(|f| f.cache_outcome.clone()),
                    status_code: first.and_then(|f| f.status_code),
                    stale: first.is_some_and(|f| f.stale),
                }
            })
            .collect(),
        catalog: None,
    }
}
