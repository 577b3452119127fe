//! Activation (one active model per symbol and user) and the dashboard's active bots.

use chrono::NaiveTime;
use tracing::info;
use uuid::Uuid;

use super::{ActiveBot, MAX_ATTEMPTS, MlService, backoff, store_ser};
use crate::ml::error::{MlError, MlResult};
use crate::ml::store::*;
use crate::ports::{Condition, Item, StoreError, TxOp, Update, Value as StoreValue};

impl MlService {
    // ------------------------------------------------------------------ activation

    /// `POST /ml/models/{id}/activate`: makes this the user's active model for its symbol (the previous one is
    /// deactivated in the same transaction).
    pub async fn activate(&self, user: Uuid, id: Uuid) -> MlResult<ModelRecord> {
        for attempt in 0..MAX_ATTEMPTS {
            let model = self.get_model(user, id).await?;
            if model.artefact.is_none() {
                return Err(MlError::Refused("Cannot activate untrained model".into()));
            }
            let lock_key = active_key(user, &model.symbol);
            let lock = self
                .store
                .get(&lock_key)
                .await?
                .and_then(|i| i.get_s("model_id").and_then(|s| Uuid::parse_str(s).ok()));
            let mine = TxOp::Update {
                key: model_key(user, id),
                update: Update::new().set("is_active", true),
                condition: Some(
                    Condition::Exists
                        .and(Condition::eq("symbol", model.symbol.as_str()))
                        .and(Condition::ne("artefact", StoreValue::Null)),
                ),
            };
            let now = store_ser(&self.clock.now())?;
            let ops = match lock {
                Some(m) if m == id => {
                    if model.is_active {
                        self.index_active(user, &model.symbol, id).await?;
                        return Ok(model);
                    }
                    vec![
                        TxOp::ConditionCheck { key: lock_key, condition: Condition::eq("model_id", id.to_string()) },
                        mine,
                    ]
                }
                Some(other) => {
                    let mut ops = vec![TxOp::Update {
                        key: lock_key,
                        update: Update::new()
                            .set("model_id", id.to_string())
                            .set("activated_at", now)
                            .set("GSI1PK", ACTIVE_INDEX_PK)
                            .set("GSI1SK", active_index_sk(user, &model.symbol)),
                        condition: Some(Condition::eq("model_id", other.to_string())),
                    }];
                    if self.store.get(&model_key(user, other)).await?.is_some() {
                        ops.push(TxOp::Update {
                            key: model_key(user, other),
                            update: Update::new().set("is_active", false),
                            condition: Some(Condition::Exists),
                        });
                    }
                    ops.push(mine);
                    ops
                }
                None => vec![
                    TxOp::Put {
                        item: Item::new(&lock_key)
                            .with("model_id", id.to_string())
                            .with("symbol", model.symbol.as_str())
                            .with("activated_at", now)
                            .with("GSI1PK", ACTIVE_INDEX_PK)
                            .with("GSI1SK", active_index_sk(user, &model.symbol)),
                        condition: Some(Condition::NotExists),
                    },
                    mine,
                ],
            };
            match self.store.transact_write(ops).await {
                Ok(()) => {
                    info!(user = %user, model = %id, symbol = %model.symbol, "ml model activated");
                    return self.get_model(user, id).await;
                }
                Err(StoreError::TransactionCanceled(_)) | Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MlError::Busy("The model store is busy, please retry".into()))
    }

    /// Puts an `ACTIVE#<SYMBOL>` item written before the auto-trading index existed into it (activating an
    /// active model again does it).
    async fn index_active(&self, user: Uuid, symbol: &str, id: Uuid) -> MlResult<()> {
        let key = active_key(user, symbol);
        if let Some(item) = self.store.get(&key).await?
            && item.get_s("GSI1PK").is_none()
        {
            let update = Update::new().set("GSI1PK", ACTIVE_INDEX_PK).set("GSI1SK", active_index_sk(user, symbol));
            match self.store.update(&key, update, Some(Condition::eq("model_id", id.to_string()))).await {
                Ok(_) => {}
                Err(e) if e.is_condition_failure() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `POST /ml/models/{id}/deactivate`.
    pub async fn deactivate(&self, user: Uuid, id: Uuid) -> MlResult<ModelRecord> {
        for attempt in 0..MAX_ATTEMPTS {
            let model = self.get_model(user, id).await?;
            let lock_key = active_key(user, &model.symbol);
            let holds =
                self.store.get(&lock_key).await?.is_some_and(|i| i.get_s("model_id") == Some(id.to_string().as_str()));
            let flag = TxOp::Update {
                key: model_key(user, id),
                update: Update::new().set("is_active", false),
                condition: Some(Condition::Exists),
            };
            let result = if holds {
                let ops = vec![
                    TxOp::Delete { key: lock_key, condition: Some(Condition::eq("model_id", id.to_string())) },
                    flag,
                ];
                self.store.transact_write(ops).await
            } else if model.is_active {
                self.store.transact_write(vec![flag]).await
            } else {
                return Ok(model);
            };
            match result {
                Ok(()) => return self.get_model(user, id).await,
                Err(StoreError::TransactionCanceled(_)) | Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MlError::Busy("The model store is busy, please retry".into()))
    }

    /// `GET /ml/dashboard/active-bots`: active models with their last prediction and today's (UTC) count.
    pub async fn active_bots(&self, user: Uuid) -> MlResult<Vec<ActiveBot>> {
        let today = self.clock.now().date_naive().and_time(NaiveTime::MIN).and_utc();
        let mut out = Vec::new();
        for model in self.all_models(user).await?.into_iter().filter(|m| m.is_active) {
            let last_prediction = self.latest_prediction(user, model.id).await?;
            let today_signals = self.count_since(user, model.id, today).await?;
            out.push(ActiveBot { model, last_prediction, today_signals });
        }
        Ok(out)
    }
}
