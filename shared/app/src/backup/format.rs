//! What a backup looks like in the blob store: ids, keys, the item encoding and the manifest.
//!
//! ```text
//! backups/<backup-id>/segment-0000.jsonl.gz   one file per scan segment: gzip of JSON lines,
//! backups/<backup-id>/segment-0001.jsonl.gz   each line {"Item": {"PK": {"S": "..."}, ...}}
//! ...
//! backups/<backup-id>/manifest.json           written last: a backup without it is incomplete
//! ```
//!
//! Items are encoded in DynamoDB's own JSON (`S`, `N` as decimal text, `B` as base64, `BOOL`, `NULL`,
//! `L`, `M`), one `{"Item": …}` object per line: the layout of DynamoDB's export to S3, which its
//! import from S3 (`DYNAMODB_JSON`, `GZIP`) also reads.

use std::collections::BTreeMap;
use std::io::{BufRead, Read as _, Write};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::ports::store::{TABLE_SCHEMA_VERSION, validate};
use crate::ports::{Item, Value};

/// Blob prefix of every backup.
pub const BACKUP_PREFIX: &str = "backups/";
/// The manifest's `format`.
pub const FORMAT: &str = "nusatrade-table-backup";
/// The manifest's `format_version` this code writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's `item_format`.
pub const ITEM_FORMAT: &str = "DYNAMODB_JSON";
/// The manifest's `compression`.
pub const COMPRESSION: &str = "GZIP";
/// Largest manifest read back (a manifest lists one small entry per segment).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Longest line accepted in a segment file: an item is at most 400 KB, its encoding somewhat more.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// A backup's id: its start time (UTC, `YYYYMMDDTHHMMSSZ`), a dash and a short tag (random for
/// on-demand backups, `scheduled` for the schedule's), so ids sort in time order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// Parses and checks an id (it becomes part of blob keys).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid backup id {s:?}: expected YYYYMMDDTHHMMSSZ-<tag>, tag of 1-32 [a-z0-9]");
        let (time, tag) = s.split_once('-').ok_or_else(bad)?;
        let time_ok = time.len() == 16
            && time.bytes().enumerate().all(|(i, b)| match i {
                8 => b == b'T',
                15 => b == b'Z',
                _ => b.is_ascii_digit(),
            })
            && chrono::NaiveDateTime::parse_from_str(&time[..15], "%Y%m%dT%H%M%S").is_ok();
        let tag_ok = (1..=32).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if time_ok && tag_ok { Ok(BackupId(s.to_owned())) } else { Err(bad()) }
    }

    /// An id for a backup starting at `at`, with `tag` (lowercased; characters outside `[a-z0-9]`
    /// dropped, at most 32 kept; empty becomes `x`).
    pub fn new(at: DateTime<Utc>, tag: &str) -> Self {
        let mut tag: String = tag
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .collect();
        tag.truncate(32);
        if tag.is_empty() {
            tag.push('x');
        }
        BackupId(format!("{}-{tag}", at.format("%Y%m%dT%H%M%SZ")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `backups/<id>/`
    pub fn prefix(&self) -> String {
        format!("{BACKUP_PREFIX}{}/", self.0)
    }

    /// `backups/<id>/manifest.json`
    pub fn manifest_key(&self) -> String {
        format!("{}manifest.json", self.prefix())
    }

    /// `backups/<id>/segment-NNNN.jsonl.gz`
    pub fn segment_key(&self, segment: u32) -> String {
        format!("{}segment-{segment:04}.jsonl.gz", self.prefix())
    }
}

impl std::fmt::Display for BackupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl TryFrom<String> for BackupId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        BackupId::parse(&s)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

/// One segment file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    pub segment: u32,
    /// Its blob key.
    pub key: String,
    /// Items (lines) in it.
    pub items: u64,
    /// Size of the (compressed) file.
    pub bytes: u64,
    /// SHA-256 of the (compressed) file, lowercase hex.
    pub sha256: String,
}

/// The manifest of a complete backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub backup_id: BackupId,
    /// [`TABLE_SCHEMA_VERSION`] of the code that wrote it.
    pub table_schema_version: u32,
    pub item_format: String,
    pub compression: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub total_segments: u32,
    /// Items in the backup (the sum over the files).
    pub item_count: u64,
    /// Bytes of the segment files (the sum over the files).
    pub bytes: u64,
    /// One entry per segment, in segment order.
    pub files: Vec<SegmentFile>,
}

