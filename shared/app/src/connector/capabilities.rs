//! What a connector says it can do (design §5b: negotiate, never assume). A connector states its capabilities in
//! its `AUTH` frame — `{"type": "AUTH", "token": …, "capabilities": ["dedupe_request_id", …]}` — and they are kept
//! with the connection (the `WS#<id>` record and the broker connection's `LINK#` record), so every function instance
//! decides the same way.
//!
//! | capability | the connector promises |
//! |---|---|
//! | `dedupe_request_id` | a trade command repeated with the same `request_id` is never executed twice: the repeat is answered with the first result |
//! | `report_positions` | `GET_POSITIONS` / `SYNC_REQUEST` are answered with a complete report whatever MT5 holds (the original answers `ERROR` while MT5 holds any position) |
//! | `report_comments` | positions and deals in reports carry their MT5 comment (`NT-<client order id>`), so they can be matched back to orders |
//! | `history_lookups` | `SYNC_REQUEST` is answered with the deals since a watermark and targeted ticket lookups |
//! | `ack_fill_details` | open and close acks carry MT5's fill price, volume and time |
//! | `history_candles` | `HISTORY_REQUEST` is answered with `HISTORY_CANDLES`: OHLC bars of a symbol and timeframe over a range ([`super::history`]) |
//!
//! A connector that states nothing (the original NusaTrade connector: its `AUTH` is only `{type, token, client_type,
//! timestamp}`) has none of them. Unknown names are ignored with a log line — a newer connector talking to an older
//! server loses nothing but the feature — and a malformed list (not a list of strings, longer than
//! [`MAX_CAPABILITIES`]) counts as no capabilities: the safe side, never an error.
//!
//! What the server does with them: the delivery rules of [`nusatrade_domain::order::command::redelivery`] (an
//! unacknowledged `TRADE_OPEN` is re-sent after a reconnect only to a connector with `dedupe_request_id`).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Map;
use tracing::{info, warn};

/// The attribute of the connection and link records holding the capabilities (a list of names).
pub const CAPABILITIES_ATTR: &str = "capabilities";
/// The attribute holding what the connector stated, when its connection's flags withdraw some of it.
pub const STATED_CAPABILITIES_ATTR: &str = "stated_capabilities";

/// Most capability names read from one `AUTH` (more: the list is ignored).
pub const MAX_CAPABILITIES: usize = 32;
/// Longest capability name read (a longer one is unknown).
pub const MAX_CAPABILITY_NAME: usize = 64;

/// One thing a connector may be able to do (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    DedupeRequestId,
    ReportPositions,
    ReportComments,
    HistoryLookups,
    AckFillDetails,
    HistoryCandles,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::DedupeRequestId,
        Capability::ReportPositions,
        Capability::ReportComments,
        Capability::HistoryLookups,
        Capability::AckFillDetails,
        Capability::HistoryCandles,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::DedupeRequestId => "dedupe_request_id",
            Capability::ReportPositions => "report_positions",
            Capability::ReportComments => "report_comments",
            Capability::HistoryLookups => "history_lookups",
            Capability::AckFillDetails => "ack_fill_details",
            Capability::HistoryCandles => "history_candles",
        }
    }

    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The capabilities of one connection; empty for the original connector. Stored as a list of names (unknown names
/// in a stored list — written by a newer server — are skipped on read).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Capabilities(BTreeSet<Capability>);

impl From<Vec<String>> for Capabilities {
    fn from(names: Vec<String>) -> Self {
        Capabilities(names.iter().filter_map(|n| Capability::parse(n)).collect())
    }
}

impl From<Capabilities> for Vec<String> {
    fn from(c: Capabilities) -> Self {
        c.names().map(str::to_owned).collect()
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        Capabilities(iter.into_iter().collect())
    }
}

/// The capabilities an `AUTH` frame states, and what in it was not understood.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stated {
    pub capabilities: Capabilities,
    /// Names not known to this server (ignored), at most [`MAX_CAPABILITIES`], each cut to [`MAX_CAPABILITY_NAME`].
    pub unknown: Vec<String>,
    /// Why the `capabilities` field was ignored as a whole (not a list of strings, too long).
    pub malformed: Option<String>,
}

impl Capabilities {
    /// None: the original connector.
    pub fn none() -> Self {
        Capabilities::default()
    }

    /// Everything this server knows of.
    pub fn all() -> Self {
        Capability::ALL.into_iter().collect()
    }

    pub fn has(&self, c: Capability) -> bool {
        self.0.contains(&c)
    }

    /// Whether a repeated trade command is answered with its first result, never executed twice.
    pub fn dedupes(&self) -> bool {
        self.has(Capability::DedupeRequestId)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The capabilities, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.0.iter().copied()
    }

