use std::path::Path;

use super::*;

/// A fake bridge: a shell script answering every request line with `answer` (its `$id` replaced by the request's id).
fn fake(dir: &Path, name: &str, body: &str) -> BridgeConfig {
    let script = dir.join(name);
    std::fs::write(&script, body).expect("write the fake bridge");
    let mut c = BridgeConfig::new("sh", &script);
    // Loose enough for a loaded machine (every call runs `sh` and `sed`), short enough for a test.
    c.timeout = Duration::from_secs(2);
    c.restart = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(4), max_attempts: 0 };
    c
}

const ECHO: &str = r#"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed 's/^{"id":\([0-9]*\).*/\1/')
  case "$line" in
    *'"method":"boom"'*) printf '{"id":%s,"ok":false,"error":{"code":-10004,"message":"No IPC connection"}}\n' "$id" ;;
    *'"method":"bad"'*) printf '{"id":%s,"ok":false,"error":{"code":10016,"message":"Invalid stops"}}\n' "$id" ;;
    *'"method":"sleep"'*) sleep 5 ;;
    *'"method":"die"'*) exit 3 ;;
    *'"method":"env"'*) printf '{"id":%s,"ok":true,"result":{"login":"%s","password_set":%s}}\n' "$id" "$NUSATRADE_MT5_LOGIN" "$( [ -n "$NUSATRADE_MT5_PASSWORD" ] && echo true || echo false)" ;;
    *) printf 'a library says hello\n{"id":999,"ok":true,"result":"stale"}\n{"id":%s,"ok":true,"result":{"echo":%s}}\n' "$id" "$id" ;;
  esac
done
"#;

