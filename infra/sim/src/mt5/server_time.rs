//! The trade server's clock. MT5 gives every time (position, deal and order times, tick times, bar times) as
//! seconds in the trade server's time zone — commonly UTC+2 in winter and UTC+3 in summer — not UTC, and
//! `copy_rates_range` / `history_*_get` read their dates in that same frame. [`ServerClock`] holds the offset:
//!
//! * `--server-utc-offset +02:00` fixes it;
//! * else it is inferred from a fresh tick: `symbol_info_tick(..).time − now`, rounded to the nearest
//!   [`OFFSET_STEP_SECS`] (15 minutes), taken only when the tick is recent — within [`FRESH_SECS`] of that
//!   rounding, inside −12:00 … +14:00, and either outside the FX weekend ([`fx_weekend`]) or with a tick time that
//!   moved since the previous look (a market that trades on weekends, such as crypto). Otherwise (markets closed)
//!   the last known offset stays, or UTC+00:00 before any, with a `WARN` saying so.
//! * It is looked at again every [`RECHECK`] (every [`RETRY`] while unknown or while a change waits for its
//!   confirmation): a different offset (a DST change) is taken once two looks in a row agree.

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc, Weekday};
use thiserror::Error;
use tracing::{info, warn};

/// Offsets are whole quarters of an hour.
pub const OFFSET_STEP_SECS: i64 = 15 * 60;
/// A tick within this many seconds of a whole offset counts as recent.
pub const FRESH_SECS: i64 = 90;
/// The offset is looked at again this often once known.
pub const RECHECK: Duration = Duration::from_secs(10 * 60);
/// … and this often while unknown or unconfirmed.
pub const RETRY: Duration = Duration::from_secs(3);
/// Offsets of real time zones: −12:00 … +14:00.
const OFFSET_RANGE: std::ops::RangeInclusive<i64> = -12 * 3600..=14 * 3600;

/// A bad `--server-utc-offset`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("--server-utc-offset takes ±HH:MM between -12:00 and +14:00 in quarters of an hour (e.g. +02:00), not {0:?}")]
pub struct OffsetError(String);

/// Reads `+02:00`, `-03:30`, `+3`, `0`.
pub fn parse_offset(s: &str) -> Result<TimeDelta, OffsetError> {
    let bad = || OffsetError(s.chars().take(16).collect());
    let t = s.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => (1, t),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let digits = |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let secs = sign * (h * 3600 + m * 60);
    if m >= 60 || secs % OFFSET_STEP_SECS != 0 || !OFFSET_RANGE.contains(&secs) {
        return Err(bad());
    }
    Ok(TimeDelta::seconds(secs))
}

/// `+02:00`.
pub fn format_offset(secs: i64) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
}

/// Whether `now` is in the FX market's weekend close (Friday 20:45 UTC to Sunday 22:15 UTC, wide enough for both
/// summer and winter hours), when ticks are old.
pub fn fx_weekend(now: DateTime<Utc>) -> bool {
    let minutes = now.hour() * 60 + now.minute();
    match now.weekday() {
        Weekday::Fri => minutes >= 20 * 60 + 45,
        Weekday::Sat => true,
        Weekday::Sun => minutes < 22 * 60 + 15,
        _ => false,
    }
}

/// The offset a tick stamped `tick_time` (server seconds) read at `now` shows, if the tick is recent enough to
/// tell (within [`FRESH_SECS`] of a whole quarter of an hour, inside the range of real offsets).
pub fn offset_of_tick(tick_time: i64, now: DateTime<Utc>) -> Option<i64> {
    let diff = tick_time - now.timestamp();
    let rounded = (diff as f64 / OFFSET_STEP_SECS as f64).round() as i64 * OFFSET_STEP_SECS;
    ((diff - rounded).abs() <= FRESH_SECS && OFFSET_RANGE.contains(&rounded)).then_some(rounded)
}

/// A look at the server's clock: the freshest tick's symbol and time (server seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The symbol (broker name).
    pub symbol: String,
    /// `symbol_info_tick(..).time`.
    pub time: i64,
}

/// The server's offset from UTC. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ServerClock {
    fixed: Option<i64>,
    known: Option<i64>,
    pending: Option<i64>,
    last: Option<Sample>,
    next_look: Option<Instant>,
    warned: bool,
}

impl ServerClock {
    /// A clock fixed at `offset` (`--server-utc-offset`), or inferred when `None`.
    pub fn new(offset: Option<TimeDelta>) -> ServerClock {
        ServerClock { fixed: offset.map(|o| o.num_seconds()), ..ServerClock::default() }
    }

    /// The offset in use, seconds (server time − UTC).
    pub fn offset_secs(&self) -> i64 {
        self.fixed.or(self.known).unwrap_or(0)
    }

    /// Whether the offset comes from the flag.
    pub fn is_fixed(&self) -> bool {
        self.fixed.is_some()
    }

    /// The inferred offset, if one was ever taken.
    pub fn known(&self) -> Option<i64> {
        self.known
    }

