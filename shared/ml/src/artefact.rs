//! The model artefact: a versioned, self-describing, checksummed JSON document — data only, never code
//! (no pickle-like format: decoding builds plain structs and runs nothing from the file).
//!
//! ```text
//! {"format":"nusatrade-ml-artefact","format_version":1,
//!  "checksum":{"algorithm":"sha256","value":"<hex>"},
//!  "header":{ model kind and config, feature set, label, split, signal and backtest settings,
//!             training window, metrics, crate versions, symbol, timeframe, trained_at },
//!  "payload":{ the trained model }}
//! ```
//!
//! The checksum is SHA-256 over the exact stored bytes of `header`, a newline, and the exact stored bytes of
//! `payload` (kept as raw JSON when decoding, so no re-serialisation is involved): changing any byte of either —
//! a tree split, a weight, a metric, the feature list — makes [`decode`] refuse the artefact. The encoding is
//! deterministic for a given artefact.
//!
//! [`encode`] may gzip the document ([`Encoding::Gzip`]; a random forest's JSON shrinks about 5×); [`decode`]
//! recognises gzip by its magic bytes. Both enforce a size limit — on the stored bytes and on the decompressed
//! document — so an oversized or bomb-like object is refused before it is parsed.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::candles::Timeframe;
use crate::features::FeatureSpec;
use crate::labels::LabelSpec;
use crate::metrics::{BacktestConfig, TrainingMetrics};
use crate::models::{ModelConfig, ModelKind, TrainedModel};
use crate::signal::SignalConfig;
use crate::split::SplitConfig;

/// The `format` value.
pub const FORMAT: &str = "nusatrade-ml-artefact";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Default size limit (stored and decompressed): 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// Time span of a block of rows (bar times, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// First bar.
    pub from: DateTime<Utc>,
    /// Last bar.
    pub to: DateTime<Utc>,
}

/// The data a model was trained and evaluated on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// Bars given to training (before warm-up and label trimming).
    pub bars: usize,
    /// First and last bar given.
    pub series: TimeSpan,
    /// Training rows' bars.
    pub train: TimeSpan,
    /// Validation rows' bars.
    pub validation: TimeSpan,
    /// Test rows' bars.
    pub test: TimeSpan,
}

/// Everything about a model except its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtefactHeader {
    /// Model family.
    pub model_kind: ModelKind,
    /// Hyperparameters.
    pub model_config: ModelConfig,
    /// Feature set, columns in model order.
    pub features: FeatureSpec,
    /// Label definition.
    pub label: LabelSpec,
    /// Split shares (the purge gap is the label horizon).
    pub split: SplitConfig,
    /// Decision settings used by the backtest (the default for predictions).
    pub signal: SignalConfig,
    /// Backtest settings.
    pub backtest: BacktestConfig,
    /// Instrument, when known.
    pub symbol: Option<String>,
    /// Bar length, when known.
    pub timeframe: Option<Timeframe>,
    /// Data used.
    pub training_window: TrainingWindow,
    /// Measured quality.
    pub metrics: TrainingMetrics,
    /// Versions of the crates that trained the model (`nusatrade-ml`, `forust-ml`, `smartcore`, `linfa-logistic`).
    pub crate_versions: BTreeMap<String, String>,
    /// When training finished.
    pub trained_at: DateTime<Utc>,
}

/// A model with its header.
#[derive(Debug)]
pub struct Artefact {
    /// Description.
    pub header: ArtefactHeader,
    /// The model.
    pub model: TrainedModel,
}

/// A decoded artefact and the checksum it was verified against.
#[derive(Debug)]
pub struct Decoded {
    /// The artefact.
    pub artefact: Artefact,
    /// Its verified SHA-256 (hex) — with the model id and version, a cache key.
    pub checksum: String,
}

/// How [`encode`] stores the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Plain JSON.
    Json,
    /// Gzip-compressed JSON.
    Gzip,
}

