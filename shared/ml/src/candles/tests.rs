use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;

fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 31, 20, 0, 0).unwrap() + chrono::Duration::hours(h)
}

fn bar(h: i64, close: f64) -> Candle {
    Candle { time: t(h), open: close, high: close + 0.001, low: close - 0.001, close, volume: 10.0 }
}

fn series(bars: &[(i64, f64)]) -> CandleSeries {
    CandleSeries::new(bars.iter().map(|&(h, c)| bar(h, c)).collect()).unwrap()
}

const EURUSD_HEAD: &str = ",Open,High,Low,Close,Volume\n\
    2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n\
    2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241\n";

fn csv(text: &str) -> Result<CandleSeries, CsvError> {
    parse_csv(text.as_bytes(), &CsvLimits::default())
}

#[test]
fn to_csv_is_read_back_exactly() {
    let s = csv(EURUSD_HEAD).unwrap();
    assert_eq!(csv(&to_csv(&s)).unwrap(), s);
    assert!(to_csv(&s).starts_with("time,open,high,low,close,volume\n2017-04-19 09:00:00,1.0716,1.0722,"));
}

#[test]
fn parses_the_backtesting_py_layout() {
    let s = csv(EURUSD_HEAD).unwrap();
    assert_eq!(s.len(), 2);
    let c = s.candles()[1];
    assert_eq!(c.time, Utc.with_ymd_and_hms(2017, 4, 19, 10, 0, 0).unwrap());
    assert_eq!((c.open, c.high, c.low, c.close, c.volume), (1.07214, 1.07296, 1.07214, 1.0726, 1241.0));
}

#[test]
fn parses_the_common_layout_in_any_order_with_crlf_bom_and_offsets() {
    let text = "\u{feff}Volume,Close,Low,High,Open,Timestamp\r\n\
                5,1.2,1.0,1.3,1.1,2024-03-01T12:00:00+02:00\r\n\
                \r\n\
                6,1.25,1.15,1.3,1.2,1709298000\r\n";
    let s = csv(text).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.candles()[0].time, Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap());
    assert_eq!(s.candles()[0].open, 1.1);
    assert_eq!(s.candles()[1].time, Utc.with_ymd_and_hms(2024, 3, 1, 13, 0, 0).unwrap());
    // Without a volume column, volume is 0; dates alone are midnight.
    let s = csv("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n").unwrap();
    assert_eq!(s.candles()[0].volume, 0.0);
    assert_eq!(s.candles()[0].time, Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap());
}

#[test]
fn errors_name_the_line() {
    let e = |text: &str| csv(text).unwrap_err();
    // NaN price on line 3.
    let err = e(",Open,High,Low,Close,Volume\n2017-01-01 00:00:00,1,1,1,1,1\n2017-01-01 01:00:00,NaN,1,1,1,1\n");
    assert_eq!(err, CsvError::InvalidBar { line: 3, problem: CandleProblem::NonFinite { field: "open" } });
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.to_string(), "line 3: open is not a finite number");
    // Unsorted (line 3 before line 2's time), duplicate, high below body, low above body, negative, inf.
    let base = "time,open,high,low,close,volume\n2024-01-01 01:00:00,1,1,1,1,1\n";
    let with = |row: &str| e(&format!("{base}{row}\n"));
    assert_eq!(
        with("2024-01-01 00:00:00,1,1,1,1,1"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::TimestampNotIncreasing }
    );
    assert_eq!(
        with("2024-01-01 01:00:00,1,1,1,1,1"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::TimestampNotIncreasing }
    );
    assert_eq!(
        with("2024-01-01 02:00:00,1,1.1,0.9,1.2,1"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::HighBelowBody }
    );
    assert_eq!(
        with("2024-01-01 02:00:00,1,1.3,1.05,1.2,1"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::LowAboveBody }
    );
    assert_eq!(
        with("2024-01-01 02:00:00,-1,1,-2,1,1"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::NonPositivePrice { field: "open" } }
    );
    assert_eq!(
        with("2024-01-01 02:00:00,1,inf,1,1,1"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::NonFinite { field: "high" } }
    );
    assert_eq!(
        with("2024-01-01 02:00:00,1,1,1,1,-5"),
        CsvError::InvalidBar { line: 3, problem: CandleProblem::NegativeVolume }
    );
    assert_eq!(
        with("2024-01-01 02:00:00,1,x,1,1,1"),
        CsvError::BadNumber { line: 3, column: "high", value: "x".into() }
    );
    assert_eq!(with("yesterday,1,1,1,1,1"), CsvError::BadTimestamp { line: 3, value: "yesterday".into() });
    assert_eq!(with("2024-01-01 02:00:00,1,1,1,1"), CsvError::FieldCount { line: 3, expected: 6, found: 5 });
    // Blank lines still count for line numbers.
    assert_eq!(e(&format!("{base}\n\n2024-01-01 02:00:00,1,1,1,1,-5\n")).line(), Some(5));
    // Header problems.
    assert_eq!(e("time,open,high,close\n"), CsvError::MissingColumn { column: "low" });
    assert_eq!(e("time,open,open,high,low,close\n"), CsvError::DuplicateColumn { column: "open" });
    assert_eq!(e(""), CsvError::Empty);
    assert_eq!(e(base.lines().next().unwrap()), CsvError::NoRows);
    assert_eq!(parse_csv(b"time\xff", &CsvLimits::default()).unwrap_err(), CsvError::NotUtf8 { line: 1 });
}

