//! Faults the simulated connector injects on purpose, for tests and demos of the server's delivery rules
//! (`nusatrade connector --drop-acks / --duplicate-acks / --delay-acks / --reject / --disconnect-every`).
//!
//! * **reject** (percent of new trade commands): answered with a failed `TRADE_RESULT` and an MT5 retcode drawn
//!   from [`OPEN_REJECTS`] / [`CLOSE_REJECTS`] / [`MODIFY_REJECTS`] instead of executing. The rejection is the
//!   command's first result, so a resend gets it again.
//! * **drop** (percent of `TRADE_RESULT` frames): the command ran, its result is never sent.
//! * **duplicate** (percent of `TRADE_RESULT` frames): sent twice.
//! * **delay** (every `TRADE_RESULT` frame): sent that long after the command, without holding up other frames;
//!   results still waiting when the link drops are lost with it (a resent command gets its result again).
//! * **disconnect every N** (executed trade commands): after the Nth command executed since the last such drop,
//!   the WebSocket is dropped (no close frame) after executing and before acknowledging; the connector reconnects
//!   as usual and the server's resend is answered from the de-duplication memory. Commands answered from that
//!   memory do not count, so the resend itself never causes another drop.
//!
//! Drop, duplicate and delay apply to every `TRADE_RESULT` frame, also to one repeated from the de-duplication
//! memory; reject and disconnect only to commands that execute. Each kind of decision draws from its own generator
//! seeded from one seed, so the same seed and the same commands give the same faults, and turning one fault on
//! does not change another's draws. Pure: no clock, no I/O.

use std::time::Duration;

use nusatrade_domain::order::Retcode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::paper::Reject;

/// The longest `--delay-acks`.
pub const MAX_ACK_DELAY: Duration = Duration::from_secs(600);
/// The largest `--disconnect-every`.
pub const MAX_DISCONNECT_EVERY: u32 = 1_000_000;

/// What an injected `TRADE_OPEN` rejection answers: a requote, a dealer rejection, not enough money.
pub const OPEN_REJECTS: [(Retcode, &str); 3] = [
    (Retcode::REQUOTE, "Requote"),
    (Retcode::REJECT, "Request rejected"),
    (Retcode::NO_MONEY, "There is not enough money to complete the request"),
];
/// What an injected `TRADE_CLOSE` rejection answers.
pub const CLOSE_REJECTS: [(Retcode, &str); 2] = [(Retcode::REQUOTE, "Requote"), (Retcode::REJECT, "Request rejected")];
/// What an injected `TRADE_MODIFY` rejection answers.
pub const MODIFY_REJECTS: [(Retcode, &str); 1] = [(Retcode::REJECT, "Request rejected")];

/// Which faults, how often, and the seed of their draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Percent of `TRADE_RESULT` frames never sent (0–100).
    pub drop_acks: f64,
    /// Percent of `TRADE_RESULT` frames sent twice (0–100).
    pub duplicate_acks: f64,
    /// Delay before every `TRADE_RESULT` frame (at most [`MAX_ACK_DELAY`]).
    pub delay_acks: Duration,
    /// Percent of new trade commands rejected instead of executed (0–100).
    pub reject: f64,
    /// Drop the WebSocket after every this many executed trade commands (0: never).
    pub disconnect_every: u32,
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for FaultConfig {
    /// No faults, seed 1.
    fn default() -> Self {
        FaultConfig {
            drop_acks: 0.0,
            duplicate_acks: 0.0,
            delay_acks: Duration::ZERO,
            reject: 0.0,
            disconnect_every: 0,
            seed: 1,
        }
    }
}

impl FaultConfig {
    /// Checks the ranges; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, pct) in
            [("--drop-acks", self.drop_acks), ("--duplicate-acks", self.duplicate_acks), ("--reject", self.reject)]
        {
            if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
                return Err(format!("{flag} must be a percentage from 0 to 100, got {pct}"));
            }
        }
        if self.delay_acks > MAX_ACK_DELAY {
            return Err(format!(
                "--delay-acks must be at most {} ms, got {} ms",
                MAX_ACK_DELAY.as_millis(),
                self.delay_acks.as_millis()
            ));
        }
        if self.disconnect_every > MAX_DISCONNECT_EVERY {
            return Err(format!(
                "--disconnect-every must be at most {MAX_DISCONNECT_EVERY}, got {}",
                self.disconnect_every
            ));
        }
        Ok(())
    }

    /// Whether any fault is on.
    pub fn any(&self) -> bool {
        self.drop_acks > 0.0
            || self.duplicate_acks > 0.0
            || !self.delay_acks.is_zero()
            || self.reject > 0.0
            || self.disconnect_every > 0
    }
}

/// Parses a percentage flag: a number from 0 to 100, optionally followed by `%`.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    match t.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a percentage from 0 to 100, got {s:?}")),
    }
}