/// Why an artefact could not be written or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArtefactError {
    /// Larger than the limit (stored or decompressed size).
    #[error("model artefact is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Not JSON of the expected shape, or corrupt gzip.
    #[error("malformed model artefact: {0}")]
    Malformed(String),
    /// Another format.
    #[error("not a {FORMAT} document (format {0:?})")]
    WrongFormat(String),
    /// A version this crate cannot read.
    #[error("unsupported model artefact version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The content does not match its checksum: tampered with or damaged.
    #[error("model artefact checksum mismatch: expected {expected}, computed {actual}")]
    ChecksumMismatch {
        /// Stored checksum.
        expected: String,
        /// Checksum of the content.
        actual: String,
    },
    /// Decoded, but inconsistent or incompatible with this build (feature set, shapes).
    #[error("unusable model artefact: {0}")]
    Incompatible(String),
}

#[derive(Serialize, Deserialize)]
struct Checksum {
    algorithm: String,
    value: String,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    format: &'static str,
    format_version: u32,
    checksum: Checksum,
    header: &'a RawValue,
    payload: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn<'a> {
    format: String,
    format_version: u32,
    checksum: Checksum,
    #[serde(borrow)]
    header: &'a RawValue,
    #[serde(borrow)]
    payload: &'a RawValue,
}

fn sha256_hex(header: &str, payload: &str) -> String {
    let mut h = Sha256::new();
    h.update(header.as_bytes());
    h.update(b"\n");
    h.update(payload.as_bytes());
    format!("{:x}", h.finalize())
}

/// The crate versions recorded in new artefacts.
pub fn crate_versions() -> BTreeMap<String, String> {
    [
        ("nusatrade-ml", env!("CARGO_PKG_VERSION")),
        ("forust-ml", "0.8.0"),
        ("smartcore", "0.7.0"),
        ("linfa-logistic", "0.8.1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Serialises `artefact` (deterministically) and returns the bytes with their checksum; refuses a result larger
/// than `max_bytes` (checked on the JSON and on the stored bytes).
pub fn encode(artefact: &Artefact, encoding: Encoding, max_bytes: usize) -> Result<(Vec<u8>, String), ArtefactError> {
    let malformed = |e: serde_json::Error| ArtefactError::Malformed(e.to_string());
    let header = serde_json::to_string(&artefact.header).map_err(malformed)?;
    let payload = serde_json::to_string(&artefact.model).map_err(malformed)?;
    let checksum = sha256_hex(&header, &payload);
    let header_raw = RawValue::from_string(header).map_err(malformed)?;
    let payload_raw = RawValue::from_string(payload).map_err(malformed)?;
    let json = serde_json::to_vec(&EnvelopeOut {
        format: FORMAT,
        format_version: FORMAT_VERSION,
        checksum: Checksum { algorithm: "sha256".into(), value: checksum.clone() },
        header: &header_raw,
        payload: &payload_raw,
    })
    .map_err(malformed)?;
    if json.len() > max_bytes {
        return Err(ArtefactError::TooLarge { max: max_bytes });
    }
    let bytes = match encoding {
        Encoding::Json => json,
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&json).expect("in-memory gzip write");
            e.finish().expect("in-memory gzip finish")
        }
    };
    if bytes.len() > max_bytes {
        return Err(ArtefactError::TooLarge { max: max_bytes });
    }
    Ok((bytes, checksum))
}

/// Reads an artefact made by [`encode`]: size limit, format and version, checksum, then the header and payload,
/// then consistency (feature set this build computes, model shapes matching the header). Nothing is executed.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Decoded, ArtefactError> {
    if bytes.len() > max_bytes {
        return Err(ArtefactError::TooLarge { max: max_bytes });
    }
    let inflated;
    let json: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| ArtefactError::Malformed(format!("gzip: {e}")))?;
        if out.len() > max_bytes {
            return Err(ArtefactError::TooLarge { max: max_bytes });
        }
        inflated = out;
        &inflated
    } else {
        bytes
    };
    let envelope: EnvelopeIn<'_> = serde_json::from_slice(json).map_err(|e| ArtefactError::Malformed(e.to_string()))?;
    if envelope.format != FORMAT {
        return Err(ArtefactError::WrongFormat(envelope.format));
    }
    if envelope.format_version != FORMAT_VERSION {
        return Err(ArtefactError::UnsupportedVersion { found: envelope.format_version });
    }
    if envelope.checksum.algorithm != "sha256" {
        return Err(ArtefactError::Malformed(format!("checksum algorithm {:?}", envelope.checksum.algorithm)));
    }
    let actual = sha256_hex(envelope.header.get(), envelope.payload.get());
    if actual != envelope.checksum.value {
        return Err(ArtefactError::ChecksumMismatch { expected: envelope.checksum.value, actual });
    }
    let header: ArtefactHeader =
        serde_json::from_str(envelope.header.get()).map_err(|e| ArtefactError::Malformed(format!("header: {e}")))?;
    let model: TrainedModel =
        serde_json::from_str(envelope.payload.get()).map_err(|e| ArtefactError::Malformed(format!("payload: {e}")))?;
    if model.kind() == ModelKind::RandomForest {
        crate::models::check_forest_json(envelope.payload.get())
            .map_err(|e| ArtefactError::Incompatible(e.to_string()))?;
    }
    check(&header, &model)?;
    Ok(Decoded { artefact: Artefact { header, model }, checksum: actual })
}

