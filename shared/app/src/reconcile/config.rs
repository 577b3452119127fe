//! Settings of reconciliation, the ack timeouts and the trailing-stop driver (environment names below). Malformed
//! values fail start-up instead of silently weakening a rule.

use std::time::Duration;

use chrono::TimeDelta;
use nusatrade_domain::reconcile::ReconcileConfig;

use crate::connector::outbox::OUTBOX_TTL;
use crate::trading::orders::timeouts::parse_ack_timeout;

pub use crate::trading::orders::timeouts::ENV_ACK_TIMEOUT;
/// `NUSATRADE_RECONCILE_MIN_AGE_SECS`: orders changed less than this before a snapshot are left for the next one.
pub const ENV_MIN_AGE: &str = "NUSATRADE_RECONCILE_MIN_AGE_SECS";

/// What reconciliation, the ack timeouts and the trailing driver run with.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconcileSettings {
    /// Delay of the ack-timeout message of every command sent to a connector (default 30 s, 1–900 s: SQS's
    /// longest delay).
    pub ack_timeout: Duration,
    /// The pure kernel's thresholds (its `ack_timeout` is the one above; its `command_expiry` covers the outbox,
    /// which may resend a command for [`OUTBOX_TTL`] after it was written).
    pub kernel: ReconcileConfig,
    /// Least time between two targeted checks (`SYNC_REQUEST` with history and tickets) of one connection.
    pub check_gap: TimeDelta,
    /// Least time between two trailing-stop moves of one position (issue #6: 15 s).
    pub trailing_gap: TimeDelta,
    /// Least time between two trailing evaluations of one connection's price updates, per process.
    pub trailing_every: TimeDelta,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        let ack_timeout = Duration::from_secs(30);
        ReconcileSettings {
            ack_timeout,
            kernel: ReconcileConfig {
                min_age: TimeDelta::seconds(10),
                ack_timeout: TimeDelta::seconds(30),
                command_expiry: OUTBOX_TTL + TimeDelta::minutes(1),
                max_snapshot_age: TimeDelta::seconds(60),
            },
            check_gap: TimeDelta::seconds(30),
            trailing_gap: TimeDelta::seconds(15),
            trailing_every: TimeDelta::seconds(1),
        }
    }
}

impl ReconcileSettings {
    /// Reads [`ENV_ACK_TIMEOUT`] (1–900) and [`ENV_MIN_AGE`] (0–300); the rest keep their defaults.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut s = ReconcileSettings::default();
        let secs =
            |name: &str, range: std::ops::RangeInclusive<u64>| -> Result<Option<u64>, String> {
                match get(name) {
                    None => Ok(None),
                    Some(v) => v.trim().parse::<u64>().ok().filter(|n| range.contains(n)).map(Some).ok_or_else(|| {
                        format!("{name} must be {}..={} seconds, got {v:?}", range.start(), range.end())
                    }),
                }
            };
        if let Some(d) = parse_ack_timeout(get(ENV_ACK_TIMEOUT))? {
            s.ack_timeout = d;
            s.kernel.ack_timeout = TimeDelta::seconds(d.as_secs() as i64);
        }
        if let Some(n) = secs(ENV_MIN_AGE, 0..=300)? {
            s.kernel.min_age = TimeDelta::seconds(n as i64);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<ReconcileSettings, String> {
        ReconcileSettings::from_lookup(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_and_overrides() {
        let d = with(&[]).unwrap();
        assert_eq!(d.ack_timeout, Duration::from_secs(30));
        assert_eq!(d.kernel.ack_timeout, TimeDelta::seconds(30));
        assert!(d.kernel.command_expiry > OUTBOX_TTL, "a resent command must have expired before absence counts");
        let s = with(&[(ENV_ACK_TIMEOUT, "2"), (ENV_MIN_AGE, "1")]).unwrap();
        assert_eq!(
            (s.ack_timeout, s.kernel.ack_timeout, s.kernel.min_age),
            (Duration::from_secs(2), TimeDelta::seconds(2), TimeDelta::seconds(1))
        );
    }

    #[test]
    fn malformed_values_fail() {
        for bad in ["0", "901", "-1", "3s", ""] {
            assert!(with(&[(ENV_ACK_TIMEOUT, bad)]).is_err(), "{bad}");
        }
        assert!(with(&[(ENV_MIN_AGE, "301")]).is_err());
    }
}
