//! Reading a record straight from an item's attributes, without building a JSON value first.
//!
//! Equivalent to converting each attribute with [`Value::to_json`] and deserializing the JSON object
//! (the conversion the store port has always defined): a number is an integer when integral and a
//! float otherwise, binary is base64 text, `Null` is null (and `None` for an option), a string is a
//! unit enum variant, a one-entry map a variant with data. Every read of a record goes through here.

use std::collections::BTreeMap;

use base64::Engine as _;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::de::value::{BorrowedStrDeserializer, Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, EnumAccess, IntoDeserializer, Unexpected, VariantAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::Value;

/// Deserializes `T` from an item's attributes.
pub(super) fn from_attrs<'de, T: de::Deserialize<'de>>(attrs: &'de BTreeMap<String, Value>) -> Result<T, Error> {
    T::deserialize(map(attrs))
}

fn map(m: &BTreeMap<String, Value>) -> MapDeserializer<'_, impl Iterator<Item = (BorrowedStr<'_>, Attr<'_>)>, Error> {
    MapDeserializer::new(m.iter().map(|(k, v)| (BorrowedStr(k), Attr(v))))
}

/// A key, lent to the record (field names are matched without copying).
struct BorrowedStr<'de>(&'de str);

impl<'de> IntoDeserializer<'de, Error> for BorrowedStr<'de> {
    type Deserializer = BorrowedStrDeserializer<'de, Error>;
    fn into_deserializer(self) -> Self::Deserializer {
        BorrowedStrDeserializer::new(self.0)
    }
}

/// One attribute value as a deserializer.
#[derive(Clone, Copy)]
struct Attr<'de>(&'de Value);

impl<'de> IntoDeserializer<'de, Error> for Attr<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::S(s) => Unexpected::Str(s),
        Value::N(_) => Unexpected::Other("number"),
        Value::B(b) => Unexpected::Bytes(b),
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Null => Unexpected::Unit,
        Value::L(_) => Unexpected::Seq,
        Value::M(_) => Unexpected::Map,
    }
}

fn number<'de, V: Visitor<'de>>(n: Decimal, visitor: V) -> Result<V::Value, Error> {
    if n.fract().is_zero()
        && let Some(i) = n.to_i64()
    {
        return if i >= 0 { visitor.visit_u64(i as u64) } else { visitor.visit_i64(i) };
    }
    match n.to_f64() {
        Some(f) => visitor.visit_f64(f),
        None => visitor.visit_unit(),
    }
}

impl<'de> de::Deserializer<'de> for Attr<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::S(s) => visitor.visit_borrowed_str(s),
            Value::N(n) => number(*n, visitor),
            Value::B(b) => visitor.visit_string(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Null => visitor.visit_unit(),
            Value::L(l) => {
                let mut seq = SeqDeserializer::new(l.iter().map(Attr));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::M(m) => {
                let mut access = map(m);
                let out = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::S(s) => visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(s)),
            Value::M(m) if m.len() == 1 => {
                let (variant, value) = m.iter().next().expect("one entry");
                visitor.visit_enum(Variant { name: variant, value: Attr(value) })
            }
            other => Err(de::Error::invalid_type(unexpected(other), &"a string or a one-entry map (an enum)")),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// An enum variant with data: `{"Variant": value}`.
struct Variant<'de> {
    name: &'de str,
    value: Attr<'de>,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Attr<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Attr<'de>), Error> {
        Ok((seed.deserialize(BorrowedStrDeserializer::<Error>::new(self.name))?, self.value))
    }
}

