//! Whether a connector's positions reports can be reconciled: the reporting state kept on its `LINK#` record and
//! the word the connection health shows for it (issue 18: honest reconciliation with a blind connector). What an
//! `ERROR` in answer to a positions request means, and when the state changes, is reconciliation's
//! (`crate::reconcile::reporting`); this is only the state and its reading, so the link can carry it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::capabilities::{Capabilities, Capability};

/// `reconciliation` of a connection whose connector answered its last positions request with `ERROR`.
pub const UNAVAILABLE: &str = "unavailable — connector cannot report positions";
/// `reconciliation` of a connection whose connector does not promise complete reports.
pub const LIMITED: &str = "limited — connector reports positions only while MT5 holds none";
/// `reconciliation` of a connection whose connector reports positions.
pub const AVAILABLE: &str = "available";

/// Longest connector error kept on the link record (longer ones are cut).
pub const MAX_REPORT_ERROR: usize = 200;

/// The reporting state of a connector link (top-level attributes of its `LINK#` record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporting {
    /// The `ERROR` the connector answered its last positions request with; cleared by a complete report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_failed_at: Option<DateTime<Utc>>,
}

impl Reporting {
    /// What the connection health shows: `available`, `limited — …` (a connector without `report_positions`: its
    /// reports are read only while MT5 holds no position), or `unavailable — connector cannot report positions`
    /// (its last positions request was answered with `ERROR`).
    pub fn reconciliation(&self, capabilities: &Capabilities) -> &'static str {
        if self.report_error.is_some() {
            UNAVAILABLE
        } else if !capabilities.has(Capability::ReportPositions) {
            LIMITED
        } else {
            AVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_report_outranks_what_the_connector_stated() {
        let full = Capabilities::all();
        let none = Capabilities::none();
        let failed = Reporting { report_error: Some("boom".into()), report_failed_at: None };
        assert_eq!(Reporting::default().reconciliation(&full), AVAILABLE);
        assert_eq!(Reporting::default().reconciliation(&none), LIMITED);
        assert_eq!(failed.reconciliation(&full), UNAVAILABLE);
        assert_eq!(failed.reconciliation(&none), UNAVAILABLE);
    }
}