/// What to do with one `TRADE_RESULT` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPlan {
    /// Never send it.
    Drop,
    /// Send `copies` (1 or 2) copies after `delay` (zero: now).
    Send {
        /// How many times.
        copies: usize,
        /// How long after the command.
        delay: Duration,
    },
}

/// What was injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Commands rejected instead of executed.
    pub rejected: u64,
    /// `TRADE_RESULT` frames dropped.
    pub dropped: u64,
    /// `TRADE_RESULT` frames sent twice.
    pub duplicated: u64,
    /// `TRADE_RESULT` frames delayed.
    pub delayed: u64,
    /// Links dropped after a command.
    pub disconnects: u64,
}

/// The fault decisions of one connector. See the module docs.
#[derive(Debug, Clone)]
pub struct Faults {
    config: FaultConfig,
    drop_rng: StdRng,
    duplicate_rng: StdRng,
    reject_rng: StdRng,
    executed_since_drop: u32,
    stats: FaultStats,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

/// One generator per kind of decision, each from the seed and a constant of its own.
fn stream(seed: u64, salt: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `pct` percent of the time (never below 0, always from 100, without a draw then).
fn chance(rng: &mut StdRng, pct: f64) -> bool {
    if pct <= 0.0 {
        false
    } else if pct >= 100.0 {
        true
    } else {
        rng.random::<f64>() * 100.0 < pct
    }
}

impl Faults {
    /// The decisions `config` describes (not validated here: see [`FaultConfig::validate`]).
    pub fn new(config: FaultConfig) -> Faults {
        Faults {
            config,
            drop_rng: stream(config.seed, 1),
            duplicate_rng: stream(config.seed, 2),
            reject_rng: stream(config.seed, 3),
            executed_since_drop: 0,
            stats: FaultStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// Whether a new trade command of `kind` (`TRADE_OPEN`, `TRADE_CLOSE`, `TRADE_MODIFY`) is rejected instead of
    /// executed, and with what.
    pub fn reject(&mut self, kind: &str) -> Option<Reject> {
        if !chance(&mut self.reject_rng, self.config.reject) {
            return None;
        }
        let choices: &[(Retcode, &str)] = match kind {
            "TRADE_OPEN" => &OPEN_REJECTS,
            "TRADE_CLOSE" => &CLOSE_REJECTS,
            _ => &MODIFY_REJECTS,
        };
        let (retcode, message) = choices[self.reject_rng.random_range(0..choices.len())];
        self.stats.rejected += 1;
        Some(Reject { retcode, message: message.to_owned() })
    }

    /// What to do with one `TRADE_RESULT` frame.
    pub fn plan_ack(&mut self) -> AckPlan {
        if chance(&mut self.drop_rng, self.config.drop_acks) {
            self.stats.dropped += 1;
            return AckPlan::Drop;
        }
        let copies = if chance(&mut self.duplicate_rng, self.config.duplicate_acks) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        if !self.config.delay_acks.is_zero() {
            self.stats.delayed += 1;
        }
        AckPlan::Send { copies, delay: self.config.delay_acks }
    }

    /// Counts one executed trade command; true when the link is to be dropped now (before its result is sent).
    pub fn disconnect_after_execution(&mut self) -> bool {
        if self.config.disconnect_every == 0 {
            return false;
        }
        self.executed_since_drop += 1;
        if self.executed_since_drop >= self.config.disconnect_every {
            self.executed_since_drop = 0;
            self.stats.disconnects += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(f: impl FnOnce(&mut FaultConfig)) -> Faults {
        let mut c = FaultConfig { seed: 42, ..FaultConfig::default() };
        f(&mut c);
        assert_eq!(c.validate(), Ok(()));
        Faults::new(c)
    }

    fn plans(f: &mut Faults, n: usize) -> Vec<AckPlan> {
        (0..n).map(|_| f.plan_ack()).collect()
    }

    #[test]
    fn no_faults_by_default() {
        let mut f = Faults::default();
        assert!(!f.config().any());
        for _ in 0..1000 {
            assert_eq!(f.plan_ack(), AckPlan::Send { copies: 1, delay: Duration::ZERO });
            assert_eq!(f.reject("TRADE_OPEN"), None);
            assert!(!f.disconnect_after_execution());
        }
        assert_eq!(f.stats(), FaultStats::default());
    }

    #[test]
    fn zero_and_hundred_percent_are_exact() {
        let mut all = faults(|c| {
            c.drop_acks = 100.0;
            c.reject = 100.0;
        });
        assert!(plans(&mut all, 500).iter().all(|p| *p == AckPlan::Drop));
        assert!((0..500).all(|_| all.reject("TRADE_CLOSE").is_some()));
        let mut twice = faults(|c| {
            c.duplicate_acks = 100.0;
            c.delay_acks = Duration::from_millis(250);
        });
        assert!(
            plans(&mut twice, 500).iter().all(|p| *p == AckPlan::Send { copies: 2, delay: Duration::from_millis(250) })
        );
        assert_eq!((twice.stats().duplicated, twice.stats().delayed, twice.stats().dropped), (500, 500, 0));
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let set = |c: &mut FaultConfig| {
            c.drop_acks = 30.0;
            c.duplicate_acks = 50.0;
            c.reject = 25.0;
        };
        let (mut a, mut b) = (faults(set), faults(set));
        let rejects = |f: &mut Faults| (0..300).map(|_| f.reject("TRADE_OPEN").map(|r| r.retcode)).collect::<Vec<_>>();
        assert_eq!(plans(&mut a, 300), plans(&mut b, 300));
        assert_eq!(rejects(&mut a), rejects(&mut b));
        let mut other = faults(|c| {
            set(c);
            c.seed = 43;
        });
        let mut again = faults(set);
        assert_ne!(plans(&mut other, 300), plans(&mut again, 300), "another seed, other draws");
    }

    #[test]
    fn rates_are_about_right_and_streams_are_independent() {
        let mut f = faults(|c| {
            c.drop_acks = 20.0;
            c.duplicate_acks = 50.0;
        });
        let p = plans(&mut f, 10_000);
        let dropped = p.iter().filter(|x| **x == AckPlan::Drop).count();
        let doubled = p.iter().filter(|x| matches!(x, AckPlan::Send { copies: 2, .. })).count();
        assert!((1_700..2_300).contains(&dropped), "{dropped} of 10 000 at 20 %");
        // Duplicates are drawn for sent frames only: about 50 % of the 8 000.
        assert!((3_600..4_400).contains(&doubled), "{doubled} of ~8 000 at 50 %");
        assert_eq!(f.stats().dropped as usize, dropped);

        // Turning rejects on does not change the ack decisions of the same seed.
        let set = |c: &mut FaultConfig| c.drop_acks = 40.0;
        let mut plain = faults(set);
        let mut with_rejects = faults(|c| {
            set(c);
            c.reject = 50.0;
        });
        let mut interleaved = Vec::new();
        for _ in 0..200 {
            with_rejects.reject("TRADE_OPEN");
            interleaved.push(with_rejects.plan_ack());
        }
        assert_eq!(plans(&mut plain, 200), interleaved);
    }

    #[test]
    fn rejections_carry_realistic_retcodes_per_command() {
        let mut f = faults(|c| c.reject = 100.0);
        let codes = |f: &mut Faults, kind: &str| {
            let mut seen: Vec<u32> = (0..300).filter_map(|_| f.reject(kind)).map(|r| r.retcode.0).collect();
            seen.sort_unstable();
            seen.dedup();
            seen
        };
        assert_eq!(codes(&mut f, "TRADE_OPEN"), [10004, 10006, 10019]);
        assert_eq!(codes(&mut f, "TRADE_CLOSE"), [10004, 10006]);
        assert_eq!(codes(&mut f, "TRADE_MODIFY"), [10006]);
        let r = f.reject("TRADE_OPEN").expect("rejected");
        assert!(r.retcode.class().never_executed(), "the server may treat it as final: {r:?}");
        assert!(!r.message.is_empty());
        assert_eq!(f.stats().rejected, 901);
    }

    #[test]
    fn disconnects_every_n_executed_commands() {
        let mut f = faults(|c| c.disconnect_every = 3);
        let drops: Vec<bool> = (0..9).map(|_| f.disconnect_after_execution()).collect();
        assert_eq!(drops, [false, false, true, false, false, true, false, false, true]);
        assert_eq!(f.stats().disconnects, 3);
        let mut every = faults(|c| c.disconnect_every = 1);
        assert!((0..5).all(|_| every.disconnect_after_execution()));
    }

    #[test]
    fn ranges_are_checked_with_the_flag_named() {
        let bad = |f: fn(&mut FaultConfig)| {
            let mut c = FaultConfig::default();
            f(&mut c);
            c.validate().expect_err("out of range")
        };
        assert!(bad(|c| c.drop_acks = 100.5).contains("--drop-acks"));
        assert!(bad(|c| c.duplicate_acks = -1.0).contains("--duplicate-acks"));
        assert!(bad(|c| c.reject = f64::NAN).contains("--reject"));
        assert!(bad(|c| c.delay_acks = Duration::from_secs(601)).contains("--delay-acks"));
        assert!(bad(|c| c.disconnect_every = MAX_DISCONNECT_EVERY + 1).contains("--disconnect-every"));
        assert_eq!(parse_percent("12.5"), Ok(12.5));
        assert_eq!(parse_percent(" 100% "), Ok(100.0));
        assert_eq!(parse_percent("0"), Ok(0.0));
        for s in ["101", "-5", "lots", "", "NaN", "inf"] {
            assert!(parse_percent(s).is_err(), "{s}");
        }
    }
}
