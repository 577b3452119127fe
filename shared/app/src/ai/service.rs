//! The computed analyses and recommendations (see the module docs of [`super`]).

use chrono::{DateTime, Utc};
use nusatrade_domain::performance::{self, ClosedTrade, Review};
use nusatrade_ml::Timeframe;
use nusatrade_ml::analysis::{self, MarketAnalysis};
use uuid::Uuid;

use super::budget::TokenBudget;
use super::error::{AiError, AiResult};
use super::model::{ModelSource, NoModel};
use crate::ml::MlService;
use crate::ml::datasets::Datasets;
use crate::ml::store::{Owner, tf_name};
use crate::ports::{Clock, IdGenerator, ItemStore, Ports};
use crate::trading::orders::OrderService;
use crate::trading::orders::queries::ListFilter;
use nusatrade_domain::order::OrderStatus;
use std::sync::Arc;

/// Bars read for an analysis (the 200-bar trend average plus the 250-bar volatility window, with margin).
pub const ANALYSIS_BARS: usize = 600;
/// Symbols in a daily overview.
pub const MAX_DAILY_SYMBOLS: usize = 8;
/// Closed trades a review reads (the original's window).
pub const REVIEW_TRADES: u32 = 50;
/// The label every computed answer carries.
pub const COMPUTED_LABEL: &str = "Computed from your data (no language model):";

/// The AI use cases over the ports.
#[derive(Clone)]
pub struct AiService {
    pub store: Arc<dyn ItemStore>,
    pub datasets: Datasets,
    pub orders: OrderService,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    /// The language model, if one is configured (asked on every call: the admin settings can change it).
    pub models: Arc<dyn ModelSource>,
    /// The per-user daily token budget.
    pub budget: TokenBudget,
    /// The bots whose latest predictions ground the answers (`None`: a process without them).
    pub bots: Option<MlService>,
}

/// A symbol's analysis and when it was made.
#[derive(Clone, Debug)]
pub struct SymbolAnalysis {
    pub symbol: &'static str,
    pub timeframe: Timeframe,
    pub analysis: MarketAnalysis,
    pub text: String,
    pub generated_at: DateTime<Utc>,
}

/// The daily overview.
#[derive(Clone, Debug)]
pub struct DailyAnalysis {
    pub summary: String,
    pub symbols: Vec<SymbolAnalysis>,
    pub generated_at: DateTime<Utc>,
}

/// A review of the caller's trading.
#[derive(Clone, Debug)]
pub struct Recommendations {
    pub review: Review,
    pub text: String,
    pub generated_at: DateTime<Utc>,
}

impl AiService {
    pub fn new(ports: &Ports, orders: OrderService) -> Self {
        AiService {
            store: ports.store.clone(),
            datasets: Datasets::new(ports.store.clone(), ports.blobs.clone(), ports.clock.clone()),
            orders,
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            models: Arc::new(NoModel),
            budget: TokenBudget::new(ports.store.clone(), ports.clock.clone()),
            bots: None,
        }
    }

    /// Answers with the models of `source` when one is configured.
    pub fn with_models(mut self, source: Arc<dyn ModelSource>) -> Self {
        self.models = source;
        self
    }

    /// Grounds the answers in the active bots' latest predictions too.
    pub fn with_bots(mut self, ml: MlService) -> Self {
        self.bots = Some(ml);
        self
    }

