//! Predictions (made, stored, listed) and their execution through the order use case.

use chrono::{DateTime, Duration, Utc};
use nusatrade_domain::money::Side;
use nusatrade_domain::order::validate_stops;
use nusatrade_ml::predict::PredictError;
use nusatrade_ml::{CandleSeries, Direction, Timeframe};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Value, json};
use tracing::warn;
use uuid::Uuid;

use super::{
    ExecuteInput, MlService, PREDICT_HISTORY_BARS, PREDICTION_TTL_DAYS, PredictCandles, SOURCE_ML, StoredPrediction,
};
use crate::auth::CurrentUser;
use crate::ml::artefacts::{ArtefactStoreError, owner_of};
use crate::ml::error::{MlError, MlResult};
use crate::ml::store::*;
use crate::ports::{Condition, Cursor, Item, Query, StoreError, Update};
use crate::trading::orders::{IdempotencyKey, PlaceOrder, Placed};

impl MlService {
    // ------------------------------------------------------------------ predictions

    /// `POST /ml/models/{id}/predict`: the model (cached per warm process), features of the newest candles, the
    /// decision; the prediction is stored and returned.
    pub async fn predict(
        &self,
        user: Uuid,
        id: Uuid,
        symbol: Option<&'static str>,
        candles: PredictCandles,
    ) -> MlResult<StoredPrediction> {
        let model = self.get_model(user, id).await?;
        self.predict_model(&model, symbol, candles, None).await
    }

    /// A prediction of `model` (already read), stored; `extra` is added to the prediction object (the
    /// auto-trading cycle's marker).
    pub(crate) async fn predict_model(
        &self,
        model: &ModelRecord,
        symbol: Option<&'static str>,
        candles: PredictCandles,
        extra: Option<(&str, Value)>,
    ) -> MlResult<StoredPrediction> {
        let (user, id) = (model.user_id, model.id);
        let (Some(location), Some(checksum)) = (model.artefact, model.artefact_checksum.clone()) else {
            return Err(MlError::Refused("Model not trained. Please train the model first.".into()));
        };
        let artefact =
            self.cache.get_or_load(self.blobs.as_ref(), owner_of(&location, user), &location, &checksum).await?;
        let symbol = symbol.unwrap_or_else(|| {
            nusatrade_domain::instrument::lookup(&model.symbol).map(|i| i.symbol).unwrap_or("EURUSD")
        });
        let (series_holder, source): (CandlesHolder, Value) = match candles {
            PredictCandles::Given(s) => {
                let last = s.candles().last().map(|c| c.time);
                (CandlesHolder::Owned(s), json!({"kind": "request", "last_bar": last}))
            }
            PredictCandles::Stored => self.stored_candles(user, symbol, model.timeframe).await?,
        };
        let prediction = match &series_holder {
            CandlesHolder::Owned(s) => predict_candles(&artefact, s.candles()),
            CandlesHolder::Shared(tail) => predict_tail(&artefact, tail),
        };
        let mut prediction = match prediction {
            Ok(p) => p,
            Err(e @ (PredictError::NotEnoughBars { .. } | PredictError::NonFiniteFeature(_))) => {
                return Err(MlError::Refused(format!("Cannot predict: {e}")));
            }
            Err(e) => {
                return Err(MlError::Artefact(ArtefactStoreError::Artefact(
                    nusatrade_ml::ArtefactError::Incompatible(e.to_string()),
                )));
            }
        };
        let linked = match (model.strategy_id, &self.strategies) {
            (Some(sid), Some(lookup)) => lookup.linked(user, sid).await?,
            _ => None,
        };
        if let Some(ls) = &linked {
            apply_strategy_risk(&mut prediction, ls, symbol);
        }
        let now = self.clock.now();
        let pid = self.new_v7(now);
        let mut object = serde_json::to_value(&prediction).map_err(|e| StoreError::Validation(e.to_string()))?;
        if let Value::Object(m) = &mut object {
            let (message, rules, trailing) = match &linked {
                Some(ls) => (
                    format!("Stop loss, take profit and trailing stop from strategy '{}'", ls.name),
                    json!({"strategy_id": ls.id, "entry_rules": ls.entry_rules, "exit_rules": ls.exit_rules}),
                    ls.risk
                        .trailing
                        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
                        .unwrap_or(json!({"enabled": false})),
                ),
                None => (
                    "No strategy linked".to_owned(),
                    Value::Null,
                    json!({"enabled": true, "activation_pips": 20, "trail_distance_pips": 15, "breakeven_pips": 15}),
                ),
            };
            m.insert(
                "strategy_validation".into(),
                json!({"valid": true, "matched_rules": [], "failed_rules": [], "message": message,
                       "current_indicators": prediction.current_indicators}),
            );
            m.insert("strategy_rules".into(), rules);
            m.insert("trailing_stop".into(), trailing);
            m.insert("model_version".into(), Value::from(location.version));
            m.insert("candles".into(), source);
            m.insert("timestamp".into(), Value::from(crate::wire::iso(now)));
            if let Some((k, v)) = extra {
                m.insert(k.to_owned(), v);
            }
        }
        let direction = match prediction.direction {
            Direction::Buy => "BUY",
            Direction::Sell => "SELL",
            Direction::Hold => "HOLD",
        };
        let record = PredictionRecord {
            id: pid,
            model_id: id,
            user_id: user,
            symbol: symbol.to_owned(),
            direction: direction.to_owned(),
            confidence: prediction.confidence,
            prediction: object.to_string(),
            model_version: location.version,
            executed_order_id: None,
            auto_outcome: None,
            created_at: now,
            ttl: (now + Duration::days(PREDICTION_TTL_DAYS)).timestamp(),
        };
        self.store.put(Item::from_record(&prediction_key(user, id, pid), &record)?, Some(Condition::NotExists)).await?;
        Ok(StoredPrediction { record, prediction: object })
    }

