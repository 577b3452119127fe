//! Per-connection limits of the WebSocket channels: a message over [`crate::ws::MAX_MESSAGE_BYTES`] or a
//! flood beyond a token bucket (default 50 messages/s, bursts of 100) closes the connection through the
//! Push port's `close`.
//!
//! The buckets live **in the memory of the process** handling the messages, not in the store: a store
//! write per inbound message would cost more than the messages themselves. The local gateway is one
//! process, so its limit is exact. In AWS each function instance keeps its own buckets; API Gateway may
//! spread one connection's messages over several instances, each of which then sees a part of a flood — a
//! flood is still cut, later (at most N× the rate with N warm instances), and API Gateway's own route and
//! account throttling bound the rest. The close itself goes through API Gateway (`DeleteConnection`), so it
//! works whichever instance decides it.
//!
//! [`PerConnection`] is the bounded per-connection memory the channels also use for write throttling.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};

use crate::ws::MAX_MESSAGE_BYTES;

/// Messages per second refilled into a connection's bucket (`NUSATRADE_WS_RATE`).
pub const DEFAULT_RATE: f64 = 50.0;
/// The bucket's size: messages accepted at once (`NUSATRADE_WS_BURST`).
pub const DEFAULT_BURST: u32 = 100;
/// Open dashboard sockets per user (`NUSATRADE_WS_MAX_DASHBOARDS`).
pub const DEFAULT_MAX_DASHBOARDS: u32 = 10;
/// The largest cap allowed (the registry reads at most 100 of a user's dashboards).
pub const MAX_MAX_DASHBOARDS: u32 = 100;
/// Connections tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 65_536;
/// A connection silent this long is forgotten first (API Gateway's idle timeout is 10 minutes).
const IDLE: Duration = Duration::minutes(15);

/// The limits of one WebSocket API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkLimits {
    pub messages_per_second: f64,
    pub burst: u32,
    pub max_message_bytes: usize,
    /// Dashboard sockets one user may hold open at once: one more is refused at `$connect` (429).
    pub max_dashboards: u32,
}

impl Default for LinkLimits {
    fn default() -> Self {
        LinkLimits {
            messages_per_second: DEFAULT_RATE,
            burst: DEFAULT_BURST,
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_dashboards: DEFAULT_MAX_DASHBOARDS,
        }
    }
}

impl LinkLimits {
    /// Reads `NUSATRADE_WS_RATE` (messages/s, 0.1–100000), `NUSATRADE_WS_BURST` (1–1000000) and
    /// `NUSATRADE_WS_MAX_DASHBOARDS` (open dashboard sockets per user, 1–100).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut l = LinkLimits::default();
        if let Some(v) = get("NUSATRADE_WS_RATE") {
            l.messages_per_second = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && (0.1..=100_000.0).contains(r))
                .ok_or_else(|| {
                    format!("NUSATRADE_WS_RATE must be a number of messages per second from 0.1 to 100000, got {v:?}")
                })?;
        }
        if let Some(v) = get("NUSATRADE_WS_BURST") {
            l.burst = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|b| (1..=1_000_000).contains(b))
                .ok_or_else(|| format!("NUSATRADE_WS_BURST must be 1..=1000000, got {v:?}"))?;
        }
        if let Some(v) = get("NUSATRADE_WS_MAX_DASHBOARDS") {
            l.max_dashboards =
                v.trim().parse::<u32>().ok().filter(|n| (1..=MAX_MAX_DASHBOARDS).contains(n)).ok_or_else(|| {
                    format!("NUSATRADE_WS_MAX_DASHBOARDS must be 1..={MAX_MAX_DASHBOARDS}, got {v:?}")
                })?;
        }
        Ok(l)
    }
}

/// What to do with an inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Over the message size limit: close.
    TooLarge {
        bytes: usize,
    },
    /// Over the rate: close.
    Flood,
    /// The connection was already condemned (its close is under way): drop the message quietly.
    Closing,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
    condemned: bool,
}

/// Token buckets per connection id.
#[derive(Debug)]
pub struct LinkGuard {
    pub limits: LinkLimits,
    buckets: PerConnection<Bucket>,
}

impl LinkGuard {
    pub fn new(limits: LinkLimits) -> Self {
        LinkGuard { limits, buckets: PerConnection::default() }
    }

    /// Takes a token for a message of `bytes` on `ws` at `now`.
    pub fn admit(&self, ws: &str, bytes: usize, now: DateTime<Utc>) -> Admission {
        let limits = self.limits;
        let burst = f64::from(limits.burst);
        self.buckets.with(
            ws,
            now,
            || Bucket { tokens: burst, at: now, condemned: false },
            |b| {
                if b.condemned {
                    return Admission::Closing;
                }
                if bytes > limits.max_message_bytes {
                    b.condemned = true;
                    return Admission::TooLarge { bytes };
                }
                let elapsed = (now - b.at).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6;
                b.tokens = (b.tokens + elapsed * limits.messages_per_second).min(burst);
                b.at = now.max(b.at);
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    Admission::Admit
                } else {
                    b.condemned = true;
                    Admission::Flood
                }
            },
        )
    }

    /// Forgets a connection (`$disconnect`).
    pub fn forget(&self, ws: &str) {
        self.buckets.forget(ws);
    }
}