    /// `GET /ai/analysis/{symbol}`: the newest H1 candles of the caller's dataset, else the platform's.
    pub async fn symbol(&self, user: Uuid, symbol: &'static str) -> AiResult<SymbolAnalysis> {
        let tf = Timeframe::H1;
        for owner in [Owner::User(user), Owner::System] {
            let Some(tail) = self.datasets.tail(owner, symbol, tf, ANALYSIS_BARS).await? else { continue };
            let candles = &tail.candles[tail.candles.len().saturating_sub(ANALYSIS_BARS)..];
            let series = nusatrade_ml::CandleSeries::new(candles.to_vec())
                .map_err(|e| AiError::NoData(format!("stored candles are unusable: {e}")))?;
            let pip = nusatrade_domain::instrument::lookup(symbol)
                .ok()
                .and_then(|i| rust_decimal::prelude::ToPrimitive::to_f64(&i.pip_size))
                .unwrap_or(0.0001);
            let analysis =
                analysis::analyse(symbol, &series, tf, pip).map_err(|e| AiError::NoData(format!("{symbol}: {e}")))?;
            let text = format!("{COMPUTED_LABEL} {}", analysis.summary);
            return Ok(SymbolAnalysis { symbol, timeframe: tf, analysis, text, generated_at: self.clock.now() });
        }
        Err(AiError::NoData(format!(
            "No {symbol} {} candles are stored: upload them with POST /api/v1/ml/datasets?symbol={symbol}&timeframe={}",
            tf_name(tf),
            tf_name(tf)
        )))
    }

    /// `GET /ai/analysis/daily`: the symbols with stored H1 candles (the caller's first), at most
    /// [`MAX_DAILY_SYMBOLS`].
    pub async fn daily(&self, user: Uuid) -> AiResult<DailyAnalysis> {
        let mut symbols: Vec<&'static str> = Vec::new();
        for owner in [Owner::User(user), Owner::System] {
            for d in self.datasets.list(owner).await? {
                if d.timeframe == Timeframe::H1
                    && let Ok(i) = nusatrade_domain::instrument::lookup(&d.symbol)
                    && !symbols.contains(&i.symbol)
                {
                    symbols.push(i.symbol);
                }
            }
        }
        symbols.truncate(MAX_DAILY_SYMBOLS);
        let mut done = Vec::new();
        for s in symbols {
            match self.symbol(user, s).await {
                Ok(a) => done.push(a),
                Err(AiError::NoData(_)) => {} // too short to analyse: left out of the overview
                Err(e) => return Err(e),
            }
        }
        let now = self.clock.now();
        let summary = if done.is_empty() {
            format!(
                "{COMPUTED_LABEL} no market data to analyse yet. Upload hourly candles (POST /api/v1/ml/datasets, \
                 at least {} bars) and the daily analysis will cover those symbols.",
                analysis::MIN_BARS
            )
        } else {
            let analyses: Vec<MarketAnalysis> = done.iter().map(|a| a.analysis.clone()).collect();
            format!("{COMPUTED_LABEL} {}", analysis::daily_summary(&analyses))
        };
        Ok(DailyAnalysis { summary, symbols: done, generated_at: now })
    }

    /// The caller's last [`REVIEW_TRADES`] closed trades, newest first (those with an open and close time and a
    /// profit).
    pub async fn closed_trades(&self, user: Uuid) -> AiResult<Vec<ClosedTrade>> {
        let filter =
            ListFilter { symbol: None, statuses: Some(vec![OrderStatus::Closed, OrderStatus::ClosedExternally]) };
        let page = self.orders.history(user, &filter, REVIEW_TRADES, None).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|o| {
                Some(ClosedTrade {
                    symbol: o.symbol.clone(),
                    side: o.side,
                    lots: o.lots,
                    open_time: o.open_time?,
                    close_time: o.close_time?,
                    profit: o.profit?,
                })
            })
            .collect())
    }

    /// `GET /ai/recommendations`: the caller's last [`REVIEW_TRADES`] closed trades.
    pub async fn recommendations(&self, user: Uuid) -> AiResult<Recommendations> {
        let trades = self.closed_trades(user).await?;
        let review = performance::review(&trades);
        let text = if review.recommendations.is_empty() {
            format!("{COMPUTED_LABEL} nothing to add.")
        } else {
            format!("{COMPUTED_LABEL}\n- {}", review.recommendations.join("\n- "))
        };
        Ok(Recommendations { review, text, generated_at: self.clock.now() })
    }
}
