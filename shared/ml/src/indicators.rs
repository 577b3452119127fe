//! Causal technical indicators, following **TA-Lib** (the reference library; default compatibility mode,
//! unstable period 0).
//!
//! The indicators of the feature set live in the domain crate (`nusatrade_domain::ml::indicators`, re-exported
//! here unchanged, with their hand-computed unit tests there): SMA, EMA (seeded with the SMA of the first `period`
//! values), MACD 12/26/9 (TA-Lib's seeding of the fast EMA), RSI/ATR/+DI/−DI/ADX with Wilder's smoothing, fast
//! stochastic %K/%D, CCI with the mean absolute deviation, Bollinger bands with the population σ, ROC, momentum,
//! true range, OBV. This module adds [`williams_r`].
//!
//! Conventions for all of them:
//! * output `i` belongs to input bar `i`, and depends on inputs `0..=i` only (causal; tested in the domain crate
//!   and, for the whole feature set, in [`features`](crate::features));
//! * the warm-up (TA-Lib's lookback) is `NaN`, never back-filled; two outputs start earlier than in TA-Lib, which
//!   aligns them with their signal line: the MACD line (bar `slow − 1`, TA-Lib `slow + signal − 2`) and the fast
//!   stochastic %K (bar `k − 1`, TA-Lib `k + d − 2`) — where both exist the values are TA-Lib's;
//! * agreement with TA-Lib itself is checked in `tests/talib_reference.rs` against values that the TA-Lib C library
//!   (0.8.1, through its Python wrapper) computed on the EURUSD sample (fixture and the script that made it in `tests/fixtures/`).

pub use nusatrade_domain::ml::indicators::*;

/// Williams %R (TA-Lib `WILLR`): `−100 · (HH − close) / (HH − LL)` over the last `period` bars, in `[−100, 0]`;
/// 0 when `HH = LL` (TA-Lib). Lookback `period − 1`.
///
/// # Panics
/// If `period` is 0, or the slices differ in length.
pub fn williams_r(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    assert!(period >= 1, "indicator period must be at least 1");
    assert!(high.len() == close.len() && low.len() == close.len(), "high, low and close must have the same length");
    let hh = rolling_max(high, period);
    let ll = rolling_min(low, period);
    (0..close.len())
        .map(|i| {
            let range = hh[i] - ll[i];
            if range.is_nan() {
                f64::NAN
            } else if range == 0.0 {
                0.0
            } else {
                -100.0 * (hh[i] - close[i]) / range
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: f64 = f64::NAN;

    #[track_caller]
    fn close_to(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            if e.is_nan() {
                assert!(a.is_nan(), "bar {i}: expected NaN, got {a}");
            } else {
                assert!((a - e).abs() < 1e-12, "bar {i}: expected {e}, got {a}");
            }
        }
    }

    #[test]
    fn williams_r_by_hand() {
        let high = [10.0, 12.0, 11.0, 13.0, 12.0];
        let low = [8.0, 9.0, 9.0, 10.0, 11.0];
        let close = [9.0, 11.0, 10.0, 12.0, 11.5];
        // period 3: bar 2: HH 12, LL 8 → −100·(12 − 10)/4 = −50; bar 3: HH 13, LL 9 → −100·1/4 = −25;
        // bar 4: HH 13, LL 9 → −100·1.5/4 = −37.5. (%R = %K − 100 for the same window.)
        close_to(&williams_r(&high, &low, &close, 3), &[N, N, -50.0, -25.0, -37.5]);
        // Close at the high → 0, at the low → −100; flat window → 0 (TA-Lib).
        close_to(&williams_r(&[2.0, 3.0], &[1.0, 1.0], &[2.0, 3.0], 2), &[N, 0.0]);
        close_to(&williams_r(&[2.0, 3.0], &[1.0, 1.0], &[2.0, 1.0], 2), &[N, -100.0]);
        close_to(&williams_r(&[1.0; 3], &[1.0; 3], &[1.0; 3], 2), &[N, 0.0, 0.0]);
        close_to(&williams_r(&high, &low, &close, 1), &[-50.0, -100.0 / 3.0, -50.0, -100.0 / 3.0, -50.0]);
    }

    #[test]
    fn williams_r_is_causal() {
        let high = [10.0, 12.0, 11.0, 13.0, 12.0, 14.0];
        let low = [8.0, 9.0, 9.0, 10.0, 11.0, 12.0];
        let close = [9.0, 11.0, 10.0, 12.0, 11.5, 13.0];
        let full = williams_r(&high, &low, &close, 3);
        for n in 1..=close.len() {
            let prefix = williams_r(&high[..n], &low[..n], &close[..n], 3);
            assert_eq!(format!("{prefix:?}"), format!("{:?}", &full[..n]));
        }
    }
}