impl Manifest {
    /// The manifest this code writes for `files` (in segment order): its format and versions, the sums.
    pub fn new(
        backup_id: BackupId,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        total_segments: u32,
        files: Vec<SegmentFile>,
    ) -> Self {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            backup_id,
            table_schema_version: TABLE_SCHEMA_VERSION,
            item_format: ITEM_FORMAT.into(),
            compression: COMPRESSION.into(),
            started_at,
            finished_at,
            total_segments,
            item_count: files.iter().map(|f| f.items).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
        }
    }

    /// Checks that the manifest is one this code can restore and is consistent with itself: the id it
    /// was read under, supported versions, one file per segment under the backup's own keys, sums.
    pub fn check(&self, id: &BackupId) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("not a NusaTrade table backup (format {:?})", self.format));
        }
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return Err(format!(
                "backup format version {} is not supported (this build reads 1..={FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.table_schema_version == 0 || self.table_schema_version > TABLE_SCHEMA_VERSION {
            return Err(format!(
                "the backup's table schema version {} is newer than this build's {TABLE_SCHEMA_VERSION}",
                self.table_schema_version
            ));
        }
        if self.item_format != ITEM_FORMAT || self.compression != COMPRESSION {
            return Err(format!("unsupported item format {} / compression {}", self.item_format, self.compression));
        }
        if &self.backup_id != id {
            return Err(format!("the manifest under {id} names backup {}", self.backup_id));
        }
        if self.total_segments == 0 || self.files.len() != self.total_segments as usize {
            return Err(format!("{} files listed for {} segments", self.files.len(), self.total_segments));
        }
        for (i, f) in self.files.iter().enumerate() {
            if f.segment as usize != i || f.key != id.segment_key(f.segment) {
                return Err(format!(
                    "file entry {i} ({} for segment {}) is not this backup's segment {i}",
                    f.key, f.segment
                ));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("file {} has no valid SHA-256", f.key));
            }
        }
        let items: u64 = self.files.iter().map(|f| f.items).sum();
        let bytes: u64 = self.files.iter().map(|f| f.bytes).sum();
        if items != self.item_count || bytes != self.bytes {
            return Err(format!(
                "the totals ({} items, {} bytes) differ from the files' ({items} items, {bytes} bytes)",
                self.item_count, self.bytes
            ));
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// An item in DynamoDB JSON (`{"Item": {...}}`), serialised straight from the item.
pub struct DynamoJsonItem<'a>(pub &'a Item);

struct DynamoJsonAttrs<'a>(&'a BTreeMap<String, Value>);

struct DynamoJsonValue<'a>(&'a Value);

struct DynamoJsonList<'a>(&'a [Value]);

impl Serialize for DynamoJsonList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(DynamoJsonValue))
    }
}

impl Serialize for DynamoJsonItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("Item", &DynamoJsonAttrs(&self.0.0))?;
        m.end()
    }
}

impl Serialize for DynamoJsonAttrs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, DynamoJsonValue(v))))
    }
}

impl Serialize for DynamoJsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self.0 {
            Value::S(v) => m.serialize_entry("S", v)?,
            Value::N(n) => m.serialize_entry("N", &n.to_string())?,
            Value::B(b) => m.serialize_entry("B", &base64::engine::general_purpose::STANDARD.encode(b))?,
            Value::Bool(b) => m.serialize_entry("BOOL", b)?,
            Value::Null => m.serialize_entry("NULL", &true)?,
            Value::L(l) => m.serialize_entry("L", &DynamoJsonList(l))?,
            Value::M(map) => m.serialize_entry("M", &DynamoJsonAttrs(map))?,
        }
        m.end()
    }
}

/// An item in DynamoDB JSON: `{"Item": {...}}`, as a JSON value.
pub fn encode_item(item: &Item) -> Json {
    serde_json::to_value(DynamoJsonItem(item)).unwrap_or(Json::Null)
}

/// Appends one item as one line (`\n`-terminated) to `buf`.
pub fn push_line(buf: &mut Vec<u8>, item: &Item) -> std::io::Result<()> {
    serde_json::to_writer(&mut *buf, &DynamoJsonItem(item))?;
    buf.push(b'\n');
    Ok(())
}

/// Writes one item as one line, in one write.
pub fn write_line(out: &mut impl Write, item: &Item) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    push_line(&mut buf, item)?;
    out.write_all(&buf)
}

