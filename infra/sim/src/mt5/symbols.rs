//! The broker's symbol names ↔ the platform's canonical symbols.
//!
//! Brokers name their instruments with suffixes and prefixes (`EURUSD.m`, `EURUSDm`, `EURUSD.pro`, `EURUSD#`,
//! `m.EURUSD`…), while the platform speaks the catalogue's canonical names (`EURUSD`,
//! [`nusatrade_domain::instrument`]). A [`SymbolMap`] is built from the terminal's own list (`symbols_get()`):
//!
//! 1. explicit pairs (`--symbol-map EURUSD=EURUSD.pro`) win;
//! 2. then an affix rule (`--symbol-prefix` / `--symbol-suffix`: `EURUSD` → `<prefix>EURUSD<suffix>`);
//! 3. else automatically: each broker name is reduced to a canonical symbol by the catalogue's own reading
//!    ([`lookup`]: the part before `.`, `-`, `_`, `#`, `+`, a trailing lower-case tail, the aliases such as
//!    `GOLD`), or, for a short prefix before a separator (`m.EURUSD`), by the part after it. A canonical symbol
//!    maps to the broker name spelled exactly like it when the terminal has one, else to the **one** name that
//!    reduces to it. Two or more such names (`EURUSD.a`, `EURUSD.b`) are ambiguous and none (the broker does not
//!    offer it) is missing: no mapping, one log line, and that symbol's commands are refused with
//!    [`Unmapped`]'s message instead of guessed.
//!
//! Names coming back (positions, deals, orders, ticks) are reported under the canonical symbol when the map
//! knows them; names it does not know (a position on a symbol nobody maps) are reported untouched. Without a
//! symbol list (the terminal did not give one) and without flags, names go through unchanged, as before.

use std::collections::{BTreeMap, HashMap, HashSet};

use nusatrade_domain::instrument::{INSTRUMENTS, lookup};
use thiserror::Error;

/// Most broker symbols read from `symbols_get()` (the rest are ignored, with a warning).
pub const MAX_BROKER_SYMBOLS: usize = 20_000;
/// Longest broker symbol name kept (MT5 allows 31 characters; longer ones are ignored).
pub const MAX_SYMBOL_NAME: usize = 32;
/// Most `--symbol-map` pairs.
pub const MAX_SYMBOL_OVERRIDES: usize = 200;
/// Longest `--symbol-prefix` / `--symbol-suffix`.
pub const MAX_AFFIX: usize = 16;
/// Longest prefix the automatic reading skips before a separator (`m.` in `m.EURUSD`).
const MAX_AUTO_PREFIX: usize = 8;

/// A bad `--symbol-map` / affix flag.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SymbolFlagError {
    /// Not `CANONICAL=BROKER`.
    #[error("--symbol-map takes CANONICAL=BROKER (e.g. EURUSD=EURUSD.pro), not {0:?}")]
    Form(String),
    /// The left side is not a catalogue symbol.
    #[error("--symbol-map: {0} is not a platform symbol (e.g. EURUSD, XAUUSD, US500)")]
    NotCanonical(String),
    /// A name that cannot be a broker symbol.
    #[error("--symbol-map: broker name {0:?} must be 1 to {MAX_SYMBOL_NAME} printable characters without spaces")]
    BrokerName(String),
    /// The same canonical symbol twice.
    #[error("--symbol-map: {0} is given twice")]
    Twice(String),
    /// Too many pairs.
    #[error("--symbol-map: at most {MAX_SYMBOL_OVERRIDES} pairs")]
    TooMany,
    /// A bad prefix or suffix.
    #[error(
        "--symbol-prefix / --symbol-suffix must be 1 to {MAX_AFFIX} printable characters without spaces, not {0:?}"
    )]
    Affix(String),
}

/// Why a canonical symbol has no broker name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unmapped {
    /// Several broker names reduce to it.
    #[error(
        "{canonical} is ambiguous in this MT5 terminal ({candidates}): not traded; choose one with --symbol-map {canonical}=<broker name>"
    )]
    Ambiguous {
        /// The platform's symbol.
        canonical: String,
        /// Some of the broker names (comma-separated).
        candidates: String,
    },
    /// No broker name reduces to it.
    #[error(
        "{0} is not offered by this MT5 terminal (no broker symbol matches it): not traded; name it with --symbol-map {0}=<broker name>"
    )]
    Missing(String),
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// The canonical symbol a flag names (`eurusd` → `EURUSD`); only the catalogue's own spelling or its case.
fn canonical_flag(s: &str) -> Option<&'static str> {
    let upper = s.trim().to_ascii_uppercase();
    INSTRUMENTS.iter().find(|i| i.symbol == upper).map(|i| i.symbol)
}