#[test]
fn size_limits() {
    let small = CsvLimits { max_bytes: 40, max_rows: 10 };
    assert_eq!(
        parse_csv(EURUSD_HEAD.as_bytes(), &small).unwrap_err(),
        CsvError::TooLarge { size: EURUSD_HEAD.len(), max: 40 }
    );
    let one_row = CsvLimits { max_bytes: 1 << 20, max_rows: 1 };
    assert_eq!(parse_csv(EURUSD_HEAD.as_bytes(), &one_row).unwrap_err(), CsvError::TooManyRows { line: 3, max: 1 });
    let two_rows = CsvLimits { max_bytes: 1 << 20, max_rows: 2 };
    assert_eq!(parse_csv(EURUSD_HEAD.as_bytes(), &two_rows).unwrap().len(), 2);
}

#[test]
fn timestamps() {
    let at = |y, mo, d, h, mi, s| Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap());
    assert_eq!(parse_timestamp("2017-04-19 09:00:00"), at(2017, 4, 19, 9, 0, 0));
    assert_eq!(parse_timestamp("2017-04-19T09:00"), at(2017, 4, 19, 9, 0, 0));
    assert_eq!(parse_timestamp("2017-04-19T09:00:00Z"), at(2017, 4, 19, 9, 0, 0));
    assert_eq!(parse_timestamp("2017-04-19T09:00:00-05:00"), at(2017, 4, 19, 14, 0, 0));
    assert_eq!(parse_timestamp("0"), at(1970, 1, 1, 0, 0, 0));
    assert_eq!(parse_timestamp("2017-13-01"), None);
    assert_eq!(parse_timestamp("-5"), None);
}

