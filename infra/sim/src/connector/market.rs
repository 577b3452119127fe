//! The simulated connector's live market: a [`PriceFeed`] released in batches (the ticks that share one feed
//! time) at a wall-clock pace.
//!
//! * [`Pacing::Interval`]: one batch per interval, whatever the feed's own timestamps (a random walk steps once
//!   per interval; a candle replay plays one quarter-bar per interval).
//! * [`Pacing::Speed`]: the feed's own time, accelerated `speed` times (3600: one hour of candles per second);
//!   gaps (weekends) are cut to [`MAX_REPLAY_GAP`].
//!
//! A replay ends with its data (prices then stay where they are) unless it loops, starting again from its
//! first candle.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use nusatrade_domain::instrument::Symbol;

use crate::feed::{CandleReplay, FeedError, PriceFeed, RandomWalk, Tick};

/// The longest wait between two batches in [`Pacing::Speed`].
pub const MAX_REPLAY_GAP: Duration = Duration::from_secs(5);

/// Where prices come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// A seeded random walk over these symbols, from their default start prices.
    RandomWalk {
        /// Seed: the same seed gives the same prices.
        seed: u64,
        /// Symbols quoted.
        symbols: Vec<Symbol>,
    },
    /// Candles of one symbol from a CSV (`,Open,High,Low,Close,Volume`), taken as bid prices.
    Replay {
        /// The CSV file.
        path: PathBuf,
        /// The symbol the candles are for.
        symbol: Symbol,
        /// Start again from the first candle after the last.
        looped: bool,
    },
}

/// How fast batches are released.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// One batch per interval.
    Interval(Duration),
    /// Feed time accelerated this many times.
    Speed(f64),
}

/// The feed and its pacing.
#[derive(Debug, Clone)]
pub struct Market {
    feed: PriceFeed,
    restart: Option<PriceFeed>,
    pacing: Pacing,
    head: Option<Tick>,
    last_time: Option<DateTime<Utc>>,
    symbols: Vec<Symbol>,
}

impl Market {
    /// Opens the source. A random walk starts at `start` and steps by the interval of `pacing` (one second in
    /// [`Pacing::Speed`]).
    pub fn open(source: &PriceSource, pacing: Pacing, start: DateTime<Utc>) -> Result<Market, FeedError> {
        let (feed, restart, symbols) = match source {
            PriceSource::RandomWalk { seed, symbols } => {
                let step = match pacing {
                    Pacing::Interval(d) => TimeDelta::from_std(d).unwrap_or(TimeDelta::seconds(1)),
                    Pacing::Speed(_) => TimeDelta::seconds(1),
                };
                let walk = RandomWalk::new(*seed, symbols.iter().copied(), start, step)?;
                (PriceFeed::random(walk), None, symbols.clone())
            }
            PriceSource::Replay { path, symbol, looped } => {
                let feed = PriceFeed::replay(CandleReplay::from_path(*symbol, path)?);
                let restart = looped.then(|| feed.clone());
                (feed, restart, vec![*symbol])
            }
        };
        Ok(Market::from_feed(feed, restart, pacing, symbols))
    }

    /// A market over an existing feed (`restart`: the feed to start again from when it ends).
    pub fn from_feed(mut feed: PriceFeed, restart: Option<PriceFeed>, pacing: Pacing, symbols: Vec<Symbol>) -> Market {
        let head = feed.next_tick();
        Market { feed, restart, pacing, head, last_time: None, symbols }
    }

