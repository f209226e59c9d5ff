//! Wall-clock time from monotonic readings a request has already taken.
//!
//! Why: a proxied request reads the clock when it arrives (its `Instant`, for the latency)
//! and when it is logged. The token cache's expiry check and the audit record's timestamp
//! need the wall clock too, and two more clock reads per request were a visible share of the
//! pass-through's CPU on a virtual machine (`__vdso_clock_gettime` and the kernel's
//! `read_tsc` in `perf`). Each thread instead keeps one pairing of an `Instant` with the
//! wall clock, taken again once a second; in between, the wall time of an `Instant` is the
//! pairing's plus the monotonic difference (the two clocks drift by parts per million, so
//! the error stays far below the millisecond the audit log shows, and a wall-clock step is
//! followed within a second).

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

/// How long a thread's pairing of the two clocks is used.
const REPAIR: Duration = Duration::from_secs(1);

thread_local! {
    static PAIR: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// The wall-clock time (since the Unix epoch) of `at`, a recent monotonic reading.
pub fn wall_at(at: Instant) -> Duration {
    PAIR.with(|pair| {
        if let Some((base, wall)) = pair.get() {
            // `at` may be before the pairing too: a request that arrived before another
            // request of this thread took it.
            match at.checked_duration_since(base) {
                Some(d) if d < REPAIR => return wall + d,
                None if base.duration_since(at) < REPAIR => {
                    return wall.saturating_sub(base.duration_since(at));
                }
                _ => {}
            }
        }
        let base = Instant::now();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        pair.set(Some((base, wall)));
        // `at` was read before the new pairing: step back by the difference.
        wall.saturating_sub(base.saturating_duration_since(at))
    })
}

/// The wall-clock time now, as RFC 3339 (`2026-12-06T01:02:03.456Z`).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since_epoch() -> Duration {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
    }

    #[test]
    fn wall_time_of_an_instant_matches_the_system_clock() {
        let before = since_epoch();
        let at = Instant::now();
        let first = wall_at(at);
        let after = since_epoch();
        // Within the window the two readings bracket (plus a little for the drift).
        let slack = Duration::from_millis(5);
        assert!(
            first + slack >= before && first <= after + slack,
            "{first:?} {before:?} {after:?}"
        );
        // From the pairing now: the same instant gives the same time, a later one later.
        assert_eq!(wall_at(at), first);
        let later = at + Duration::from_millis(250);
        assert_eq!(wall_at(later), first + Duration::from_millis(250));
        // An instant before the pairing (a request that arrived before it was taken).
        let earlier = at.checked_sub(Duration::from_millis(300)).unwrap();
        assert_eq!(wall_at(earlier), first - Duration::from_millis(300));
    }

    #[test]
    fn the_pairing_is_renewed_after_a_second() {
        let at = Instant::now();
        let now = wall_at(at);
        // Two seconds on, the pairing is taken again from the system clock (which has not
        // moved two seconds: an instant in the future is only a test device), so the
        // answer is the system clock's time, not the old pairing extrapolated.
        let before = since_epoch();
        let ahead = wall_at(at + Duration::from_secs(2));
        let after = since_epoch();
        assert!(
            ahead >= before && ahead <= after,
            "{ahead:?} {before:?} {after:?}"
        );
        assert!(ahead < now + Duration::from_secs(1));
    }
}