fn check(header: &ArtefactHeader, model: &TrainedModel) -> Result<(), ArtefactError> {
    let bad = |m: String| Err(ArtefactError::Incompatible(m));
    header.features.check_compatible().or_else(bad)?;
    model.check_shape().map_err(|e| ArtefactError::Incompatible(e.to_string()))?;
    if model.kind() != header.model_kind || header.model_config.kind() != header.model_kind {
        return bad("model kind differs from the header's".into());
    }
    if model.n_classes() != header.label.n_classes() {
        return bad(format!("{} model classes for a {}-class label", model.n_classes(), header.label.n_classes()));
    }
    if model.n_features() != header.features.names.len() {
        return bad(format!("{} model inputs for {} features", model.n_features(), header.features.names.len()));
    }
    header.label.validate().or_else(bad)?;
    header.signal.validate().or_else(bad)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candles::{Candle, CandleSeries};
    use crate::models::{ForestParams, ModelKind};
    use crate::train::{TrainConfig, TrainMeta, train};
    use chrono::TimeZone;

    /// A 700-bar random walk (SplitMix64).
    fn walk() -> CandleSeries {
        let mut s = 11u64;
        let mut unit = move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut price = 1.1;
        let bars = (0..700)
            .map(|i| {
                let close = price * (1.0 + (unit() - 0.5) * 0.004);
                let bar = Candle {
                    time: start + chrono::Duration::hours(i),
                    open: price,
                    high: price.max(close) * (1.0 + unit() * 0.001),
                    low: price.min(close) * (1.0 - unit() * 0.001),
                    close,
                    volume: (unit() * 1000.0).floor(),
                };
                price = close;
                bar
            })
            .collect();
        CandleSeries::new(bars).unwrap()
    }

    fn trained(kind: ModelKind) -> Artefact {
        let mut config = TrainConfig::new(kind);
        if let ModelConfig::RandomForest(_) = config.model {
            config.model = ModelConfig::RandomForest(ForestParams { n_trees: 5, max_depth: 3, ..Default::default() });
        }
        let meta = TrainMeta { symbol: Some("EURUSD".into()), timeframe: Some(Timeframe::H1), trained_at: Utc::now() };
        train(&walk(), &config, &meta, |_, _| {}).unwrap()
    }

    #[test]
    fn round_trip_is_exact_and_deterministic() {
        for kind in [ModelKind::LogisticRegression, ModelKind::RandomForest] {
            let a = trained(kind);
            for encoding in [Encoding::Json, Encoding::Gzip] {
                let (bytes, sum) = encode(&a, encoding, DEFAULT_MAX_BYTES).unwrap();
                assert_eq!(encode(&a, encoding, DEFAULT_MAX_BYTES).unwrap().0, bytes, "deterministic");
                let d = decode(&bytes, DEFAULT_MAX_BYTES).unwrap();
                assert_eq!(d.checksum, sum);
                assert_eq!(d.artefact.header, a.header);
                let row = [0.5; crate::features::N_FEATURES];
                assert_eq!(d.artefact.model.predict_proba(&row), a.model.predict_proba(&row));
                // Re-encoding the decoded artefact gives the same bytes.
                assert_eq!(encode(&d.artefact, encoding, DEFAULT_MAX_BYTES).unwrap().0, bytes);
            }
        }
    }

    #[test]
    fn tampering_is_detected() {
        let a = trained(ModelKind::LogisticRegression);
        let (bytes, _) = encode(&a, Encoding::Json, DEFAULT_MAX_BYTES).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        // A weight in the payload, a metric in the header, the feature list, and the stored checksum itself.
        let payload_at = text.find("\"payload\"").unwrap();
        let first = payload_at + text[payload_at..].find("\"weights\":[[").unwrap() + 12;
        // The second decimal of the first weight.
        let digit = first + text[first..].find('.').unwrap() + 2;
        let mut weight = text.clone().into_bytes();
        assert!(weight[digit].is_ascii_digit());
        weight[digit] = if weight[digit] == b'1' { b'2' } else { b'1' };
        let edits = [
            String::from_utf8(weight).unwrap(),
            text.replacen("\"accuracy\":0.", "\"accuracy\":0.9", 1),
            text.replacen("\"sma_5\"", "\"sma_6\"", 1),
            text.replacen("\"value\":\"", "\"value\":\"0", 1),
        ];
        for (i, edited) in edits.iter().enumerate() {
            assert_ne!(edited, &text, "edit {i} changed something");
            match decode(edited.as_bytes(), DEFAULT_MAX_BYTES) {
                Err(ArtefactError::ChecksumMismatch { .. }) => {}
                other => panic!("edit {i}: expected a checksum mismatch, got {other:?}"),
            }
        }
        // A flipped byte inside the gzip stream is caught too (by gzip's CRC or by the checksum).
        let (mut gz, _) = encode(&a, Encoding::Gzip, DEFAULT_MAX_BYTES).unwrap();
        let mid = gz.len() / 2;
        gz[mid] ^= 0x40;
        assert!(matches!(
            decode(&gz, DEFAULT_MAX_BYTES),
            Err(ArtefactError::Malformed(_) | ArtefactError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn limits_versions_and_formats() {
        let a = trained(ModelKind::LogisticRegression);
        let (bytes, _) = encode(&a, Encoding::Json, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(encode(&a, Encoding::Json, 100).unwrap_err(), ArtefactError::TooLarge { max: 100 });
        assert_eq!(decode(&bytes, bytes.len() - 1).unwrap_err(), ArtefactError::TooLarge { max: bytes.len() - 1 });
        // A gzip that inflates past the limit is refused while inflating.
        let (gz, _) = encode(&a, Encoding::Gzip, DEFAULT_MAX_BYTES).unwrap();
        assert!(gz.len() < bytes.len() / 2, "gzip shrinks the JSON");
        assert_eq!(decode(&gz, gz.len() + 10).unwrap_err(), ArtefactError::TooLarge { max: gz.len() + 10 });

        let text = String::from_utf8(bytes).unwrap();
        let v2 = text.replacen("\"format_version\":1", "\"format_version\":2", 1);
        assert_eq!(
            decode(v2.as_bytes(), DEFAULT_MAX_BYTES).unwrap_err(),
            ArtefactError::UnsupportedVersion { found: 2 }
        );
        let other = text.replacen(FORMAT, "pickle", 1);
        assert!(matches!(decode(other.as_bytes(), DEFAULT_MAX_BYTES), Err(ArtefactError::WrongFormat(_))));
        assert!(matches!(decode(b"\x80\x04\x95pickle", DEFAULT_MAX_BYTES), Err(ArtefactError::Malformed(_))));
        assert!(matches!(decode(b"{}", DEFAULT_MAX_BYTES), Err(ArtefactError::Malformed(_))));
    }

    #[test]
    fn consistent_but_incompatible_content_is_refused() {
        // A correctly checksummed artefact whose header does not fit the model (written by a buggy or foreign
        // producer) is refused after the checksum.
        let mut a = trained(ModelKind::LogisticRegression);
        a.header.label.kind = crate::labels::LabelKind::Binary;
        let (bytes, _) = encode(&a, Encoding::Json, DEFAULT_MAX_BYTES).unwrap();
        assert!(
            matches!(decode(&bytes, DEFAULT_MAX_BYTES), Err(ArtefactError::Incompatible(m)) if m.contains("classes"))
        );
        let mut a = trained(ModelKind::LogisticRegression);
        a.header.features.names.pop();
        let (bytes, _) = encode(&a, Encoding::Json, DEFAULT_MAX_BYTES).unwrap();
        assert!(matches!(decode(&bytes, DEFAULT_MAX_BYTES), Err(ArtefactError::Incompatible(_))));
    }

    #[test]
    fn malformed_trees_are_refused_even_with_a_valid_checksum() {
        // A producer bug (or a forged file) linking a node back to the root would make prediction loop forever.
        let a = trained(ModelKind::RandomForest);
        let (bytes, _) = encode(&a, Encoding::Json, DEFAULT_MAX_BYTES).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let start = text.find("\"header\":").unwrap() + 9;
        let header_end = text.find(",\"payload\":").unwrap();
        let header = &text[start..header_end];
        let payload = &text[header_end + 11..text.len() - 1];
        let at = payload.find("\"true_child\":").expect("a split node");
        let digits = payload[at + 13..].find(|c: char| !c.is_ascii_digit()).unwrap();
        assert!(digits > 0, "a split node's child index");
        let cyclic = format!("{}\"true_child\":0{}", &payload[..at], &payload[at + 13 + digits..]);
        let forged = format!(
            "{{\"format\":\"{FORMAT}\",\"format_version\":1,\"checksum\":{{\"algorithm\":\"sha256\",\"value\":\"{}\"}},\"header\":{header},\"payload\":{cyclic}}}",
            sha256_hex(header, &cyclic)
        );
        match decode(forged.as_bytes(), DEFAULT_MAX_BYTES) {
            Err(ArtefactError::Incompatible(m)) => assert!(m.contains("malformed tree"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The untouched payload passes the same check, and so does a re-encoding of the same pieces.
        crate::models::check_forest_json(payload).unwrap();
        let same = format!(
            "{{\"format\":\"{FORMAT}\",\"format_version\":1,\"checksum\":{{\"algorithm\":\"sha256\",\"value\":\"{}\"}},\"header\":{header},\"payload\":{payload}}}",
            sha256_hex(header, payload)
        );
        decode(same.as_bytes(), DEFAULT_MAX_BYTES).unwrap();
    }

    #[test]
    fn recorded_crate_versions_match_the_lockfile() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
        for (name, version) in crate_versions() {
            let entry = format!("name = \"{name}\"\nversion = \"{version}\"\n");
            assert!(lock.contains(&entry), "Cargo.lock has no {name} {version}: update artefact::crate_versions");
        }
    }
}