    /// The newest stored candles for a prediction: the user's dataset, else the platform's system dataset.
    async fn stored_candles(&self, user: Uuid, symbol: &str, tf: Timeframe) -> MlResult<(CandlesHolder, Value)> {
        for (owner, kind) in [(Owner::User(user), "user_dataset"), (Owner::System, "system_dataset")] {
            if let Some(tail) = self.datasets.tail(owner, symbol, tf, PREDICT_HISTORY_BARS).await? {
                let source = json!({"kind": kind, "origin": tail.record.source, "last_bar": tail.record.last,
                                    "dataset_bars": tail.record.bars});
                return Ok((CandlesHolder::Shared(tail), source));
            }
        }
        Err(MlError::Refused(format!(
            "No candles stored for {symbol} {}: upload them with POST /api/v1/ml/datasets or send candles with the request",
            tf_name(tf)
        )))
    }

    /// A model's predictions, newest first.
    pub async fn predictions(
        &self,
        user: Uuid,
        id: Uuid,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> MlResult<(Vec<StoredPrediction>, Option<Cursor>)> {
        self.get_model(user, id).await?;
        let now = self.clock.epoch_seconds();
        let page = self
            .store
            .query(
                Query::partition(crate::keys::user_pk(user))
                    .sk_prefix(prediction_prefix(id))
                    .descending()
                    .limit(limit)
                    .after(cursor),
            )
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items.iter().filter(|i| !i.is_expired(now)) {
            let record: PredictionRecord = item.to_record()?;
            let prediction = serde_json::from_str(&record.prediction).unwrap_or(Value::Null);
            out.push(StoredPrediction { record, prediction });
        }
        Ok((out, page.cursor))
    }

    pub(crate) async fn latest_prediction(&self, user: Uuid, model: Uuid) -> MlResult<Option<PredictionRecord>> {
        let page = self
            .store
            .query(
                Query::partition(crate::keys::user_pk(user)).sk_prefix(prediction_prefix(model)).descending().limit(5),
            )
            .await?;
        let now = self.clock.epoch_seconds();
        Ok(page.items.iter().find(|i| !i.is_expired(now)).map(|i| i.to_record()).transpose()?)
    }

    /// Predictions of a model since `since` (at most 1,000 counted).
    pub(crate) async fn count_since(&self, user: Uuid, model: Uuid, since: DateTime<Utc>) -> MlResult<usize> {
        let floor =
            uuid::Builder::from_unix_timestamp_millis(since.timestamp_millis().max(0) as u64, &[0; 10]).into_uuid();
        let mut n = 0;
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(
                    Query::partition(crate::keys::user_pk(user))
                        .sk(crate::ports::SkCondition::Between(
                            format!("{}{floor}", prediction_prefix(model)),
                            format!("{}~", prediction_prefix(model)),
                        ))
                        .limit(500)
                        .after(cursor),
                )
                .await?;
            n += page.items.len();
            cursor = page.cursor;
            if cursor.is_none() || n >= 1_000 {
                return Ok(n.min(1_000));
            }
        }
    }