/// Reads `CANONICAL=BROKER` (`--symbol-map`).
pub fn parse_pair(s: &str) -> Result<(String, String), SymbolFlagError> {
    let (c, b) = s.split_once('=').ok_or_else(|| SymbolFlagError::Form(s.chars().take(64).collect()))?;
    let canonical = canonical_flag(c).ok_or_else(|| SymbolFlagError::NotCanonical(c.chars().take(32).collect()))?;
    let broker = b.trim();
    if !valid_name(broker, MAX_SYMBOL_NAME) {
        return Err(SymbolFlagError::BrokerName(broker.chars().take(64).collect()));
    }
    Ok((canonical.to_owned(), broker.to_owned()))
}

/// Checks a `--symbol-prefix` / `--symbol-suffix`.
pub fn parse_affix(s: &str) -> Result<String, SymbolFlagError> {
    if valid_name(s, MAX_AFFIX) { Ok(s.to_owned()) } else { Err(SymbolFlagError::Affix(s.chars().take(32).collect())) }
}

/// The flags' part of the map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolRules {
    /// `--symbol-map` pairs (canonical, broker).
    pub pairs: Vec<(String, String)>,
    /// `--symbol-prefix`.
    pub prefix: Option<String>,
    /// `--symbol-suffix`.
    pub suffix: Option<String>,
}

impl SymbolRules {
    /// Checks the pairs (count, duplicates).
    pub fn validate(&self) -> Result<(), SymbolFlagError> {
        if self.pairs.len() > MAX_SYMBOL_OVERRIDES {
            return Err(SymbolFlagError::TooMany);
        }
        let mut seen = HashSet::new();
        for (c, _) in &self.pairs {
            if !seen.insert(c) {
                return Err(SymbolFlagError::Twice(c.clone()));
            }
        }
        Ok(())
    }

    fn affixed(&self) -> bool {
        self.prefix.is_some() || self.suffix.is_some()
    }
}

/// The canonical symbol a broker name reads as, automatically (see the module docs).
pub fn reduce(name: &str) -> Option<&'static str> {
    if let Ok(i) = lookup(name) {
        return Some(i.symbol);
    }
    let cut = name.find(['.', '-', '_', '#', '+', '!', '$', '~'])?;
    (cut > 0 && cut <= MAX_AUTO_PREFIX).then(|| lookup(&name[cut + 1..]).ok().map(|i| i.symbol)).flatten()
}

/// The map in both directions. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct SymbolMap {
    rules: SymbolRules,
    /// canonical → broker (automatic and explicit).
    to_broker: HashMap<String, String>,
    /// broker → canonical.
    to_canonical: HashMap<String, String>,
    /// The terminal's names (empty: no list).
    names: HashSet<String>,
    /// Canonical symbols without a name, and why.
    unmapped: BTreeMap<String, Unmapped>,
}

impl SymbolMap {
    /// A map from the flags alone (before the terminal's list is read).
    pub fn new(rules: SymbolRules) -> SymbolMap {
        let mut m = SymbolMap { rules, ..SymbolMap::default() };
        m.rebuild(&[]);
        m
    }

    /// The flags.
    pub fn rules(&self) -> &SymbolRules {
        &self.rules
    }