/// Reads an item back from a line of DynamoDB JSON, checking it is a writable item.
pub fn decode_line(line: &[u8]) -> Result<Item, String> {
    let json: Json = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(mut outer) = json else { return Err("a line must be an object".into()) };
    let attrs = match (outer.remove("Item"), outer.is_empty()) {
        (Some(Json::Object(attrs)), true) => attrs,
        _ => return Err("a line must be exactly {\"Item\": {...}}".into()),
    };
    let mut item = BTreeMap::new();
    for (name, v) in attrs {
        let value = decode_value(v).map_err(|e| format!("attribute {name}: {e}"))?;
        item.insert(name, value);
    }
    let item = Item(item);
    validate::item(&item).map_err(|e| e.to_string())?;
    Ok(item)
}

fn decode_value(v: Json) -> Result<Value, String> {
    let Json::Object(m) = v else { return Err("a value must be an object with one type tag".into()) };
    if m.len() != 1 {
        return Err("a value must hold exactly one type tag".into());
    }
    let Some((tag, inner)) = m.into_iter().next() else { return Err("empty value".into()) };
    Ok(match (tag.as_str(), inner) {
        ("S", Json::String(s)) => Value::S(s),
        ("N", Json::String(n)) => Value::N(
            n.parse()
                .or_else(|_| rust_decimal::Decimal::from_scientific(&n))
                .map_err(|_| format!("number {n:?} does not fit a decimal"))?,
        ),
        ("B", Json::String(b)) => {
            Value::B(base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| format!("binary: {e}"))?)
        }
        ("BOOL", Json::Bool(b)) => Value::Bool(b),
        ("NULL", Json::Bool(true)) => Value::Null,
        ("L", Json::Array(l)) => Value::L(l.into_iter().map(decode_value).collect::<Result<_, _>>()?),
        ("M", Json::Object(m)) => {
            Value::M(m.into_iter().map(|(k, v)| Ok((k, decode_value(v)?))).collect::<Result<_, String>>()?)
        }
        (tag, _) => return Err(format!("unsupported or malformed type {tag:?}")),
    })
}

/// Reads the lines of a (decompressed) segment file, handing each item to `f`, and returns how many
/// there were. Any malformed line, or a line longer than [`MAX_LINE_BYTES`], stops the reading.
pub fn read_items(reader: impl BufRead, mut f: impl FnMut(Item) -> Result<(), String>) -> Result<u64, String> {
    let mut lines = LineReader { reader, buf: Vec::new() };
    let mut n = 0u64;
    while let Some(line) = lines.next_line()? {
        n += 1;
        let item = decode_line(line).map_err(|e| format!("line {n}: {e}"))?;
        f(item).map_err(|e| format!("line {n}: {e}"))?;
    }
    Ok(n)
}