    /// The symbols quoted.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The next batch (the ticks sharing the next feed time) and how long after the previous batch it is due
    /// (zero for the first). `None` when the feed has ended for good.
    pub fn next_batch(&mut self) -> Option<(Vec<Tick>, Duration)> {
        if self.head.is_none()
            && let Some(fresh) = &self.restart
        {
            self.feed = fresh.clone();
            self.head = self.feed.next_tick();
            self.last_time = None;
        }
        let first = self.head.take()?;
        let mut batch = vec![first];
        loop {
            match self.feed.next_tick() {
                Some(t) if t.time == first.time => batch.push(t),
                next => {
                    self.head = next;
                    break;
                }
            }
        }
        let wait = match (self.pacing, self.last_time) {
            (_, None) => Duration::ZERO,
            (Pacing::Interval(d), Some(_)) => d,
            (Pacing::Speed(speed), Some(last)) => {
                let gap = (first.time - last).to_std().unwrap_or(Duration::ZERO).as_secs_f64() / speed;
                if gap.is_finite() && gap >= 0.0 {
                    Duration::from_secs_f64(gap.min(MAX_REPLAY_GAP.as_secs_f64()))
                } else {
                    MAX_REPLAY_GAP
                }
            }
        };
        self.last_time = Some(first.time);
        Some((batch, wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::CandleReplay;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("symbol")
    }

    const CSV: &str = ",Open,High,Low,Close,Volume\n\
        2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n\
        2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241\n";

    fn replay() -> PriceFeed {
        PriceFeed::replay(CandleReplay::from_reader(sym("EURUSD"), CSV.as_bytes()).expect("csv"))
    }

    #[test]
    fn a_walk_releases_one_step_of_every_symbol_per_interval() {
        let symbols = vec![sym("EURUSD"), sym("USDJPY"), sym("XAUUSD")];
        let source = PriceSource::RandomWalk { seed: 7, symbols: symbols.clone() };
        let mut m =
            Market::open(&source, Pacing::Interval(Duration::from_millis(250)), DateTime::UNIX_EPOCH).expect("walk");
        assert_eq!(m.symbols(), symbols.as_slice());
        let (first, wait) = m.next_batch().expect("first");
        assert_eq!(wait, Duration::ZERO);
        assert_eq!(first.iter().map(|t| t.symbol).collect::<Vec<_>>(), symbols);
        let (second, wait) = m.next_batch().expect("second");
        assert_eq!((second.len(), wait), (3, Duration::from_millis(250)));
        assert_eq!(second[0].time - first[0].time, TimeDelta::milliseconds(250));
        let mut again =
            Market::open(&source, Pacing::Interval(Duration::from_millis(250)), DateTime::UNIX_EPOCH).expect("walk");
        again.next_batch();
        assert_eq!(again.next_batch().map(|b| b.0), Some(second), "seeded: the same prices");
    }

    #[test]
    fn a_replay_paces_by_its_own_time_and_ends_or_loops() {
        let mut m = Market::from_feed(replay(), None, Pacing::Speed(900.0), vec![sym("EURUSD")]);
        let mut waits = Vec::new();
        while let Some((batch, wait)) = m.next_batch() {
            assert_eq!(batch.len(), 1, "one symbol: one tick per feed time");
            waits.push(wait);
        }
        // 8 ticks a quarter-bar (15 min) apart, at 900×: one second each.
        assert_eq!(waits.len(), 8);
        assert_eq!(waits[0], Duration::ZERO);
        assert!(waits[1..].iter().all(|w| *w == Duration::from_secs(1)), "{waits:?}");
        assert!(m.next_batch().is_none(), "ended for good");

        let mut slow = Market::from_feed(replay(), None, Pacing::Speed(1.0), vec![sym("EURUSD")]);
        slow.next_batch();
        assert_eq!(slow.next_batch().map(|b| b.1), Some(MAX_REPLAY_GAP), "gaps capped");

        let mut looped = Market::from_feed(replay(), Some(replay()), Pacing::Interval(Duration::from_secs(1)), vec![]);
        let firsts: Vec<Tick> = (0..10).filter_map(|_| looped.next_batch()).map(|b| b.0[0]).collect();
        assert_eq!(firsts.len(), 10);
        assert_eq!(firsts[8], firsts[0], "starts again from the first candle");
    }
}