    /// Rebuilds the map from the terminal's symbol names (`symbols_get()`); names beyond the limits are ignored.
    pub fn rebuild(&mut self, names: &[String]) {
        let names: Vec<&String> =
            names.iter().filter(|n| valid_name(n, MAX_SYMBOL_NAME)).take(MAX_BROKER_SYMBOLS).collect();
        self.names = names.iter().map(|n| (*n).clone()).collect();
        self.to_broker.clear();
        self.to_canonical.clear();
        self.unmapped.clear();
        let explicit: HashSet<&str> = self.rules.pairs.iter().map(|(c, _)| c.as_str()).collect();
        for (c, b) in &self.rules.pairs {
            self.to_broker.insert(c.clone(), b.clone());
            self.to_canonical.insert(b.clone(), c.clone());
        }
        if self.rules.affixed() {
            let (p, s) = (self.rules.prefix.as_deref().unwrap_or(""), self.rules.suffix.as_deref().unwrap_or(""));
            for i in INSTRUMENTS.iter().filter(|i| !explicit.contains(i.symbol)) {
                let b = format!("{p}{}{s}", i.symbol);
                self.to_canonical.insert(b.clone(), i.symbol.to_owned());
                self.to_broker.insert(i.symbol.to_owned(), b);
            }
            return;
        }
        if self.names.is_empty() {
            return;
        }
        let mut candidates: BTreeMap<&'static str, Vec<&String>> = BTreeMap::new();
        for n in &names {
            if let Some(c) = reduce(n) {
                candidates.entry(c).or_default().push(n);
            }
        }
        for i in INSTRUMENTS.iter().filter(|i| !explicit.contains(i.symbol)) {
            let c = i.symbol;
            let found = candidates.get(c).map(Vec::as_slice).unwrap_or_default();
            let chosen = match found {
                [one] => Some(*one),
                [] => None,
                many => many.iter().find(|n| n.eq_ignore_ascii_case(c)).copied(),
            };
            match chosen {
                Some(b) => {
                    self.to_broker.insert(c.to_owned(), b.clone());
                    self.to_canonical.insert(b.clone(), c.to_owned());
                }
                None if found.is_empty() => {
                    self.unmapped.insert(c.to_owned(), Unmapped::Missing(c.to_owned()));
                }
                None => {
                    let mut shown: Vec<&str> = found.iter().take(5).map(|s| s.as_str()).collect();
                    shown.sort_unstable();
                    let more = if found.len() > 5 { format!(", … {} in all", found.len()) } else { String::new() };
                    let candidates = format!("{}{more}", shown.join(", "));
                    self.unmapped.insert(c.to_owned(), Unmapped::Ambiguous { canonical: c.to_owned(), candidates });
                }
            }
        }
    }

    /// Whether the terminal's list is known.
    pub fn listed(&self) -> bool {
        !self.names.is_empty()
    }

    /// The pairs whose names differ (canonical, broker), sorted.
    pub fn renamed(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> =
            self.to_broker.iter().filter(|(c, b)| c != b).map(|(c, b)| (c.as_str(), b.as_str())).collect();
        v.sort_unstable();
        v
    }

    /// The canonical symbols without a broker name, and why.
    pub fn unmapped(&self) -> impl Iterator<Item = &Unmapped> {
        self.unmapped.values()
    }

    /// The broker name to send for `symbol` (a canonical symbol, or a broker name reported untouched).
    pub fn outgoing(&self, symbol: &str) -> Result<String, Unmapped> {
        let canonical = canonical_flag(symbol);
        if let Some(b) = canonical.and_then(|c| self.to_broker.get(c)) {
            return Ok(b.clone());
        }
        if !self.listed() || self.names.contains(symbol) {
            return Ok(symbol.to_owned());
        }
        match canonical.and_then(|c| self.unmapped.get(c)) {
            Some(why) => Err(why.clone()),
            None => Ok(symbol.to_owned()),
        }
    }