impl<'de> VariantAccess<'de> for Attr<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            Value::Null => Ok(()),
            other => Err(de::Error::invalid_type(unexpected(other), &"a unit variant")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Item, Key};
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::str::FromStr;
    use uuid::Uuid;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Open,
        ClosePending,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Newtype(u32),
        Tuple(i64, String),
        Struct { a: Option<Decimal>, b: Vec<u8> },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        ratio: f64,
        tags: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Record {
        id: Uuid,
        status: Status,
        price: Decimal,
        lots: Option<Decimal>,
        missing: Option<String>,
        version: u64,
        delta: i32,
        ratio: f64,
        at: DateTime<Utc>,
        inner: Inner,
        shapes: Vec<Shape>,
        by_name: BTreeMap<String, i64>,
        flag: bool,
        #[serde(default)]
        defaulted: u8,
        #[serde(with = "serde_bytes_as_vec")]
        raw: Vec<u8>,
    }

    mod serde_bytes_as_vec {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            serde::Serialize::serialize(v, s)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            serde::Deserialize::deserialize(d)
        }
    }

    fn sample() -> Record {
        Record {
            id: Uuid::from_u128(7),
            status: Status::ClosePending,
            price: Decimal::from_str("1.08550").unwrap(),
            lots: Some(Decimal::from_str("0.01").unwrap()),
            missing: None,
            version: 12,
            delta: -3,
            ratio: 0.25,
            at: DateTime::from_timestamp(1_700_000_000, 5_000).unwrap(),
            inner: Inner { ratio: -1.5, tags: vec!["a".into(), "é".into()] },
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(4),
                Shape::Tuple(-9, "x".into()),
                Shape::Struct { a: None, b: vec![1, 2] },
                Shape::Struct { a: Some(Decimal::from_str("-2.5").unwrap()), b: vec![] },
            ],
            by_name: BTreeMap::from([("k".into(), 1), ("m".into(), -1)]),
            flag: true,
            defaulted: 0,
            raw: vec![0, 255, 7],
        }
    }

    /// The port's reference conversion: every attribute to JSON, then the JSON object to the record.
    fn via_json<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, serde_json::Error> {
        let obj: serde_json::Map<String, serde_json::Value> =
            item.0.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
        serde_json::from_value(serde_json::Value::Object(obj))
    }

    #[test]
    fn reads_records_as_the_json_conversion_does() {
        let key = Key::new("U#1", "R#1");
        let rec = sample();
        let item = Item::from_record(&key, &rec).unwrap();
        let direct: Record = item.to_record().unwrap();
        assert_eq!(direct, rec);
        assert_eq!(direct, via_json::<Record>(&item).unwrap());
        // Key attributes and unknown attributes are ignored; numbers stored as numbers read as numbers.
        let mut item = item;
        item.0.insert("ttl".into(), super::Value::N(Decimal::from(99)));
        item.0.insert("version".into(), super::Value::N(Decimal::from(13)));
        item.0.insert("ratio".into(), super::Value::N(Decimal::from_str("0.125").unwrap()));
        let direct: Record = item.to_record().unwrap();
        assert_eq!((direct.version, direct.ratio), (13, 0.125));
        assert_eq!(direct, via_json::<Record>(&item).unwrap());
    }

    #[test]
    fn refuses_what_the_json_conversion_refuses() {
        let key = Key::new("U#1", "R#1");
        let base = Item::from_record(&key, &sample()).unwrap();
        let cases = [
            ("status", super::Value::S("gone".into())),
            ("version", super::Value::N(Decimal::from(-1))),
            ("price", super::Value::Bool(true)),
            ("inner", super::Value::L(vec![])),
            ("shapes", super::Value::M(BTreeMap::new())),
            ("id", super::Value::Null),
        ];
        for (attr, bad) in cases {
            let mut item = base.clone();
            item.0.insert(attr.into(), bad.clone());
            assert!(via_json::<Record>(&item).is_err(), "{attr} = {bad:?}");
            assert!(item.to_record::<Record>().is_err(), "{attr} = {bad:?}");
        }
        let mut item = base.clone();
        item.0.remove("price");
        assert!(item.to_record::<Record>().is_err(), "a required field is missing");
    }
}
