use chrono::Utc;
use nusatrade_domain::instrument::Symbol;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::connector::default_login;
use crate::feed::Tick;

fn with_state(path: &std::path::Path) -> ConnectorConfig {
    let mut c = ConnectorConfig::new("http://127.0.0.1:1", "a@b.co", "pw");
    c.state_file = Some(path.to_path_buf());
    c
}

#[test]
fn the_state_file_is_written_at_start_and_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deeper").join("state.json");
    let first = SimConnector::new(with_state(&path)).expect("fresh");
    let saved = StateFile::new(&path).load().expect("readable").expect("written at start");
    assert_eq!((saved.login, saved.account.balance), (default_login("a@b.co"), Decimal::from(10_000)));
    // A trade, saved the way the session saves it, survives a new connector on the same file.
    let engine = first.engine();
    {
        let mut e = lock(&engine);
        let tick = Tick {
            symbol: Symbol::parse("EURUSD").expect("symbol"),
            bid: Decimal::new(110_000, 5),
            ask: Decimal::new(110_015, 5),
            time: Utc::now(),
        };
        e.on_ticks(&[tick], std::time::Instant::now());
        let cmd = json!({"type": "TRADE_OPEN", "request_id": "r1", "symbol": "EURUSD", "order_type": "BUY",
            "lot_size": 0.1, "comment": "NT-r1"});
        assert!(e.handle(&cmd.to_string(), Utc::now()).traded);
    }
    let persister = first.state.clone().expect("a persister");
    assert_eq!(persister.save_changes(&engine).ok(), Some(true));
    assert_eq!(persister.save_changes(&engine).ok(), Some(false), "nothing new");
    drop(first);
    let mut config = with_state(&path);
    config.balance = Decimal::from(5);
    let second = SimConnector::new(config).expect("restored");
    let e = lock(&second.engine);
    assert_eq!(e.account().positions().len(), 1);
    assert_eq!(e.account().account().balance, Decimal::from(10_000), "the saved balance, not the flag's");
    drop(e);

    // Another account's file is refused.
    let mut other = with_state(&path);
    other.identity.login = 1;
    let err = SimConnector::new(other).expect_err("another account").to_string();
    assert!(err.contains("belongs to MT5 login") && err.contains("--state-file"), "{err}");
}

#[test]
fn an_unusable_state_file_stops_the_command_line_and_is_set_aside_by_the_demo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    std::fs::write(&path, "{ half a state").expect("write");
    let err = SimConnector::new(with_state(&path)).expect_err("corrupt").to_string();
    assert!(err.contains("state.json") && err.contains("not JSON") && err.contains("delete it"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("{ half a state"), "left untouched");
    let mut demo = with_state(&path);
    demo.set_aside_unusable_state = true;
    let c = SimConnector::new(demo).expect("a fresh account");
    assert!(lock(&c.engine).account().positions().is_empty());
    let aside = dir.path().join("state.json.corrupt");
    assert_eq!(std::fs::read_to_string(aside).ok().as_deref(), Some("{ half a state"));
    assert!(StateFile::new(&path).load().expect("fresh file").is_some(), "a fresh state written");
    // A state file that cannot be written stops the connector before it trades.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(blocked.join("x")).expect("dir");
    assert!(matches!(SimConnector::new(with_state(&blocked)), Err(ConnectorError::State(_))));
}
