//! A tool call's budgets: rate limits (`runtime.server.rateLimits`) and the upstream service's
//! concurrency (`runtime.server.limits.maxConcurrentPerService`).
//!
//! Asked once per tool call by `crate::execute::admit`, after the policy allowed the call and
//! before anything is sent upstream, for every surface alike (execute, the pass-through, and
//! later MCP): a call over a budget is refused, audited, and never reaches the upstream.
//!
//! **Rate limits** are GCRA token buckets (the generic cell rate algorithm: one number per
//! bucket, the "theoretical arrival time", so a check is one compare-and-set): a bucket of
//! `requests` per `period` holds at most `burst` requests at once. A call is counted against
//! every bucket that applies (its principal's, its tool's, its service's) and is allowed only
//! if all of them have room; then it takes from all of them, so a refused call costs no
//! budget. The refusal names the bucket that is furthest from room and how long until it has
//! some (`Retry-After`).
//!
//! - **Per principal**: the token's subject; callers without a token (runtime auth off) share
//!   one bucket, `anonymous`.
//! - **Stores**: in memory, per replica (default); or Redis (`store: redis://…`), where one
//!   Lua script checks and takes every bucket of a call atomically with Redis' own clock, so
//!   replicas sharing the store share one budget exactly. Each check waits `storeTimeoutMs`
//!   at most; when the store cannot answer, `onStoreError: allow` lets the call through
//!   (counted in `open_cli_rate_limit_store_errors_total`, logged at most every 10 s) and
//!   `deny` refuses it (`503 rate_limit_unavailable`).
//!
//! **Concurrency**: with `maxConcurrentPerService`, a call holds one of its service's slots
//! until its answer is done (a [`Permit`]); a call finding none free is refused at once
//! (`503 service_busy`, `Retry-After: 1`), not queued.
//!
//! Own code rather than `governor`: its keyed limiter has no shared-store backend, and the
//! local algorithm is the same few lines the Redis script runs, so both stores behave alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use open_cli_config::model::{RateLimit, RateLimits, StoreErrorMode};

/// Which bucket refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Principal,
    Tool,
    Service,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Principal => "principal",
            Scope::Tool => "tool",
            Scope::Service => "service",
        }
    }
}

/// Why a call is over its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Over {
    /// A rate limit has no room: retry after `retry_after`.
    Rate {
        scope: Scope,
        limit: RateLimit,
        retry_after: Duration,
    },
    /// The service has `max` calls in progress.
    Busy { max: usize },
    /// The shared store could not answer (`onStoreError: deny`).
    StoreDown(String),
}

/// One call's hold on its service's concurrency slot (nothing when unlimited).
#[derive(Debug, Default)]
pub struct Permit(Option<Arc<AtomicUsize>>);

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The call a budget is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub principal: Option<&'a str>,
    pub tool: &'a str,
    pub service: &'a str,
}

/// The budgets of one config.
#[derive(Debug)]
pub struct Budgets {
    rates: Option<Rates>,
    max_concurrent: Option<usize>,
    in_progress: parking_lot::Mutex<HashMap<Box<str>, Arc<AtomicUsize>>>,
}

#[derive(Debug)]
struct Rates {
    config: RateLimits,
    store: Store,
}

#[derive(Debug)]
enum Store {
    Local(Local),
    Redis(Box<RedisStore>),
}

impl Budgets {
    /// The budgets of `rates` and `max_concurrent`; a Redis store starts connecting now (on
    /// the calling runtime) and is used once connected.
    pub fn new(rates: Option<&RateLimits>, max_concurrent: Option<usize>) -> Result<Self, String> {
        let rates = match rates {
            None => None,
            Some(r) => Some(Rates {
                store: match &r.store {
                    None => Store::Local(Local::new(r)),
                    Some(url) => Store::Redis(Box::new(RedisStore::new(
                        url,
                        Duration::from_millis(r.store_timeout_ms),
                    )?)),
                },
                config: r.clone(),
            }),
        };
        Ok(Self {
            rates,
            max_concurrent,
            in_progress: Default::default(),
        })
    }

    /// Whether `rates` and `max_concurrent` are what these budgets were built from (a config
    /// reload keeps the buckets when they did not change).
    pub fn same_as(&self, rates: Option<&RateLimits>, max_concurrent: Option<usize>) -> bool {
        self.rates.as_ref().map(|r| &r.config) == rates && self.max_concurrent == max_concurrent
    }