    /// Takes `secs`, an offset an earlier run inferred (the state file), while none is known: a start while the
    /// market is closed then reads times with it instead of UTC. A fresh tick still rules (as a DST change: two
    /// agreeing looks). Ignored under `--server-utc-offset`, once an offset is known, or when out of range.
    pub fn recall(&mut self, secs: i64) -> bool {
        if self.fixed.is_some() || self.known.is_some() || !OFFSET_RANGE.contains(&secs) || secs % OFFSET_STEP_SECS != 0
        {
            return false;
        }
        info!(offset = %format_offset(secs), "MT5 server time: UTC{} remembered from the state file (until a fresh tick shows it)", format_offset(secs));
        self.known = Some(secs);
        self.warned = false;
        true
    }

    /// Whether a look is due at `at`.
    pub fn due(&self, at: Instant) -> bool {
        self.fixed.is_none() && self.next_look.is_none_or(|n| at >= n)
    }

    /// Makes the next look due at once (after a reconnect).
    pub fn look_soon(&mut self) {
        self.next_look = None;
    }

    /// Takes a look: `sample` is the freshest tick (`None`: no tick at all) read at `now` / `at`.
    pub fn observe(&mut self, sample: Option<Sample>, now: DateTime<Utc>, at: Instant) {
        let offset = sample.as_ref().and_then(|s| offset_of_tick(s.time, now));
        let moved = match (&sample, &self.last) {
            (Some(s), Some(l)) => s.symbol == l.symbol && s.time > l.time,
            _ => false,
        };
        let fresh = offset.filter(|_| !fx_weekend(now) || moved);
        let symbol = sample.as_ref().map(|s| s.symbol.clone()).unwrap_or_default();
        self.last = sample;
        match (fresh, self.known) {
            (Some(o), None) => {
                info!(offset = %format_offset(o), %symbol, "MT5 server time: UTC{} (inferred from a fresh tick)", format_offset(o));
                self.known = Some(o);
                self.pending = None;
                self.warned = false;
            }
            (Some(o), Some(k)) if o == k => {
                self.pending = None;
                self.warned = false;
            }
            (Some(o), Some(k)) => {
                if self.pending == Some(o) {
                    info!(from = %format_offset(k), to = %format_offset(o), %symbol, "MT5 server time offset changed (DST?)");
                    self.known = Some(o);
                    self.pending = None;
                } else {
                    self.pending = Some(o);
                }
                self.warned = false;
            }
            (None, known) => {
                if !std::mem::replace(&mut self.warned, true) {
                    match known {
                        Some(k) => warn!(offset = %format_offset(k),
                            "MT5 server time: no fresh tick (market closed?); keeping the last known offset UTC{}", format_offset(k)),
                        None => warn!(
                            "MT5 server time: no fresh tick (market closed?); taking server times as UTC+00:00 until a fresh tick shows the offset (or set --server-utc-offset)"
                        ),
                    }
                }
            }
        }
        let again = if self.known.is_none() || self.pending.is_some() { RETRY } else { RECHECK };
        self.next_look = Some(at + again);
    }

    /// A server time (seconds) as UTC seconds; 0 (unset) stays 0.
    pub fn secs_to_utc(&self, secs: i64) -> i64 {
        if secs == 0 { 0 } else { secs - self.offset_secs() }
    }

    /// A server time (milliseconds) as UTC milliseconds; 0 (unset) stays 0.
    pub fn millis_to_utc(&self, msc: i64) -> i64 {
        if msc == 0 { 0 } else { msc - self.offset_secs() * 1000 }
    }

    /// A UTC date as the server-time date the terminal reads.
    pub fn to_server(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        t + TimeDelta::seconds(self.offset_secs())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// Wednesday 2026-12-02 10:00:00 UTC.
    fn weekday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
    }

    fn sample(time: i64) -> Option<Sample> {
        Some(Sample { symbol: "EURUSD.m".into(), time })
    }