    // ------------------------------------------------------------------ execute

    /// `POST /ml/models/{id}/execute`: places the prediction's order through the order use case, with every
    /// check it makes (connector online, limits reserved atomically, margin, price sanity, SL/TP sides,
    /// verified e-mail) and an idempotency key derived from the prediction, so a prediction is executed once.
    pub async fn execute(
        &self,
        user: &CurrentUser,
        id: Uuid,
        input: ExecuteInput,
    ) -> MlResult<(Placed, StoredPrediction)> {
        let orders =
            self.orders.as_ref().ok_or_else(|| MlError::Busy("Trading is not available in this process".into()))?;
        self.get_model(user.id, id).await?;
        let item = self
            .store
            .get(&prediction_key(user.id, id, input.prediction_id))
            .await?
            .filter(|i| !i.is_expired(self.clock.epoch_seconds()))
            .ok_or_else(|| MlError::NotFound("Prediction not found".into()))?;
        let record: PredictionRecord = item.to_record()?;
        let prediction: Value = serde_json::from_str(&record.prediction).unwrap_or(Value::Null);
        let req = prediction_order(&record, &prediction, input.lot_size, input.connection_id, SOURCE_ML)?;
        let body = json!({"prediction_id": input.prediction_id, "lot_size": input.lot_size.normalize().to_string(),
                          "connection_id": input.connection_id});
        let idem = IdempotencyKey::new(
            &format!("ml-exec:{}", input.prediction_id.simple()),
            &format!("POST /ml/models/{id}/execute"),
            &body,
        )?;
        let reply = orders.place(user, req, Some(idem)).await?;
        if let Some(order_id) = order_id_of(&reply)
            && record.executed_order_id.is_none()
        {
            let update = Update::new().set("executed_order_id", order_id.to_string());
            if let Err(e) = self
                .store
                .update(&prediction_key(user.id, id, input.prediction_id), update, Some(Condition::Exists))
                .await
            {
                warn!(error = %e, "could not record the executed order on the prediction");
            }
        }
        Ok((reply, StoredPrediction { record, prediction }))
    }
}

/// Candles for a prediction: sent with the request, or a stored tail shared with the tail cache.
enum CandlesHolder {
    Owned(CandleSeries),
    Shared(crate::ml::datasets::Tail),
}

/// A prediction on a cached tail: its feature row is computed once per dataset revision, so a warm prediction
/// is the model alone.
pub fn predict_tail(
    artefact: &nusatrade_ml::Artefact,
    tail: &crate::ml::datasets::Tail,
) -> Result<nusatrade_ml::Prediction, PredictError> {
    use nusatrade_ml::features::{STABLE_HISTORY_BARS, WARMUP_BARS};
    let (candles, row) = tail.last_row();
    let (Some(last), Some(row), true) = (candles.last(), row, candles.len() > WARMUP_BARS) else {
        return Err(PredictError::NotEnoughBars {
            got: candles.len(),
            needed: WARMUP_BARS + 1,
            recommended: STABLE_HISTORY_BARS,
        });
    };
    nusatrade_ml::predict::predict_row(artefact, row, last, candles.len(), &artefact.header.signal)
}