    /// Count `call` against its buckets and take a concurrency slot, or say why not.
    pub async fn admit(&self, call: Call<'_>) -> Result<Permit, Over> {
        if let Some(rates) = &self.rates {
            let buckets = rates.buckets(call);
            if !buckets.is_empty() {
                let checked = match &rates.store {
                    Store::Local(l) => Ok(l.take(&buckets)),
                    // Boxed: the Redis exchange's future is most of this one's size, and
                    // this one is part of every call's request future, with or without
                    // rate limits (Pingora copies that future per request; one allocation is
                    // nothing beside the round trip).
                    Store::Redis(r) => Box::pin(r.take(&buckets)).await,
                };
                match checked {
                    Ok(None) => {}
                    Ok(Some((i, retry_after))) => {
                        let (scope, limit, _) = buckets[i];
                        return Err(Over::Rate {
                            scope,
                            limit,
                            retry_after,
                        });
                    }
                    Err(e) => {
                        crate::metrics::rate_limit_store_error();
                        if store_errors_logged().take().is_ok() {
                            tracing::warn!(error = %e, mode = ?rates.config.on_store_error, "the rate-limit store cannot be asked");
                        }
                        if rates.config.on_store_error == StoreErrorMode::Deny {
                            return Err(Over::StoreDown(e));
                        }
                    }
                }
            }
        }
        self.slot(call.service)
    }

    fn slot(&self, service: &str) -> Result<Permit, Over> {
        let Some(max) = self.max_concurrent else {
            return Ok(Permit(None));
        };
        let counter = {
            let mut map = self.in_progress.lock();
            match map.get(service) {
                Some(c) => Arc::clone(c),
                None => Arc::clone(map.entry(service.into()).or_default()),
            }
        };
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(Over::Busy { max });
        }
        Ok(Permit(Some(counter)))
    }
}

/// Store errors are logged at most once every 10 s.
fn store_errors_logged() -> &'static crate::limit::TokenBucket {
    static BUCKET: std::sync::OnceLock<crate::limit::TokenBucket> = std::sync::OnceLock::new();
    BUCKET.get_or_init(|| crate::limit::TokenBucket::new(0.1, 1))
}

/// A bucket a call counts against: its scope, its limit, and its key.
type Bucket<'a> = (Scope, RateLimit, Key<'a>);

#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Principal(&'a str),
    Tool(&'a str),
    Service(&'a str),
}

impl Rates {
    fn buckets<'a>(&self, call: Call<'a>) -> Vec<Bucket<'a>> {
        let mut out = Vec::new();
        if let Some(l) = self.config.per_principal {
            let who = call.principal.unwrap_or(ANONYMOUS);
            out.push((Scope::Principal, l, Key::Principal(who)));
        }
        if let Some(l) = self.config.tools.get(call.tool) {
            out.push((Scope::Tool, *l, Key::Tool(call.tool)));
        }
        if let Some(l) = self.config.services.get(call.service) {
            out.push((Scope::Service, *l, Key::Service(call.service)));
        }
        out
    }
}

/// The principal of callers without a token.
const ANONYMOUS: &str = "anonymous";

/// A bucket's constants in a clock unit: the interval between requests at the steady rate
/// (`T`) and the window a burst may use (`T * burst`).
fn gcra(limit: &RateLimit, unit_per_sec: u64) -> (u64, u64) {
    let period = limit.period_seconds.saturating_mul(unit_per_sec);
    let t = (period / limit.requests.max(1)).max(1);
    (t, t.saturating_mul(limit.burst.max(1)))
}

/// One GCRA step at `now` against `tat` (the bucket's theoretical arrival time): the new
/// arrival time, or how long until there is room.
fn step(tat: u64, now: u64, t: u64, window: u64) -> Result<u64, u64> {
    let next = tat.max(now) + t;
    let used = next - now;
    if used > window {
        Err(used - window)
    } else {
        Ok(next)
    }
}

/// In-memory buckets: tools' and services' made up front, principals' as they come.
#[derive(Debug)]
struct Local {
    epoch: Instant,
    tools: HashMap<String, AtomicU64>,
    services: HashMap<String, AtomicU64>,
    principals: parking_lot::Mutex<HashMap<Box<str>, u64>>,
}

/// Principals' buckets kept before full ones (equal to absent) are swept.
const PRINCIPALS_SWEPT_AT: usize = 100_000;