    #[test]
    fn offsets_parse_and_print() {
        assert_eq!(parse_offset("+02:00"), Ok(TimeDelta::hours(2)));
        assert_eq!(parse_offset("-03:30"), Ok(TimeDelta::minutes(-210)));
        assert_eq!(parse_offset("3"), Ok(TimeDelta::hours(3)));
        assert_eq!(parse_offset("+05:45"), Ok(TimeDelta::minutes(345)));
        for bad in ["+02:10", "+15:00", "-13:00", "two", "+2:60", "", "+123:00", "+02:00:00"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(
            (format_offset(7200), format_offset(-12_600), format_offset(0)),
            ("+02:00".into(), "-03:30".into(), "+00:00".into())
        );
    }

    #[test]
    fn a_fresh_tick_gives_the_offset_rounded_to_a_quarter_hour() {
        let now = weekday();
        let t = now.timestamp();
        assert_eq!(offset_of_tick(t + 7200 - 3, now), Some(7200), "a tick 3 s old at UTC+2");
        assert_eq!(offset_of_tick(t + 10_800 + 1, now), Some(10_800), "clocks a second apart");
        assert_eq!(offset_of_tick(t - 45, now), Some(0));
        assert_eq!(offset_of_tick(t + 7200 - 600, now), None, "ten minutes old: not recent enough to tell");
        assert_eq!(offset_of_tick(t + 20 * 3600, now), None, "no such time zone");
    }

    #[test]
    fn the_clock_infers_keeps_and_follows_a_dst_change() {
        let (now, at) = (weekday(), Instant::now());
        let mut c = ServerClock::new(None);
        assert!(c.due(at));
        assert_eq!(c.offset_secs(), 0);
        c.observe(sample(now.timestamp() + 7200 - 2), now, at);
        assert_eq!((c.offset_secs(), c.known()), (7200, Some(7200)));
        assert!(!c.due(at + Duration::from_secs(60)) && c.due(at + RECHECK), "looked at again in 10 minutes");
        // Conversions both ways.
        assert_eq!(c.secs_to_utc(now.timestamp() + 7200), now.timestamp());
        assert_eq!(c.millis_to_utc((now.timestamp() + 7200) * 1000 + 5), now.timestamp() * 1000 + 5);
        assert_eq!(c.to_server(now), now + TimeDelta::hours(2));
        assert_eq!((c.secs_to_utc(0), c.millis_to_utc(0)), (0, 0), "unset times stay unset");
        // A stale tick: the last known offset stays.
        c.observe(sample(now.timestamp() - 3 * 3600 - 400), now, at);
        assert_eq!(c.offset_secs(), 7200);
        // DST: +03:00 once is not enough; twice in a row is.
        let later = now + TimeDelta::hours(1);
        c.observe(sample(later.timestamp() + 10_800), later, at);
        assert_eq!(c.offset_secs(), 7200);
        assert!(c.due(at + RETRY), "confirmed soon");
        c.observe(sample(later.timestamp() + 10_800 + 3), later + TimeDelta::seconds(3), at + RETRY);
        assert_eq!(c.offset_secs(), 10_800);
    }

    #[test]
    fn on_a_weekend_a_stale_tick_is_not_taken_but_a_moving_one_is() {
        // Saturday 2026-12-05 12:00 UTC; the last EURUSD tick is Friday's close, 23:59:58 server time (UTC+2), which
        // happens to sit near a whole offset (−12:00): still refused, it is the weekend and the tick does not move.
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        assert!(fx_weekend(now) && !fx_weekend(weekday()));
        let friday_close = Utc.with_ymd_and_hms(2026, 12, 4, 23, 59, 58).unwrap().timestamp();
        assert!(offset_of_tick(friday_close, now).is_some(), "the trap: it looks like an offset");
        let mut c = ServerClock::new(None);
        let at = Instant::now();
        c.observe(sample(friday_close), now, at);
        c.observe(sample(friday_close), now + TimeDelta::seconds(3), at + RETRY);
        assert_eq!((c.known(), c.offset_secs()), (None, 0), "falls back to UTC+00:00");
        assert!(c.due(at + RETRY * 2), "and keeps looking");
        // A symbol trading on weekends (crypto): its tick moves between two looks.
        let t = now.timestamp() + 7200;
        let mut c = ServerClock::new(None);
        c.observe(sample(t), now, at);
        assert_eq!(c.known(), None, "one look on a weekend is not enough");
        c.observe(sample(t + 3), now + TimeDelta::seconds(3), at + RETRY);
        assert_eq!(c.known(), Some(7200));
        // The flag wins and is never looked at.
        let c = ServerClock::new(Some(TimeDelta::hours(3)));
        assert!(c.is_fixed() && !c.due(at));
        assert_eq!(c.offset_secs(), 10_800);
    }

    #[test]
    fn a_remembered_offset_serves_until_a_fresh_tick_shows_another() {
        let (now, at) = (weekday(), Instant::now());
        let mut c = ServerClock::new(None);
        assert!(c.recall(10_800), "taken while none is known");
        assert_eq!((c.offset_secs(), c.known()), (10_800, Some(10_800)));
        assert!(!c.recall(7200), "not over a known offset");
        // The server's clock says +02:00 (winter time now): taken after two agreeing looks, as a DST change.
        c.observe(sample(now.timestamp() + 7200), now, at);
        assert_eq!(c.offset_secs(), 10_800);
        c.observe(sample(now.timestamp() + 7203), now + TimeDelta::seconds(3), at + RETRY);
        assert_eq!(c.offset_secs(), 7200);
        // Never over the flag, never a time zone that does not exist.
        let mut fixed = ServerClock::new(Some(TimeDelta::hours(1)));
        assert!(!fixed.recall(7200));
        assert_eq!(fixed.offset_secs(), 3600);
        let mut c = ServerClock::new(None);
        assert!(!c.recall(20 * 3600) && !c.recall(7200 + 60));
        assert_eq!(c.known(), None);
    }
}
