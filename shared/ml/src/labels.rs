//! Labels from the forward return over a horizon.
//!
//! The forward return of bar `t` is `close[t + h] / close[t] − 1`. It is known only once bar `t + h` has closed,
//! so the last `h` bars have no label ([`forward_returns`] gives `NaN`, [`labels`] gives `None`) and are excluded
//! from training and evaluation — never filled.
//!
//! Two schemes ([`LabelKind`]):
//! * **three-class**: `up` if `r > threshold`, `down` if `r < −threshold`, `flat` otherwise;
//! * **binary** (the original runtime trainer's, contract §6.3): `up` if `r > threshold`, otherwise `down`
//!   (which therefore means "not up", flat bars included).
//!
//! Class indices are positions in [`LabelSpec::classes`]: `[down, up]` or `[down, flat, up]`. The original
//! misread its 3-class models by assuming class 1 was BUY (contract §9.3); here every model output is tied to a
//! named [`Class`], and predictions go through [`LabelSpec::classes`].

use serde::{Deserialize, Serialize};

/// A label class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Forward return below `−threshold` (three-class) or not above `threshold` (binary).
    Down,
    /// Forward return within `±threshold` (three-class only).
    Flat,
    /// Forward return above `threshold`.
    Up,
}

impl Class {
    /// `down`, `flat`, `up`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Down => "down",
            Class::Flat => "flat",
            Class::Up => "up",
        }
    }
}

/// Label scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// `[down, flat, up]`.
    ThreeClass,
    /// `[down, up]`, down meaning "not up".
    Binary,
}

/// Label definition (stored in the artefact).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// Scheme.
    pub kind: LabelKind,
    /// Horizon in bars, 1–500.
    pub horizon: usize,
    /// Return threshold as a fraction (0.0005 = 5 basis points), finite, in `[0, 0.5)`; greater than 0 for
    /// three-class labels.
    pub threshold: f64,
}

impl Default for LabelSpec {
    /// Three classes, 5 bars, ±0.0005 (the original's horizon and threshold).
    fn default() -> Self {
        LabelSpec { kind: LabelKind::ThreeClass, horizon: 5, threshold: 0.0005 }
    }
}

impl LabelSpec {
    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=500).contains(&self.horizon) {
            return Err(format!("label horizon must be 1–500 bars, got {}", self.horizon));
        }
        if !self.threshold.is_finite() || !(0.0..0.5).contains(&self.threshold) {
            return Err(format!("label threshold must be in [0, 0.5), got {}", self.threshold));
        }
        if self.kind == LabelKind::ThreeClass && self.threshold == 0.0 {
            return Err("a three-class label needs a threshold above 0".to_owned());
        }
        Ok(())
    }

    /// The classes, in model index order.
    pub fn classes(&self) -> &'static [Class] {
        match self.kind {
            LabelKind::ThreeClass => &[Class::Down, Class::Flat, Class::Up],
            LabelKind::Binary => &[Class::Down, Class::Up],
        }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes().len()
    }

    /// Index of `class` in [`classes`](Self::classes) (`None` for `flat` in a binary scheme).
    pub fn index_of(&self, class: Class) -> Option<usize> {
        self.classes().iter().position(|c| *c == class)
    }

    /// The class of a forward return (`None` for `NaN`).
    pub fn classify(&self, r: f64) -> Option<Class> {
        if r.is_nan() {
            return None;
        }
        Some(match self.kind {
            LabelKind::ThreeClass if r > self.threshold => Class::Up,
            LabelKind::ThreeClass if r < -self.threshold => Class::Down,
            LabelKind::ThreeClass => Class::Flat,
            LabelKind::Binary if r > self.threshold => Class::Up,
            LabelKind::Binary => Class::Down,
        })
    }
}

/// `close[t + horizon] / close[t] − 1`, `NaN` for the last `horizon` bars.
pub fn forward_returns(close: &[f64], horizon: usize) -> Vec<f64> {
    (0..close.len()).map(|t| close.get(t + horizon).map_or(f64::NAN, |future| future / close[t] - 1.0)).collect()
}

