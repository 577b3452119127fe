//! Serde helpers for results that travel between workers as JSON, which has no NaN or infinity: [`lossless_f64`]
//! for a float field of ours, [`lenient`] to read a struct whose floats `serde_json` wrote as `null`
//! ([`crate::stats::Stats`]).

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Serde for an `f64` that may be NaN or infinite: written as the strings `"NaN"`, `"inf"`, `"-inf"`.
pub mod lossless_f64 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `v`: a number when finite, else `"NaN"`, `"inf"` or `"-inf"`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    /// Reads a number or one of the strings [`serialize`] writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(f64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Number(v) => Ok(v),
            Wire::Text(t) => super::special_float(&t)
                .ok_or_else(|| D::Error::custom(format!("expected a number, \"NaN\", \"inf\" or \"-inf\", got {t:?}"))),
        }
    }
}

fn special_float(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Reads a value (e.g. [`crate::stats::Stats`]) whose float fields may hold `null` — what `serde_json` writes for
/// NaN and ±∞ — as NaN (and `"NaN"`, `"inf"`, `"-inf"` as those values).
pub fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let value = Value::deserialize(d)?;
    T::deserialize(Lenient(value)).map_err(de::Error::custom)
}

/// A `serde_json::Value` deserializer that reads `null` as NaN where a float is expected.
struct Lenient(Value);

impl<'de> Deserializer<'de> for Lenient {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(LenientMap { entries: map.into_iter(), value: None }),
            Value::Array(items) => visitor.visit_seq(LenientSeq(items.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_f64(f64::NAN),
            Value::String(s) => match special_float(&s) {
                Some(v) => visitor.visit_f64(v),
                None => Value::String(s).deserialize_f64(visitor),
            },
            other => other.deserialize_f64(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct LenientMap {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for LenientMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        seed.deserialize(Lenient(self.value.take().unwrap_or(Value::Null)))
    }
}

struct LenientSeq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for LenientSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|v| seed.deserialize(Lenient(v))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Holder {
        #[serde(with = "lossless_f64")]
        x: f64,
        #[serde(deserialize_with = "lenient")]
        stats: Stats,
    }

    #[test]
    fn non_finite_values_survive_json() {
        let stats = Stats {
            sharpe_ratio: f64::NAN,
            profit_factor: f64::INFINITY,
            net_profit: 12.5,
            trades: 3,
            start: Some(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            ..Stats::default()
        };
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.25] {
            let text = serde_json::to_string(&Holder { x, stats: stats.clone() }).unwrap();
            let back: Holder = serde_json::from_str(&text).unwrap();
            assert!(back.x.total_cmp(&x).is_eq() || (x.is_nan() && back.x.is_nan()), "{x} → {}", back.x);
            assert!(back.stats.sharpe_ratio.is_nan());
            // serde_json writes ∞ as null: it comes back as NaN.
            assert!(back.stats.profit_factor.is_nan());
            assert_eq!((back.stats.net_profit, back.stats.trades, back.stats.start), (12.5, 3, stats.start));
        }
        let bad: Result<Holder, _> = serde_json::from_str(r#"{"x":"lots","stats":{}}"#);
        assert!(bad.is_err());
    }
}