    /// The names, in a stable order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|c| c.as_str())
    }

    /// Reads the `capabilities` field of an `AUTH` frame: absent or `null` is none (the original connector).
    pub fn stated(auth: &Map<String, serde_json::Value>) -> Stated {
        let list = match auth.get("capabilities") {
            None | Some(serde_json::Value::Null) => return Stated::default(),
            Some(serde_json::Value::Array(list)) if list.len() <= MAX_CAPABILITIES => list,
            Some(serde_json::Value::Array(list)) => {
                return Stated {
                    malformed: Some(format!("{} capabilities (at most {MAX_CAPABILITIES})", list.len())),
                    ..Stated::default()
                };
            }
            Some(_) => return Stated { malformed: Some("not a list".into()), ..Stated::default() },
        };
        let mut stated = Stated::default();
        for v in list {
            let serde_json::Value::String(name) = v else {
                return Stated { malformed: Some("not a list of strings".into()), ..Stated::default() };
            };
            match Capability::parse(name) {
                Some(c) => {
                    stated.capabilities.0.insert(c);
                }
                None => stated.unknown.push(name.chars().take(MAX_CAPABILITY_NAME).collect()),
            }
        }
        stated
    }
}

impl Stated {
    /// Logs what was ignored (never an error: the connector keeps its link).
    pub fn log(&self, ws: &str) {
        if let Some(why) = &self.malformed {
            warn!(ws, reason = %why, "AUTH capabilities ignored: the connector is treated as having none");
        }
        if !self.unknown.is_empty() {
            info!(ws, unknown = ?self.unknown, "AUTH states capabilities this server does not know: ignored");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn stated(v: Value) -> Stated {
        Capabilities::stated(v.as_object().unwrap())
    }

    #[test]
    fn the_original_auth_states_nothing() {
        let s = stated(json!({"type": "AUTH", "token": "t", "client_type": "connector", "timestamp": "2024-01-01"}));
        assert_eq!(s, Stated::default());
        assert!(!s.capabilities.dedupes());
        assert!(stated(json!({"type": "AUTH", "capabilities": null})).capabilities.is_empty());
    }

    #[test]
    fn known_names_are_read_and_unknown_ones_ignored() {
        let s =
            stated(json!({"capabilities": ["dedupe_request_id", "teleport", "ack_fill_details", "dedupe_request_id"]}));
        assert!(s.capabilities.dedupes());
        assert!(s.capabilities.has(Capability::AckFillDetails));
        assert!(!s.capabilities.has(Capability::ReportComments));
        assert_eq!(s.unknown, ["teleport"]);
        assert_eq!(s.malformed, None);
        let long = "x".repeat(1000);
        assert_eq!(stated(json!({"capabilities": [long]})).unknown[0].len(), MAX_CAPABILITY_NAME);
        // names are exact: no case folding, no aliases
        assert!(stated(json!({"capabilities": ["DEDUPE_REQUEST_ID", "dedupe"]})).capabilities.is_empty());
    }

    #[test]
    fn unknown_names_are_bounded_and_never_stored() {
        let mut names: Vec<String> =
            (0..MAX_CAPABILITIES - 1).map(|i| format!("future_{i}_{}", "x".repeat(500))).collect();
        names.push("report_positions".into());
        let s = stated(json!({ "capabilities": names }));
        assert_eq!(s.unknown.len(), MAX_CAPABILITIES - 1);
        assert!(s.unknown.iter().all(|n| n.chars().count() <= MAX_CAPABILITY_NAME));
        // what is kept with the connection: the known names only
        assert_eq!(serde_json::to_value(&s.capabilities).unwrap(), json!(["report_positions"]));
    }

    #[test]
    fn a_malformed_list_counts_as_none() {
        for bad in [
            json!({"capabilities": "dedupe_request_id"}),
            json!({"capabilities": {"dedupe_request_id": true}}),
            json!({"capabilities": ["dedupe_request_id", 7]}),
            json!({"capabilities": vec!["dedupe_request_id"; MAX_CAPABILITIES + 1]}),
        ] {
            let s = stated(bad.clone());
            assert!(s.capabilities.is_empty(), "{bad}");
            assert!(s.malformed.is_some(), "{bad}");
        }
    }

    #[test]
    fn stored_as_a_list_of_names_and_read_leniently() {
        let all = Capabilities::all();
        let v = serde_json::to_value(&all).unwrap();
        assert_eq!(
            v,
            json!([
                "dedupe_request_id",
                "report_positions",
                "report_comments",
                "history_lookups",
                "ack_fill_details",
                "history_candles"
            ])
        );
        assert_eq!(serde_json::from_value::<Capabilities>(v).unwrap(), all);
        let newer: Capabilities = serde_json::from_value(json!(["report_comments", "from_the_future"])).unwrap();
        assert_eq!(newer, [Capability::ReportComments].into_iter().collect());
    }
}