#[test]
fn the_json_lines_codec() {
    let line = encode_request(7, "positions_get", &json!({"ticket": 5}));
    assert_eq!(line, "{\"id\":7,\"method\":\"positions_get\",\"params\":{\"ticket\":5}}\n");
    assert_eq!(decode_response(r#"{"id":7,"ok":true,"result":[1]}"#, 7), Ok(Some(json!([1]))));
    assert_eq!(decode_response(r#"{"id":6,"ok":true,"result":[1]}"#, 7), Ok(None), "another request's answer");
    assert_eq!(
        decode_response(r#"{"id":7,"ok":false,"error":{"code":-4,"message":"Terminal: Not found"}}"#, 7),
        Err(Mt5Error::Terminal { code: -4, message: "Terminal: Not found".into() })
    );
    assert!(matches!(
        decode_response(r#"{"id":7,"ok":false,"error":{"code":-10004,"message":"No IPC connection"}}"#, 7),
        Err(Mt5Error::Disconnected(m)) if m.contains("No IPC")
    ));
    assert!(matches!(decode_response("not json", 7), Err(Mt5Error::Protocol(_))));
    assert!(matches!(decode_response(r#"{"id":7}"#, 7), Err(Mt5Error::Protocol(_))));
}

#[tokio::test]
async fn lines_over_the_limit_are_refused() {
    let data = format!("{}\nnext\n", "x".repeat(100));
    let mut r = tokio::io::BufReader::new(data.as_bytes());
    assert!(matches!(read_line_limited(&mut r, 50).await, Err(Mt5Error::Protocol(_))));
    let mut r = tokio::io::BufReader::new("short\n".as_bytes());
    assert_eq!(read_line_limited(&mut r, 50).await, Ok(Some("short\n".into())));
    assert_eq!(read_line_limited(&mut r, 50).await, Ok(None));
}

#[tokio::test]
async fn calls_skip_stale_answers_and_keep_terminal_errors_apart_from_disconnections() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = fake(dir.path(), "echo.sh", ECHO);
    c.login = Some(42);
    c.password = Some("s3cret".into());
    assert!(!format!("{c:?}").contains("s3cret"), "the password is not in the debug output");
    let mut b = Bridge::new(c);
    // `initialize` is id 1; the first call id 2.
    assert_eq!(b.call("ping", json!({})).await, Ok(json!({"echo": 2})));
    assert_eq!(b.call("env", json!({})).await, Ok(json!({"login": "42", "password_set": true})), "in the environment");
    assert!(matches!(b.call("bad", json!({})).await, Err(Mt5Error::Terminal { code: 10016, .. })));
    assert!(b.is_running(), "a terminal error keeps the bridge");
    assert!(matches!(b.call("boom", json!({})).await, Err(Mt5Error::Disconnected(_))));
    assert!(!b.is_running(), "a lost terminal restarts the bridge");
    assert_eq!(b.starts(), 1);
}

#[tokio::test]
async fn a_silent_or_dead_bridge_is_restarted_after_a_back_off() {
    let dir = tempfile::tempdir().expect("dir");
    let mut b = Bridge::new(fake(dir.path(), "echo.sh", ECHO));
    let started = Instant::now();
    assert_eq!(b.call("sleep", json!({})).await, Err(Mt5Error::Timeout(2000)));
    assert!(started.elapsed() < Duration::from_millis(4500), "the timeout, not the script's sleep (5 s)");
    assert!(!b.is_running());
    assert!(
        matches!(b.call("ping", json!({})).await, Err(Mt5Error::Disconnected(m)) if m.contains("restarts in")),
        "not restarted before the back-off"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(b.call("ping", json!({})).await.is_ok(), "restarted");
    assert_eq!(b.starts(), 2);
    assert!(matches!(b.call("die", json!({})).await, Err(Mt5Error::Disconnected(m)) if m.contains("exited")));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(b.call("ping", json!({})).await.is_ok(), "restarted again (two failures in a row: 2 s)");
    assert_eq!(b.starts(), 3);
}

#[tokio::test]
async fn a_bridge_that_cannot_start_or_initialise_is_disconnected() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = fake(dir.path(), "x.sh", "");
    c.python = "/nonexistent/python".into();
    let mut b = Bridge::new(c);
    assert!(matches!(b.call("ping", json!({})).await, Err(Mt5Error::Disconnected(m)) if m.contains("cannot start")));
    let init_fails = r#"read -r line; printf '{"id":1,"ok":false,"error":{"code":-6,"message":"Terminal: Authorization failed"}}\n'"#;
    let mut b = Bridge::new(fake(dir.path(), "auth.sh", init_fails));
    assert!(
        matches!(b.call("ping", json!({})).await, Err(Mt5Error::Disconnected(m)) if m.contains("Authorization failed"))
    );
    assert!(!b.is_running());
}

/// The interpreter the tests run the real bridge script with (`NUSATRADE_PYTHON`, else `python3`).
fn python() -> String {
    std::env::var("NUSATRADE_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test]
async fn the_shipped_script_drives_the_stand_in_package() {
    let dir = tempfile::tempdir().expect("dir");
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mt5");
    std::fs::write(dir.path().join("prices.json"), r#"{"EURUSD": [1.1, 1.10015]}"#).expect("prices");
    let script = write_script(&dir.path().join("bridge")).expect("script");
    assert_eq!(std::fs::read_to_string(&script).expect("read"), SCRIPT);
    let mut c = BridgeConfig::new(python(), script);
    c.env = vec![
        ("PYTHONPATH".into(), standin.display().to_string()),
        ("MT5_STANDIN_DIR".into(), dir.path().display().to_string()),
        ("MT5_STANDIN_PASSWORD".into(), "pw".into()),
    ];
    c.login = Some(5_001_234);
    c.password = Some("wrong".into());
    c.timeout = Duration::from_secs(10);
    c.restart.base = Duration::from_millis(10);
    let mut t = BridgeTerminal::new(Bridge::new(c.clone()));
    assert!(matches!(t.account_info().await, Err(Mt5Error::Disconnected(m)) if m.contains("Authorization failed")));
    c.password = Some("pw".into());
    let mut t = BridgeTerminal::new(Bridge::new(c));
    let a = t.account_info().await.expect("account");
    assert_eq!((a.login, a.balance, a.currency.as_str()), (5_001_234, Decimal::from(10_000), "USD"));
    let info = t.symbol_info("EURUSD").await.expect("info").expect("known");
    assert_eq!((info.digits, info.filling_mode), (5, 3));
    assert_eq!(t.symbol_info("NOPE").await.expect("answer"), None);
    let r = t
        .order_send(TradeRequest {
            action: super::super::TRADE_ACTION_DEAL,
            symbol: "EURUSD".into(),
            volume: Some(Decimal::new(1, 1)),
            kind: Some(super::super::ORDER_TYPE_SELL),
            position: None,
            price: Some(Decimal::new(11, 1)),
            sl: Some(Decimal::ZERO),
            tp: Some(Decimal::ZERO),
            deviation: Some(20),
            magic: Some(1),
            comment: Some("NT-abc".into()),
            type_time: Some(0),
            type_filling: Some(0),
        })
        .await
        .expect("sent");
    assert_eq!((r.retcode, r.price, r.volume), (super::super::RETCODE_DONE, Decimal::new(11, 1), Decimal::new(1, 1)));
    let p = t.positions_get(PositionFilter::Ticket(r.order)).await.expect("positions");
    assert_eq!((p.len(), p[0].comment.as_str(), p[0].kind), (1, "NT-abc", 1));
    let deals = t.history_deals_get(HistoryQuery::Order(r.order)).await.expect("deals");
    assert_eq!((deals[0].ticket, deals[0].position_id, deals[0].entry), (r.deal, r.order, super::super::DEAL_ENTRY_IN));
    let now = Utc::now();
    assert_eq!(
        t.history_deals_get(HistoryQuery::Range(now - chrono::TimeDelta::hours(1), now)).await.expect("range").len(),
        1
    );
    let from = DateTime::from_timestamp(1_704_153_600, 0).expect("t");
    let rates = t.copy_rates_range("EURUSD", "H1", from, from + chrono::TimeDelta::hours(2)).await.expect("rates");
    assert_eq!(rates.len(), 3);
    std::fs::create_dir_all(dir.path().join("ctl")).expect("ctl");
    std::fs::write(dir.path().join("ctl/offline"), "").expect("offline");
    assert!(matches!(t.account_info().await, Err(Mt5Error::Disconnected(_))), "IPC codes are disconnections");
    t.shutdown().await;
}
