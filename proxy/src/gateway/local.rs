//! One serving thread's handle on the current snapshot, with the thread's own copies of
//! per-tool data that requests clone.

use crate::gateway::passthrough::Template;
use crate::snapshot::Snapshot;

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
    pub fn template(&self, tool: usize, build: impl FnOnce() -> Template) -> Option<&Template> {
        let slot = self.templates.get(tool)?;
        Some(slot.get_or_init(|| Box::new(build())))
    }
}

impl std::ops::Deref for LocalSnapshot {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}