/// `nusatrade_ml::predict` over a slice of candles (the stored tail is shared, not re-validated: it was validated
/// when written): at most the newest `4 × STABLE_HISTORY_BARS` bars, the feature row of the last one, the decision
/// with the artefact's own signal settings.
pub fn predict_candles(
    artefact: &nusatrade_ml::Artefact,
    candles: &[nusatrade_ml::Candle],
) -> Result<nusatrade_ml::Prediction, PredictError> {
    use nusatrade_ml::features::{STABLE_HISTORY_BARS, WARMUP_BARS, last_row};
    let candles = &candles[candles.len().saturating_sub(4 * STABLE_HISTORY_BARS)..];
    let (Some(last), true) = (candles.last(), candles.len() > WARMUP_BARS) else {
        return Err(PredictError::NotEnoughBars {
            got: candles.len(),
            needed: WARMUP_BARS + 1,
            recommended: STABLE_HISTORY_BARS,
        });
    };
    let row = last_row(candles).expect("non-empty");
    nusatrade_ml::predict::predict_row(artefact, &row, last, candles.len(), &artefact.header.signal)
}

/// The order a stored prediction asks for: BUY/SELL (HOLD is refused: "Cannot execute HOLD signal"), the lot checked
/// against the instrument, the entry price and SL/TP from the prediction (rounded to the instrument, on the right
/// sides). `execute` and the auto-trading cycle place it through `OrderService::place`.
pub fn prediction_order(
    record: &PredictionRecord,
    prediction: &Value,
    lot_size: Decimal,
    connection_id: Option<Uuid>,
    source: &'static str,
) -> MlResult<PlaceOrder> {
    let side = match record.direction.as_str() {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(MlError::Refused("Cannot execute HOLD signal".into())),
    };
    let instrument = nusatrade_domain::instrument::lookup(&record.symbol)
        .map_err(|_| MlError::Refused(format!("{} is not a tradable symbol", record.symbol)))?;
    let lots = instrument.validate_lots(lot_size).map_err(|e| {
        use nusatrade_domain::instrument::VolumeError as V;
        MlError::Refused(match e {
            V::NotPositive | V::BelowMinimum { .. } => {
                format!("Lot size must be at least {}", instrument.min_volume.normalize())
            }
            V::AboveMaximum { max, .. } => format!("Lot size cannot exceed {}", max.normalize()),
            V::NotOnStep { step, .. } => format!("Lot size must be in {} increments", step.normalize()),
        })
    })?;
    let price_of = |field: &str| -> Option<Decimal> {
        prediction.get(field).and_then(Value::as_f64).and_then(Decimal::from_f64).map(|d| instrument.round_price(d))
    };
    let price = price_of("entry_price")
        .filter(|p| *p > Decimal::ZERO)
        .ok_or_else(|| MlError::Refused("The prediction has no entry price".into()))?;
    let (stop_loss, take_profit) = (price_of("stop_loss"), price_of("take_profit"));
    validate_stops(side, price, stop_loss, take_profit).map_err(|e| MlError::Refused(e.to_string()))?;
    Ok(PlaceOrder {
        instrument,
        side,
        lots,
        price,
        stop_loss,
        take_profit,
        broker_connection_id: connection_id,
        trailing_stop: None,
        source,
    })
}

/// The order id of a `place` outcome (`trade.id`).
pub fn order_id_of(reply: &Placed) -> Option<Uuid> {
    reply.body.pointer("/trade/id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

/// The levels of a prediction whose model references a strategy: its risk management decides the stop loss and take
/// profit from the entry and the ATR, exactly as the backtest engine places them.
fn apply_strategy_risk(p: &mut nusatrade_ml::Prediction, linked: &super::LinkedStrategy, symbol: &str) {
    let long = match p.direction {
        Direction::Buy => true,
        Direction::Sell => false,
        Direction::Hold => return,
    };
    let instrument = nusatrade_domain::instrument::lookup(symbol).ok();
    if let Some((sl, tp)) =
        nusatrade_backtest::engine::levels(&linked.risk, instrument, long, p.entry_price, Some(p.atr))
    {
        p.stop_loss = sl;
        p.take_profit = tp;
        p.risk_reward_ratio = match (sl, tp) {
            (Some(sl), Some(tp)) if (p.entry_price - sl).abs() > 0.0 => {
                Some(((tp - p.entry_price).abs() / (p.entry_price - sl).abs() * 100.0).round() / 100.0)
            }
            _ => None,
        };
    }
}
