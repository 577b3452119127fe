//! The few numpy/pandas reductions the statistics need, with numpy's summation order (so results agree with
//! backtesting.py to the last bits, not only to rounding noise).

/// `np.add.reduce` of a contiguous float64 array: the identity `0.0` plus numpy's pairwise sum (blocks of 128,
/// 8 accumulators, halves rounded down to a multiple of 8).
pub(crate) fn sum(a: &[f64]) -> f64 {
    0.0 + pairwise(a)
}

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[full..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// pandas `Series.mean()` (NaN when empty).
pub(crate) fn mean(a: &[f64]) -> f64 {
    if a.is_empty() { f64::NAN } else { sum(a) / a.len() as f64 }
}

/// pandas `Series.var(ddof)`: `Σ (mean − x)² / (n − ddof)`, NaN when `n ≤ ddof`.
pub(crate) fn var(a: &[f64], ddof: usize) -> f64 {
    let n = a.len();
    if n <= ddof {
        return f64::NAN;
    }
    let avg = sum(a) / n as f64;
    let squares: Vec<f64> = a.iter().map(|x| (avg - x) * (avg - x)).collect();
    sum(&squares) / (n - ddof) as f64
}

/// pandas `Series.std()` (ddof 1).
pub(crate) fn std(a: &[f64]) -> f64 {
    var(a, 1).sqrt()
}

/// pandas `Series.max()` (NaN when empty; NaN values skipped).
pub(crate) fn max(a: &[f64]) -> f64 {
    let m = a.iter().fold(f64::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if m == f64::NEG_INFINITY && !a.contains(&f64::NEG_INFINITY) { f64::NAN } else { m }
}

/// pandas `Series.min()` (NaN when empty; NaN values skipped).
pub(crate) fn min(a: &[f64]) -> f64 {
    let m = a.iter().fold(f64::INFINITY, |m, &x| if x < m { x } else { m });
    if m == f64::INFINITY && !a.contains(&f64::INFINITY) { f64::NAN } else { m }
}

/// Python's `x or nan`: zero becomes NaN.
pub(crate) fn or_nan(x: f64) -> f64 {
    if x == 0.0 { f64::NAN } else { x }
}

/// backtesting.py's `geometric_mean`: `exp(Σ log(1 + r) / n) − 1`, 0 when any `1 + r ≤ 0`, NaN when empty.
pub(crate) fn geometric_mean(returns: &[f64]) -> f64 {
    let plus_one: Vec<f64> = returns.iter().map(|r| if r.is_nan() { 1.0 } else { r + 1.0 }).collect();
    if plus_one.iter().any(|x| *x <= 0.0) {
        return 0.0;
    }
    let logs: Vec<f64> = plus_one.iter().map(|x| x.ln()).collect();
    let n = if logs.is_empty() { f64::NAN } else { logs.len() as f64 };
    (sum(&logs) / n).exp() - 1.0
}

/// `np.cov(x, y)[0, 1] / np.cov(x, y)[1, 1]` (ddof 1), NaN when fewer than 2 points.
pub(crate) fn beta(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let (x, y) = (&x[..n], &y[..n]);
    let (mx, my) = (sum(x) / n as f64, sum(y) / n as f64);
    let dx: Vec<f64> = x.iter().map(|v| v - mx).collect();
    let dy: Vec<f64> = y.iter().map(|v| v - my).collect();
    let xy: Vec<f64> = dx.iter().zip(&dy).map(|(a, b)| a * b).collect();
    let yy: Vec<f64> = dy.iter().map(|b| b * b).collect();
    let f = 1.0 / (n - 1) as f64;
    (sum(&xy) * f) / (sum(&yy) * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_matches_exact_sums_and_numpy_grouping() {
        // Exact sums (integers) of every length class: < 8, ≤ 128, recursive.
        for n in [0usize, 1, 7, 8, 9, 127, 128, 129, 1000] {
            let a: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            assert_eq!(sum(&a), (n * (n + 1) / 2) as f64, "n = {n}");
        }
        // Values numpy 2.4 printed: np.add.reduce([1e16, 1, -1e16, 1, 0, 0, 0, 0, 1]) groups (1e16 + 1) + (-1e16 + 1)
        // (each rounds back to ±1e16) = 0, then + 1 = 1; a left-to-right loop gives 2.
        let a = [1e16, 1.0, -1e16, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(sum(&a), 1.0);
        // np.r_[[1e16] + [1.0] * 200 + [-1e16]].sum() == 188.0 (Python's sum() gives 0.0).
        let mut b = vec![1e16];
        b.extend([1.0; 200]);
        b.push(-1e16);
        assert_eq!(sum(&b), 188.0);
    }

    #[test]
    fn moments_table() {
        let cases: &[(&str, &[f64], f64, f64)] = &[
            // (label, values, mean, sample variance)
            ("two", &[1.0, 3.0], 2.0, 2.0),
            ("four", &[2.0, 4.0, 4.0, 6.0], 4.0, 8.0 / 3.0),
            ("constant", &[5.0, 5.0, 5.0], 5.0, 0.0),
        ];
        for (label, a, m, v) in cases {
            assert_eq!(mean(a), *m, "{label}");
            assert!((var(a, 1) - v).abs() < 1e-15, "{label}");
        }
        assert!(mean(&[]).is_nan());
        assert!(var(&[1.0], 1).is_nan(), "one value has no sample variance");
        assert_eq!(std(&[1.0, 3.0]), 2f64.sqrt());
        assert_eq!((max(&[1.0, f64::NAN, 3.0]), min(&[1.0, f64::NAN, 3.0])), (3.0, 1.0));
        assert!(max(&[]).is_nan());
        assert!(or_nan(0.0).is_nan());
        assert_eq!(or_nan(2.0), 2.0);
    }

    #[test]
    fn geometric_mean_table() {
        // (1.1 × 0.9)^(1/2) − 1 = sqrt(0.99) − 1.
        assert!((geometric_mean(&[0.1, -0.1]) - (0.99f64.sqrt() - 1.0)).abs() < 1e-15);
        assert_eq!(geometric_mean(&[0.5, -1.0]), 0.0, "a total loss makes it 0");
        assert!(geometric_mean(&[]).is_nan());
        assert!((geometric_mean(&[0.21, f64::NAN]) - (1.21f64.sqrt() - 1.0)).abs() < 1e-15, "NaN counts as 0");
    }

    #[test]
    fn beta_of_scaled_series() {
        let m = [0.01, -0.02, 0.03, 0.0, -0.01];
        let e: Vec<f64> = m.iter().map(|x| 0.5 * x).collect();
        assert!((beta(&e, &m) - 0.5).abs() < 1e-12);
        assert!(beta(&[1.0], &[1.0]).is_nan());
    }
}