impl Local {
    fn new(r: &RateLimits) -> Self {
        let zero = |m: &std::collections::BTreeMap<String, RateLimit>| {
            m.keys().map(|k| (k.clone(), AtomicU64::new(0))).collect()
        };
        Self {
            epoch: Instant::now(),
            tools: zero(&r.tools),
            services: zero(&r.services),
            principals: Default::default(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Take from every bucket, or from none: `Some((index, wait))` names the bucket with the
    /// longest wait.
    fn take(&self, buckets: &[Bucket<'_>]) -> Option<(usize, Duration)> {
        let now = self.now();
        let mut taken: Vec<(usize, u64)> = Vec::with_capacity(buckets.len());
        let mut worst: Option<(usize, u64)> = None;
        for (i, (_, limit, key)) in buckets.iter().enumerate() {
            let (t, window) = gcra(limit, 1_000_000_000);
            match self.take_one(key, now, t, window) {
                Ok(()) => taken.push((i, t)),
                Err(wait) => {
                    if worst.is_none_or(|(_, w)| wait > w) {
                        worst = Some((i, wait));
                    }
                }
            }
        }
        let (i, wait) = worst?;
        // A refused call costs no budget: give back what it took.
        for (j, t) in taken {
            self.give_back(&buckets[j].2, t);
        }
        Some((i, Duration::from_nanos(wait)))
    }

    fn take_one(&self, key: &Key<'_>, now: u64, t: u64, window: u64) -> Result<(), u64> {
        let atomic = match key {
            Key::Tool(k) => self.tools.get(*k),
            Key::Service(k) => self.services.get(*k),
            Key::Principal(who) => {
                let mut map = self.principals.lock();
                if map.len() >= PRINCIPALS_SWEPT_AT {
                    map.retain(|_, tat| *tat > now);
                }
                let tat = map.get(*who).copied().unwrap_or(0);
                let next = step(tat, now, t, window)?;
                match map.get_mut(*who) {
                    Some(v) => *v = next,
                    None => {
                        map.insert((*who).into(), next);
                    }
                }
                return Ok(());
            }
        };
        let Some(atomic) = atomic else { return Ok(()) };
        let mut tat = atomic.load(Ordering::Acquire);
        loop {
            let next = step(tat, now, t, window)?;
            match atomic.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }

    fn give_back(&self, key: &Key<'_>, t: u64) {
        match key {
            Key::Tool(k) => {
                if let Some(a) = self.tools.get(*k) {
                    a.fetch_sub(t, Ordering::AcqRel);
                }
            }
            Key::Service(k) => {
                if let Some(a) = self.services.get(*k) {
                    a.fetch_sub(t, Ordering::AcqRel);
                }
            }
            Key::Principal(who) => {
                if let Some(v) = self.principals.lock().get_mut(*who) {
                    *v = v.saturating_sub(t);
                }
            }
        }
    }
}

/// The Redis store: the buckets of a call checked and taken by one script, atomically, on
/// Redis' clock (microseconds).
struct RedisStore {
    client: redis::Client,
    timeout: Duration,
    /// Connected once, then kept (the manager reconnects by itself).
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    /// When connecting last failed: calls in the next second fail at once instead of each
    /// waiting for a connection timeout.
    failed_at: parking_lot::Mutex<Option<Instant>>,
    script: redis::Script,
}

/// How long after a failed connection attempt the next one is made.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `KEYS[i]`: a bucket; `ARGV[2i-1]`, `ARGV[2i]`: its interval and window (µs). Returns
/// `{1}` when every bucket had room (and took one), else `{0, i, wait_us}` for the bucket with
/// the longest wait, having taken nothing.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local worst, worst_i = 0, 0
local next = {}
for i = 1, #KEYS do
  local step, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local n = tat + step
  local over = n - now - window
  if over > worst then worst, worst_i = over, i end
  next[i] = n
end
if worst > 0 then return {0, worst_i - 1, worst} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', next[i]), 'PX', math.ceil((next[i] - now) / 1000) + 1000)
end
return {1}
";

impl RedisStore {
    fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("runtime.server.rateLimits.store `{}`: {e}", redact(url)))?;
        Ok(Self {
            client,
            timeout,
            conn: tokio::sync::OnceCell::new(),
            failed_at: parking_lot::Mutex::new(None),
            script: redis::Script::new(GCRA_SCRIPT),
        })
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        if let Some(at) = *self.failed_at.lock()
            && at.elapsed() < RECONNECT_AFTER
        {
            return Err("not connected (the next attempt is within a second)".into());
        }
        let connected = self
            .conn
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))
            })
            .await
            .cloned();
        if connected.is_err() {
            *self.failed_at.lock() = Some(Instant::now());
        }
        connected
    }

    async fn take(&self, buckets: &[Bucket<'_>]) -> Result<Option<(usize, Duration)>, String> {
        let ask = async {
            let mut conn = self.connection().await?;
            let mut invocation = self.script.prepare_invoke();
            for (_, limit, key) in buckets {
                let (t, window) = gcra(limit, 1_000_000);
                let name = match key {
                    Key::Principal(k) => format!("open-cli:rl:p:{k}"),
                    Key::Tool(k) => format!("open-cli:rl:t:{k}"),
                    Key::Service(k) => format!("open-cli:rl:s:{k}"),
                };
                invocation.key(name).arg(t).arg(window);
            }
            let answer: Vec<i64> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            match answer.as_slice() {
                [1] => Ok(None),
                [0, i, wait] => Ok(Some((
                    usize::try_from(*i).unwrap_or(0).min(buckets.len() - 1),
                    Duration::from_micros(u64::try_from(*wait).unwrap_or(0)),
                ))),
                other => Err(format!("unexpected answer from the script: {other:?}")),
            }
        };
        match tokio::time::timeout(self.timeout, ask).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {} ms (storeTimeoutMs)",
                self.timeout.as_millis()
            )),
        }
    }
}