#[test]
fn blob_round_trip_is_exact_and_bounded() {
    let s = CandleSeries::new(vec![
        Candle { time: t(0), open: 1.07219, high: 1.1, low: 0.1 + 0.2, close: 1.0, volume: 0.0 },
        Candle { time: t(1), open: 1.0 / 3.0, high: 2.0, low: 1e-9, close: 1.5, volume: 32318.5 },
    ])
    .unwrap();
    let blob = encode_blob(&s);
    assert_eq!(&blob[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(encode_blob(&s), blob, "deterministic");
    assert_eq!(decode_blob(&blob, &BlobLimits::default()).unwrap(), s);

    let limits = BlobLimits { max_compressed: blob.len() - 1, max_decompressed: 1 << 20 };
    assert!(matches!(decode_blob(&blob, &limits), Err(BlobError::TooLarge { .. })));
    let limits = BlobLimits { max_compressed: 1 << 20, max_decompressed: 30 };
    assert_eq!(decode_blob(&blob, &limits), Err(BlobError::DecompressedTooLarge { max: 30 }));
    assert!(matches!(decode_blob(b"not gzip", &BlobLimits::default()), Err(BlobError::Compression(_))));
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn blob_decoding_validates() {
    let limits = BlobLimits::default();
    assert_eq!(decode_blob(&gzip("something else\n"), &limits), Err(BlobError::BadMagic));
    assert_eq!(decode_blob(&gzip("nusatrade-candles v1\n0,1,1,1\n"), &limits), Err(BlobError::Malformed { line: 2 }));
    assert_eq!(
        decode_blob(&gzip("nusatrade-candles v1\n0,1,1,1,1,1,9\n"), &limits),
        Err(BlobError::Malformed { line: 2 })
    );
    let unsorted = "nusatrade-candles v1\n3600,1,1,1,1,1\n0,1,1,1,1,1\n";
    assert_eq!(
        decode_blob(&gzip(unsorted), &limits),
        Err(BlobError::Invalid(SeriesError { index: 1, problem: CandleProblem::TimestampNotIncreasing }))
    );
    assert_eq!(decode_blob(&gzip("nusatrade-candles v1\n"), &limits).unwrap().len(), 0);
}

#[test]
fn merge_dedupes_by_timestamp() {
    let stored = series(&[(0, 1.0), (1, 1.1), (2, 1.2)]);
    let incoming = series(&[(2, 1.25), (3, 1.3), (4, 1.4)]);
    let m = merge(&stored, &incoming, Conflict::ReplaceWithIncoming);
    let closes: Vec<f64> = m.series.candles().iter().map(|c| c.close).collect();
    assert_eq!(closes, [1.0, 1.1, 1.25, 1.3, 1.4]);
    assert_eq!((m.added, m.replaced, m.unchanged), (2, 1, 0));

    let m = merge(&stored, &incoming, Conflict::KeepExisting);
    let closes: Vec<f64> = m.series.candles().iter().map(|c| c.close).collect();
    assert_eq!(closes, [1.0, 1.1, 1.2, 1.3, 1.4]);
    assert_eq!((m.added, m.replaced, m.unchanged), (2, 0, 1));

    // Interleaved and earlier bars (a back-fill), identical duplicates change nothing.
    let older = series(&[(-2, 0.9), (0, 1.0), (1, 1.1)]);
    let m = merge(&stored, &older, Conflict::ReplaceWithIncoming);
    assert_eq!(m.series.len(), 4);
    assert_eq!(m.series.candles()[0].time, t(-2));
    assert_eq!((m.added, m.replaced, m.unchanged), (1, 0, 2));
    // Merging into nothing.
    assert_eq!(merge(&CandleSeries::default(), &stored, Conflict::KeepExisting).series, stored);
}

#[test]
fn ranges_and_months() {
    // t(0) is 2024-01-31 20:00: bars 0..=3 are in January, 4.. in February.
    let s = series(&[(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0)]);
    assert_eq!(index_range(&s, t(1), t(3)), 1..3);
    assert_eq!(range(&s, t(-10), t(1)).len(), 1);
    assert_eq!(range(&s, t(5), t(4)).len(), 0);
    assert_eq!(range(&s, t(6), t(100)).len(), 0);
    let parts = partition_by_month(&s);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].0.key(), "2024-01");
    assert_eq!(parts[0].1.len(), 4);
    assert_eq!(parts[1].0, Month { year: 2024, month: 2 });
    assert_eq!(parts[1].1.len(), 2);
}

#[test]
fn timeframes() {
    assert_eq!(Timeframe::H1.bars_per_year(), 6048.0);
    assert_eq!(Timeframe::M15.bars_per_year(), 24192.0);
    assert_eq!(Timeframe::D1.bars_per_year(), 252.0);
    assert_eq!(Timeframe::parse("h4"), Some(Timeframe::H4));
    assert_eq!(Timeframe::parse("H2"), None);
    assert_eq!(serde_json::to_string(&Timeframe::H1).unwrap(), "\"H1\"");
}