    /// The name to report for the broker's `name`: its canonical symbol when mapped, else `name` untouched.
    pub fn incoming(&self, name: &str) -> String {
        self.to_canonical.get(name).cloned().unwrap_or_else(|| name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn auto(v: &[&str]) -> SymbolMap {
        let mut m = SymbolMap::new(SymbolRules::default());
        m.rebuild(&names(v));
        m
    }

    #[test]
    fn broker_names_reduce_to_the_catalogue_symbol() {
        for n in
            ["EURUSD", "EURUSD.m", "EURUSDm", "EURUSD.pro", "EURUSD#", "m.EURUSD", "EURUSD-ECN", "eurusd", "EURUSD_i"]
        {
            assert_eq!(reduce(n), Some("EURUSD"), "{n}");
        }
        assert_eq!(reduce("GOLD.m"), Some("XAUUSD"));
        assert_eq!(reduce("US500.cash"), Some("US500"));
        for n in ["EURUSDM", "US5000", "verylongprefix.EURUSD", "EUR", ".EURUSD", "Nasdaq Tech"] {
            assert_eq!(reduce(n), None, "{n}");
        }
    }

    #[test]
    fn each_canonical_symbol_maps_to_its_unique_broker_name_both_ways() {
        let m = auto(&["EURUSD.m", "GBPUSD.m", "XAUUSD.m", "AUDCAD.m", "SPOTCRUDE"]);
        assert_eq!(m.outgoing("EURUSD"), Ok("EURUSD.m".into()));
        assert_eq!(m.outgoing("eurusd"), Ok("EURUSD.m".into()), "the platform's case does not matter");
        assert_eq!(m.incoming("EURUSD.m"), "EURUSD");
        assert_eq!(m.incoming("SPOTCRUDE"), "SPOTCRUDE", "an unmapped broker name is reported untouched");
        assert_eq!(m.outgoing("SPOTCRUDE"), Ok("SPOTCRUDE".into()), "and sent back untouched");
        assert!(m.renamed().contains(&("EURUSD", "EURUSD.m")));
        // The exact name wins over affixed ones.
        let m = auto(&["EURUSD", "EURUSD.pro", "m.GBPUSD"]);
        assert_eq!((m.outgoing("EURUSD"), m.incoming("EURUSD.pro")), (Ok("EURUSD".into()), "EURUSD.pro".into()));
        assert_eq!((m.outgoing("GBPUSD"), m.incoming("m.GBPUSD")), (Ok("m.GBPUSD".into()), "GBPUSD".into()));
    }

    #[test]
    fn ambiguous_or_missing_symbols_are_refused_not_guessed() {
        let m = auto(&["EURUSD.a", "EURUSD.b", "GBPUSD.m"]);
        let e = m.outgoing("EURUSD").expect_err("ambiguous");
        assert!(matches!(e, Unmapped::Ambiguous { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("EURUSD.a, EURUSD.b") && text.contains("--symbol-map EURUSD="), "{text}");
        assert_eq!(m.incoming("EURUSD.a"), "EURUSD.a", "positions on it keep the broker's name");
        assert_eq!(m.outgoing("EURUSD.b"), Ok("EURUSD.b".into()), "closing them uses that name");
        let e = m.outgoing("USDCHF").expect_err("missing");
        assert_eq!(e, Unmapped::Missing("USDCHF".into()));
        assert!(e.to_string().contains("not offered"), "{e}");
        assert!(m.unmapped().count() > 2);
        // Without a list (the terminal gave none), names go through.
        let none = auto(&[]);
        assert_eq!((none.outgoing("EURUSD"), none.incoming("EURUSD.m")), (Ok("EURUSD".into()), "EURUSD.m".into()));
    }

    #[test]
    fn flags_override_the_automatic_map() {
        let rules = SymbolRules { pairs: vec![parse_pair("eurusd=EURUSD.b").expect("pair")], ..Default::default() };
        let mut m = SymbolMap::new(rules);
        m.rebuild(&names(&["EURUSD.a", "EURUSD.b"]));
        assert_eq!((m.outgoing("EURUSD"), m.incoming("EURUSD.b")), (Ok("EURUSD.b".into()), "EURUSD".into()));
        let rules = SymbolRules { suffix: Some(parse_affix(".m").expect("suffix")), ..Default::default() };
        let m = SymbolMap::new(rules);
        assert_eq!((m.outgoing("XAUUSD"), m.incoming("XAUUSD.m")), (Ok("XAUUSD.m".into()), "XAUUSD".into()));
        let rules = SymbolRules { prefix: Some("m.".into()), ..Default::default() };
        assert_eq!(SymbolMap::new(rules).outgoing("EURUSD"), Ok("m.EURUSD".into()));
    }

    #[test]
    fn flags_and_lists_have_limits() {
        assert!(matches!(parse_pair("EURUSD"), Err(SymbolFlagError::Form(_))));
        assert!(matches!(parse_pair("NOPE=X"), Err(SymbolFlagError::NotCanonical(_))));
        assert!(matches!(parse_pair("EURUSD="), Err(SymbolFlagError::BrokerName(_))));
        assert!(matches!(parse_pair(&format!("EURUSD={}", "X".repeat(40))), Err(SymbolFlagError::BrokerName(_))));
        assert!(parse_affix("a b").is_err() && parse_affix("").is_err() && parse_affix(&".".repeat(17)).is_err());
        let twice = SymbolRules { pairs: vec![("EURUSD".into(), "A".into()); 2], ..Default::default() };
        assert_eq!(twice.validate(), Err(SymbolFlagError::Twice("EURUSD".into())));
        let many = SymbolRules { pairs: vec![("EURUSD".into(), "A".into()); 201], ..Default::default() };
        assert_eq!(many.validate(), Err(SymbolFlagError::TooMany));
        // Over-long names are ignored; only the first MAX_BROKER_SYMBOLS names are read.
        let m = auto(&[&format!("EURUSD.{}", "x".repeat(40))]);
        assert!(!m.listed());
        let mut list: Vec<String> = (0..MAX_BROKER_SYMBOLS).map(|i| format!("S{i}")).collect();
        list.push("EURUSD.m".into());
        let mut m = SymbolMap::new(SymbolRules::default());
        m.rebuild(&list);
        assert!(m.outgoing("EURUSD").is_err(), "the name past the limit is not read");
    }
}