/// A store URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_principal: Option<RateLimit>, tool: Option<RateLimit>) -> RateLimits {
        RateLimits {
            per_principal,
            tools: tool
                .into_iter()
                .map(|l| ("svc:op".to_string(), l))
                .collect(),
            services: Default::default(),
            store: None,
            store_timeout_ms: 100,
            on_store_error: StoreErrorMode::Allow,
        }
    }

    fn per(requests: u64, period_seconds: u64, burst: u64) -> RateLimit {
        RateLimit {
            requests,
            period_seconds,
            burst,
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let (t, window) = gcra(&per(2, 1, 3), 1000);
        assert_eq!((t, window), (500, 1500));
        let mut tat = 0;
        for _ in 0..3 {
            tat = step(tat, 0, t, window).unwrap();
        }
        assert_eq!(step(tat, 0, t, window), Err(500));
        // After one interval there is room for one more, and only one.
        tat = step(tat, 500, t, window).unwrap();
        assert_eq!(step(tat, 500, t, window), Err(500));
        // Long idle: never more than the burst.
        let mut tat2 = tat;
        for _ in 0..3 {
            tat2 = step(tat2, 100_000, t, window).unwrap();
        }
        assert!(step(tat2, 100_000, t, window).is_err());
    }

    #[tokio::test]
    async fn a_call_takes_from_every_bucket_or_from_none() {
        let r = limits(Some(per(10, 60, 10)), Some(per(1, 60, 1)));
        let b = Budgets::new(Some(&r), None).unwrap();
        let call = |p| Call {
            principal: Some(p),
            tool: "svc:op",
            service: "svc",
        };
        assert!(b.admit(call("a")).await.is_ok());
        // The tool's bucket is empty: refused, naming it, and a's bucket keeps its 9.
        match b.admit(call("a")).await {
            Err(Over::Rate {
                scope: Scope::Tool,
                retry_after,
                ..
            }) => assert!(retry_after > Duration::from_secs(55), "{retry_after:?}"),
            other => panic!("{other:?}"),
        }
        let other_tool = Call {
            principal: Some("a"),
            tool: "svc:other",
            service: "svc",
        };
        for _ in 0..9 {
            assert!(b.admit(other_tool).await.is_ok());
        }
        assert!(matches!(
            b.admit(other_tool).await,
            Err(Over::Rate {
                scope: Scope::Principal,
                ..
            })
        ));
        // Another principal has its own bucket.
        let c = Call {
            principal: Some("b"),
            tool: "svc:other",
            service: "svc",
        };
        assert!(b.admit(c).await.is_ok());
    }

    #[tokio::test]
    async fn a_service_admits_its_maximum_in_progress() {
        let b = Budgets::new(None, Some(2)).unwrap();
        let call = Call {
            principal: None,
            tool: "svc:op",
            service: "svc",
        };
        let (p1, p2) = (b.admit(call).await.unwrap(), b.admit(call).await.unwrap());
        assert_eq!(b.admit(call).await.unwrap_err(), Over::Busy { max: 2 });
        let elsewhere = Call {
            service: "other",
            ..call
        };
        assert!(b.admit(elsewhere).await.is_ok());
        drop(p1);
        let p3 = b.admit(call).await.unwrap();
        drop((p2, p3));
    }

    #[test]
    fn store_urls_are_shown_without_their_password() {
        assert_eq!(
            redact("redis://user:secret@127.0.0.1:6379/0"),
            "redis://user:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
