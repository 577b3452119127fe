//! How the embedded store keeps an item: a compact binary form, read back without parsing text.
//!
//! Every read decodes the items it returns and every write decodes the item it replaces (conditions,
//! index upkeep) and encodes the new one; as JSON (`{"status":{"S":"open"},...}`) that was ~8 % of the
//! gateway's CPU on the order round trip (perf). The binary form is a version byte, then the
//! attributes in key order: `u32` counts and lengths (little endian), a tag per value, a decimal as
//! its 16-byte representation. Items written by earlier versions (JSON, which starts with `{`) are
//! still read.

use std::collections::BTreeMap;

use nusatrade_app::ports::{Item, StoreError, Value};
use rust_decimal::Decimal;

const VERSION: u8 = 1;
const S: u8 = 0;
const N: u8 = 1;
const B: u8 = 2;
const TRUE: u8 = 3;
const FALSE: u8 = 4;
const NULL: u8 = 5;
const L: u8 = 6;
const M: u8 = 7;

/// The stored form of an item.
pub(crate) fn encode(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(VERSION);
    map(&mut out, &item.0);
    out
}

/// An item from its stored form (binary, or the JSON of earlier versions).
pub(crate) fn decode(bytes: &[u8]) -> Result<Item, StoreError> {
    match bytes.first() {
        Some(&VERSION) => {
            let mut r = Reader(&bytes[1..]);
            let attrs = r.map(0)?;
            if !r.0.is_empty() {
                return Err(corrupt("trailing bytes"));
            }
            Ok(Item(attrs))
        }
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string())),
        _ => Err(corrupt("unknown encoding")),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("undecodable item: {what}"))
}

fn len(out: &mut Vec<u8>, n: usize) {
    // Items are at most 400 KB (validated before any write), so every length fits.
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Appends `b` with its `u32` length (also the write-ahead log's framing of keys and items).
pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    len(out, b.len());
    out.extend_from_slice(b);
}

fn map(out: &mut Vec<u8>, m: &BTreeMap<String, Value>) {
    len(out, m.len());
    for (k, v) in m {
        bytes(out, k.as_bytes());
        value(out, v);
    }
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::S(s) => {
            out.push(S);
            bytes(out, s.as_bytes());
        }
        Value::N(d) => {
            out.push(N);
            out.extend_from_slice(&d.serialize());
        }
        Value::B(b) => {
            out.push(B);
            bytes(out, b);
        }
        Value::Bool(true) => out.push(TRUE),
        Value::Bool(false) => out.push(FALSE),
        Value::Null => out.push(NULL),
        Value::L(l) => {
            out.push(L);
            len(out, l.len());
            for v in l {
                value(out, v);
            }
        }
        Value::M(m) => {
            out.push(M);
            map(out, m);
        }
    }
}

/// Nesting deeper than this is refused (DynamoDB allows 32 levels).
const MAX_DEPTH: usize = 64;

/// Reads what [`encode`] and [`bytes`] wrote, front to back.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        // A length can never exceed what is left: refuse before allocating for it.
        if n > self.0.len() {
            return Err(corrupt("length beyond the item"));
        }
        Ok(n)
    }

    /// Bytes written by [`bytes`].
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }

    /// Text written by [`bytes`].
    pub(crate) fn str(&mut self) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("text is not UTF-8"))
    }

    fn text(&mut self) -> Result<String, StoreError> {
        self.str().map(str::to_owned)
    }

    fn map(&mut self, depth: usize) -> Result<BTreeMap<String, Value>, StoreError> {
        let n = self.len()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.text()?;
            let v = self.value(depth)?;
            m.insert(k, v);
        }
        Ok(m)
    }

    fn value(&mut self, depth: usize) -> Result<Value, StoreError> {
        if depth > MAX_DEPTH {
            return Err(corrupt("nested too deep"));
        }
        Ok(match self.take(1)?[0] {
            S => Value::S(self.text()?),
            N => {
                let raw: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
                // The scale is the third byte of the flags; a valid decimal has at most 28.
                if raw[2] > 28 {
                    return Err(corrupt("decimal scale"));
                }
                Value::N(Decimal::deserialize(raw))
            }
            B => Value::B(self.bytes()?.to_vec()),
            TRUE => Value::Bool(true),
            FALSE => Value::Bool(false),
            NULL => Value::Null,
            L => {
                let n = self.len()?;
                let mut l = Vec::with_capacity(n.min(self.0.len()));
                for _ in 0..n {
                    l.push(self.value(depth + 1)?);
                }
                Value::L(l)
            }
            M => Value::M(self.map(depth + 1)?),
            t => return Err(corrupt(&format!("unknown tag {t}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            ".{0,20}".prop_map(Value::S),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Value::N(Decimal::new(m, s))),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::B),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::L),
                proptest::collection::btree_map(".{0,8}", inner, 0..6).prop_map(Value::M),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips(attrs in proptest::collection::btree_map(".{0,12}", arb_value(), 0..12)) {
            let item = Item(attrs);
            prop_assert_eq!(decode(&encode(&item)).unwrap(), item);
        }

        #[test]
        fn never_panics_on_damaged_bytes(attrs in proptest::collection::btree_map(".{0,12}", arb_value(), 1..8), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
            let mut b = encode(&Item(attrs));
            let i = flip.0 % b.len();
            b[i] ^= flip.1 | 1;
            let _ = decode(&b);
            b.truncate(cut % b.len());
            let _ = decode(&b);
        }
    }

    #[test]
    fn reads_the_json_items_of_earlier_versions() {
        let json = br#"{"PK":{"S":"U#1"},"SK":{"S":"P"},"n":{"N":"1.50"},"ok":{"Bool":true},"x":"Null"}"#;
        let item = decode(json).unwrap();
        assert_eq!(item.get_s("PK"), Some("U#1"));
        assert_eq!(item.0["n"], Value::N(Decimal::from_str("1.50").unwrap()));
        assert_eq!(item.0["ok"], Value::Bool(true));
        assert_eq!(item.0["x"], Value::Null);
        // And what JSON wrote is the same item in the binary form.
        assert_eq!(decode(&encode(&item)).unwrap(), item);
        assert!(decode(b"").is_err() && decode(b"\x09junk").is_err());
    }

    #[test]
    fn keeps_decimal_scale_and_sign() {
        for d in ["0", "-0.0001", "1.085000", "79228162514264337593543950335", "-7.9228162514264337593543950335"] {
            let item = Item(BTreeMap::from([("n".to_owned(), Value::N(Decimal::from_str(d).unwrap()))]));
            let Value::N(back) = decode(&encode(&item)).unwrap().0["n"] else { panic!("{d}") };
            assert_eq!(back.to_string(), d);
        }
    }
}