/// Reads `\n`-terminated lines with a length limit.
pub struct LineReader<R> {
    pub reader: R,
    pub buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    /// The next non-empty line (without its `\n`), `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, String> {
        loop {
            self.buf.clear();
            let mut limited = (&mut self.reader).take(MAX_LINE_BYTES as u64 + 1);
            let n = limited.read_until(b'\n', &mut self.buf).map_err(|e| format!("unreadable: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            } else if self.buf.len() > MAX_LINE_BYTES {
                return Err(format!("a line is longer than {MAX_LINE_BYTES} bytes"));
            }
            if !self.buf.is_empty() {
                return Ok(Some(&self.buf));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Key;

    #[test]
    fn ids_sort_in_time_order_and_stay_inside_the_prefix() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T03:04:05Z").unwrap().with_timezone(&Utc);
        let id = BackupId::new(t, "Scheduled!");
        assert_eq!(id.as_str(), "20261122T030405Z-scheduled");
        assert_eq!(BackupId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(id.segment_key(7), "backups/20261122T030405Z-scheduled/segment-0007.jsonl.gz");
        assert_eq!(id.manifest_key(), "backups/20261122T030405Z-scheduled/manifest.json");
        let later = BackupId::new(t + chrono::Duration::seconds(1), "a");
        assert!(id < later);
        for bad in [
            "",
            "20261122T030405Z",
            "20261122T030405Z-",
            "20261122T030405Z-UPPER",
            "20261122T030405Z-../x",
            "20261122T030405Z-a/b",
            "20261322T030405Z-abc",
            "2026112T030405Z-abc",
            "20261122X030405Z-abc",
            "../20261122T030405Z-abc",
        ] {
            assert!(BackupId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(BackupId::new(t, "").as_str(), "20261122T030405Z-x");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<BackupId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<BackupId>("\"../etc\"").is_err());
    }

    #[test]
    fn items_round_trip_through_dynamodb_json() {
        let mut m = BTreeMap::new();
        m.insert("x".to_owned(), Value::L(vec![Value::Null, Value::Bool(false), Value::B(vec![0, 255])]));
        let item = Item::new(&Key::new("USER#1", "PROFILE"))
            .with("n", Value::N("1.50".parse().unwrap()))
            .with("big", Value::N(rust_decimal::Decimal::MAX))
            .with("s", "héllo\n\"quoted\"")
            .with("m", Value::M(m));
        let mut out = Vec::new();
        write_line(&mut out, &item).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("{\"Item\":{"), "{text}");
        assert!(text.contains("\"n\":{\"N\":\"1.50\"}"), "{text}");
        assert!(text.contains("{\"NULL\":true}") && text.contains("{\"B\":\"AP8=\"}"), "{text}");
        assert_eq!(text.matches('\n').count(), 1, "one line per item");
        let back = decode_line(text.trim_end().as_bytes()).unwrap();
        assert_eq!(back, item);
        assert_eq!(back.get_n("n").unwrap().to_string(), "1.50", "the scale is kept");
        let mut seen = Vec::new();
        let n = read_items(std::io::Cursor::new([out.clone(), b"\n".to_vec(), out].concat()), |i| {
            seen.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!((n, seen.len()), (2, 2), "blank lines are skipped");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "[]",
            "{}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}}}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}, \"SK\": {\"S\": \"b\"}}, \"More\": 1}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}, \"SK\": {\"S\": \"b\"}, \"x\": {\"SS\": [\"a\"]}}}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}, \"SK\": {\"S\": \"b\"}, \"x\": {\"N\": \"abc\"}}}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}, \"SK\": {\"S\": \"b\"}, \"x\": {\"S\": \"a\", \"N\": \"1\"}}}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}, \"SK\": {\"S\": \"b\"}, \"x\": {\"NULL\": false}}}",
            "{\"Item\": {\"PK\": {\"S\": \"a\"}, \"SK\": {\"S\": \"b\"}, \"ttl\": {\"S\": \"soon\"}}}",
            "{\"Item\": {\"PK\": {\"N\": \"1\"}, \"SK\": {\"S\": \"b\"}}}",
            "not json",
        ] {
            assert!(decode_line(bad.as_bytes()).is_err(), "{bad} accepted");
        }
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        assert!(read_items(std::io::Cursor::new(long), |_| Ok(())).unwrap_err().contains("longer"));
    }

    fn manifest(id: &BackupId) -> Manifest {
        let t = Utc::now();
        let files = (0..2)
            .map(|s| SegmentFile {
                segment: s,
                key: id.segment_key(s),
                items: u64::from(s) + 1,
                bytes: 10 * (u64::from(s) + 1),
                sha256: sha256_hex(b""),
            })
            .collect();
        let m = Manifest::new(id.clone(), t, t, 2, files);
        assert_eq!((m.item_count, m.bytes), (3, 30), "the sums over the files");
        m
    }

    #[test]
    fn manifests_are_checked() {
        let id = BackupId::parse("20261122T030405Z-abc").unwrap();
        let good = manifest(&id);
        assert_eq!(good.check(&id), Ok(()));
        let other = BackupId::parse("20261122T030405Z-abd").unwrap();
        assert!(good.check(&other).is_err(), "read under another id");
        let mut cases: Vec<Manifest> = Vec::new();
        let mut m = good.clone();
        m.format_version = FORMAT_VERSION + 1;
        cases.push(m);
        let mut m = good.clone();
        m.table_schema_version = TABLE_SCHEMA_VERSION + 1;
        cases.push(m);
        let mut m = good.clone();
        m.files[1].key = "backups/other/segment-0001.jsonl.gz".into();
        cases.push(m);
        let mut m = good.clone();
        m.files.swap(0, 1);
        cases.push(m);
        let mut m = good.clone();
        m.files.pop();
        cases.push(m);
        let mut m = good.clone();
        m.item_count += 1;
        cases.push(m);
        let mut m = good.clone();
        m.files[0].sha256 = "XYZ".into();
        cases.push(m);
        let mut m = good.clone();
        m.compression = "ZSTD".into();
        cases.push(m);
        for m in cases {
            assert!(m.check(&id).is_err(), "{m:?}");
        }
    }
}