/// The class index (into [`LabelSpec::classes`]) of every bar; `None` for the last `horizon` bars.
pub fn labels(close: &[f64], spec: &LabelSpec) -> Vec<Option<usize>> {
    forward_returns(close, spec.horizon).into_iter().map(|r| spec.classify(r).and_then(|c| spec.index_of(c))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_returns_by_hand() {
        let close = [100.0, 101.0, 99.0, 99.0, 102.0];
        let r = forward_returns(&close, 2);
        // 99/100 − 1 = −0.01; 99/101 − 1; 102/99 − 1; then unknown.
        assert!((r[0] + 0.01).abs() < 1e-15);
        assert!((r[1] - (99.0 / 101.0 - 1.0)).abs() < 1e-15);
        assert!((r[2] - (102.0 / 99.0 - 1.0)).abs() < 1e-15);
        assert!(r[3].is_nan() && r[4].is_nan());
    }

    #[test]
    fn three_class_and_binary() {
        let close = [100.0, 100.5, 100.0, 100.02, 100.0, 99.0];
        let three = LabelSpec { kind: LabelKind::ThreeClass, horizon: 1, threshold: 0.001 };
        // +0.5 % up; −0.497 % down; +0.02 % flat; −0.02 % flat; −1 % down; last unknown.
        assert_eq!(labels(&close, &three), [Some(2), Some(0), Some(1), Some(1), Some(0), None]);
        let binary = LabelSpec { kind: LabelKind::Binary, horizon: 1, threshold: 0.0 };
        assert_eq!(labels(&close, &binary), [Some(1), Some(0), Some(1), Some(0), Some(0), None]);
        // Binary with a threshold: small rises are "down" (not up), as in the original.
        let binary = LabelSpec { kind: LabelKind::Binary, horizon: 1, threshold: 0.001 };
        assert_eq!(labels(&close, &binary), [Some(1), Some(0), Some(0), Some(0), Some(0), None]);
        // The last `horizon` bars are unlabeled.
        let h3 = LabelSpec { horizon: 3, ..three };
        assert_eq!(labels(&close, &h3).iter().filter(|l| l.is_none()).count(), 3);
        assert_eq!(labels(&close[..2], &h3), [None, None]);
    }

    #[test]
    fn class_indices_are_named() {
        let three = LabelSpec::default();
        assert_eq!(three.classes(), [Class::Down, Class::Flat, Class::Up]);
        assert_eq!(three.index_of(Class::Up), Some(2));
        let binary = LabelSpec { kind: LabelKind::Binary, ..three };
        assert_eq!(binary.index_of(Class::Up), Some(1));
        assert_eq!(binary.index_of(Class::Flat), None);
        assert_eq!(binary.n_classes(), 2);
    }

    #[test]
    fn validation() {
        assert!(LabelSpec::default().validate().is_ok());
        let bad = |s: LabelSpec| s.validate().unwrap_err();
        assert!(bad(LabelSpec { horizon: 0, ..Default::default() }).contains("horizon"));
        assert!(bad(LabelSpec { horizon: 501, ..Default::default() }).contains("horizon"));
        assert!(bad(LabelSpec { threshold: f64::NAN, ..Default::default() }).contains("threshold"));
        assert!(bad(LabelSpec { threshold: -0.1, ..Default::default() }).contains("threshold"));
        assert!(bad(LabelSpec { threshold: 0.0, ..Default::default() }).contains("three-class"));
        assert!(LabelSpec { kind: LabelKind::Binary, threshold: 0.0, horizon: 1 }.validate().is_ok());
        let json = r#"{"kind":"binary","horizon":3,"threshold":0.001,"extra":1}"#;
        assert!(serde_json::from_str::<LabelSpec>(json).is_err(), "unknown fields are refused");
    }
}
