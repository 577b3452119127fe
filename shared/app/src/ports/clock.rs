//! Time and identifiers as ports, so that tests control them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    fn epoch_seconds(&self) -> i64 {
        self.now().timestamp()
    }
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub trait IdGenerator: Send + Sync + 'static {
    fn uuid(&self) -> Uuid;

    /// A time-ordered (v7) id at `now`, its random bits from [`IdGenerator::uuid`]: sort keys built from these list
    /// items in creation order (newest first when read descending).
    fn time_ordered(&self, now: DateTime<Utc>) -> Uuid {
        let random = self.uuid().into_bytes();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&random[6..16]);
        uuid::Builder::from_unix_timestamp_millis(now.timestamp_millis().max(0) as u64, &tail).into_uuid()
    }
}

/// Random v4 UUIDs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn uuid(&self) -> Uuid {
        Uuid::new_v4()
    }
}

/// Deterministic ids for tests: 00000000-0000-4000-8000-000000000001, ...02, ...
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn uuid(&self) -> Uuid {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.epoch_seconds(), 1_700_000_000);
        c.advance(Duration::seconds(90));
        assert_eq!(c.epoch_seconds(), 1_700_000_090);
    }

    #[test]
    fn sequential_ids_are_valid_v4() {
        let ids = SequentialIds::default();
        let a = ids.uuid();
        assert_eq!(a.get_version_num(), 4);
        assert_ne!(a, ids.uuid());
    }
}