/// A bounded map of per-connection state: connections silent for [`IDLE`] are forgotten when it grows past
/// its bound (a function instance never hears the `$disconnect` of connections other instances served).
#[derive(Debug)]
pub struct PerConnection<T> {
    map: Mutex<HashMap<String, (DateTime<Utc>, T)>>,
}

impl<T> Default for PerConnection<T> {
    fn default() -> Self {
        PerConnection { map: Mutex::new(HashMap::new()) }
    }
}

impl<T> PerConnection<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (DateTime<Utc>, T)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state of `ws` (created by `init` when absent), marking it seen at `now`.
    pub fn with<R>(&self, ws: &str, now: DateTime<Utc>, init: impl FnOnce() -> T, f: impl FnOnce(&mut T) -> R) -> R {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(ws) {
            map.retain(|_, (seen, _)| now - *seen < IDLE);
        }
        let entry = map.entry(ws.to_owned()).or_insert_with(|| (now, init()));
        entry.0 = entry.0.max(now);
        f(&mut entry.1)
    }

    pub fn forget(&self, ws: &str) {
        self.lock().remove(ws);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let g = LinkGuard::new(LinkLimits { messages_per_second: 10.0, burst: 5, ..LinkLimits::default() });
        for _ in 0..5 {
            assert_eq!(g.admit("a", 10, t0()), Admission::Admit);
        }
        // Another connection has its own bucket.
        assert_eq!(g.admit("b", 10, t0()), Admission::Admit);
        // 100 ms later one token is back.
        let later = t0() + Duration::milliseconds(100);
        assert_eq!(g.admit("a", 10, later), Admission::Admit);
        assert_eq!(g.admit("a", 10, later), Admission::Flood);
        assert_eq!(g.admit("a", 10, later + Duration::seconds(10)), Admission::Closing, "condemned for good");
        g.forget("a");
        assert_eq!(g.admit("a", 10, later), Admission::Admit, "a new connection with that id starts full");
    }

    #[test]
    fn steady_traffic_at_the_rate_is_never_cut() {
        let g = LinkGuard::new(LinkLimits::default());
        // 50 messages/s for a minute, evenly spaced.
        for i in 0..3000 {
            assert_eq!(g.admit("a", 100, t0() + Duration::milliseconds(20 * i)), Admission::Admit, "message {i}");
        }
        // 200 at once is a flood.
        let now = t0() + Duration::minutes(2);
        let admitted = (0..200).filter(|_| g.admit("a", 100, now) == Admission::Admit).count();
        assert_eq!(admitted, 100);
    }

    #[test]
    fn oversized_messages_condemn_the_connection() {
        let g = LinkGuard::new(LinkLimits::default());
        assert_eq!(g.admit("a", MAX_MESSAGE_BYTES, t0()), Admission::Admit);
        assert_eq!(g.admit("a", MAX_MESSAGE_BYTES + 1, t0()), Admission::TooLarge { bytes: MAX_MESSAGE_BYTES + 1 });
        assert_eq!(g.admit("a", 2, t0()), Admission::Closing);
    }

    #[test]
    fn limits_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(LinkLimits::from_lookup(env(&[])).unwrap(), LinkLimits::default());
        let l = LinkLimits::from_lookup(env(&[("NUSATRADE_WS_RATE", "2.5"), ("NUSATRADE_WS_BURST", "7")])).unwrap();
        assert_eq!((l.messages_per_second, l.burst), (2.5, 7));
        for bad in ["0", "-1", "NaN", "inf", "lots"] {
            let lookup = move |k: &str| (k == "NUSATRADE_WS_RATE").then(|| bad.to_owned());
            assert!(LinkLimits::from_lookup(lookup).is_err(), "{bad}");
        }
        assert!(LinkLimits::from_lookup(env(&[("NUSATRADE_WS_BURST", "0")])).is_err());
        assert_eq!(LinkLimits::default().max_dashboards, DEFAULT_MAX_DASHBOARDS);
        let l = LinkLimits::from_lookup(env(&[("NUSATRADE_WS_MAX_DASHBOARDS", "3")])).unwrap();
        assert_eq!(l.max_dashboards, 3);
        for bad in ["0", "101", "-1", "x"] {
            let lookup = move |k: &str| (k == "NUSATRADE_WS_MAX_DASHBOARDS").then(|| bad.to_owned());
            assert!(LinkLimits::from_lookup(lookup).is_err(), "{bad}");
        }
    }

    #[test]
    fn idle_connections_are_forgotten_when_the_map_is_full() {
        let m: PerConnection<u8> = PerConnection::default();
        for i in 0..MAX_TRACKED {
            m.with(&i.to_string(), t0(), || 0, |_| ());
        }
        assert_eq!(m.len(), MAX_TRACKED);
        // Still busy: nothing to forget, the map grows by one.
        m.with("new", t0() + Duration::minutes(1), || 0, |_| ());
        assert_eq!(m.len(), MAX_TRACKED + 1);
        // Much later the idle ones go.
        m.with("newer", t0() + Duration::minutes(20), || 0, |_| ());
        assert_eq!(m.len(), 1);
    }
}
