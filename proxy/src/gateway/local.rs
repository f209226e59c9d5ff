//! What a serving thread keeps for itself: its handle on the current snapshot, with the
//! thread's own copies of per-tool data that requests clone ([`LocalSnapshot`]), and what it
//! remembers from one request to the next ([`Memo`]).
//!
//! Every serving thread runs exactly one [`crate::gateway::Gateway`] (see `crate::server`),
//! so per-thread and per-service-object are the same thing. The snapshot handle is a field of
//! the `Gateway` (it is locked once per request anyway); the [`Memo`] is a `thread_local`,
//! because Pingora needs the service object to be `Sync`, and a field would need a lock per
//! access where a thread-local needs none. The other per-thread caches of the runtime live
//! with the code they serve: the token cache's front (`crate::auth`), the last envelope a
//! thread checked (`crate::snapshot::Snapshot::in_scope`), the audit line buffer and
//! timestamp (`crate::audit`), the wall-clock pair (`crate::clock`) and the spool lane
//! (`crate::spool`).

use std::cell::{Cell, RefCell};
use std::net::IpAddr;

use http::HeaderValue;

use crate::gateway::template::Template;
use crate::snapshot::Snapshot;
use crate::snapshot::index::ToolRef;

/// One serving thread's reference to a [`Snapshot`].
///
/// Why: every request holds the snapshot it started with. Cloning the snapshot's own `Arc`
/// per request changed a reference count that every serving core changes, a cross-core
/// cache-line transfer twice per request. Each serving thread instead keeps one
/// `Arc<LocalSnapshot>` for the current snapshot (replaced by the thread's first request after
/// a swap) and requests clone that: a count only this thread touches. (So an idle thread keeps
/// the previous snapshot alive until its next request.)
///
/// The handle also keeps the thread's own copies of per-tool data that requests clone
/// ([`LocalSnapshot::template`]), for the same reason.
#[derive(Debug)]
pub struct LocalSnapshot {
    snapshot: std::sync::Arc<Snapshot>,
    /// Per tool (catalog index): its pass-through upstream header template, built by this
    /// thread on its first call of the tool (a pointer per tool until then).
    templates: Box<[std::sync::OnceLock<Box<Template>>]>,
}

impl LocalSnapshot {
    pub fn new(snapshot: std::sync::Arc<Snapshot>) -> Self {
        let templates = (0..snapshot.catalog.tools.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        Self {
            snapshot,
            templates,
        }
    }

    /// The snapshot this handle is for.
    pub fn shared(&self) -> &std::sync::Arc<Snapshot> {
        &self.snapshot
    }

    /// Tool `tool`'s upstream header template on this thread, built by `build` the first
    /// time; `None` for an index outside the catalog.
    pub fn template(&self, tool: ToolRef, build: impl FnOnce() -> Template) -> Option<&Template> {
        let slot = self.templates.get(tool.index())?;
        Some(slot.get_or_init(|| Box::new(build())))
    }
}

impl std::ops::Deref for LocalSnapshot {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// What a serving thread remembers from one request to the next, so that the common request
/// formats and allocates nothing.
#[derive(Debug)]
pub struct Memo {
    /// The next generated request ID, as text (`crate::gateway::generated_id`).
    pub next_id: Cell<[u8; 32]>,
    /// `X-Forwarded-For` for the previous client address (a sidecar's callers are few:
    /// usually one); the value is shared by reference count.
    pub client: RefCell<Option<(IpAddr, HeaderValue)>>,
    /// `Forwarded` for the previous client address and `Host` (a copy of the host, not a
    /// share of a request's header buffer).
    pub forwarded: RefCell<Option<(IpAddr, Option<HeaderValue>, HeaderValue)>>,
}

thread_local! {
    static MEMO: Memo = Memo {
        next_id: Cell::new(crate::gateway::first_id()),
        client: RefCell::new(None),
        forwarded: RefCell::new(None),
    };
}

/// This thread's [`Memo`].
pub fn memo<R>(f: impl FnOnce(&Memo) -> R) -> R {
    MEMO.with(f)
}
