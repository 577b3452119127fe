//! The OpenAPI description of this group's routes ([`crate::http::openapi`]): one [`Op`] per mounted method and
//! path, next to the routes it describes.

use serde_json::{Value, json};

use crate::http::openapi::*;

const ML: &str = "ml";
const ML_MODELS: &str = "ml-models";

// ------------------------------------------------------------------ shared schemas

/// `M1` … `W1`.
fn timeframe() -> Value {
    json!({"type": "string", "enum": ["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1"]})
}

/// A loosely described JSON object.
fn any_object(description: &str) -> Value {
    json!({"type": "object", "description": description})
}

/// A string with a description.
fn described(mut schema: Value, description: &str) -> Value {
    if let Value::Object(m) = &mut schema {
        m.insert("description".into(), json!(description));
    }
    schema
}

/// A training job's progress (`training_progress` / `progress`), null when none was recorded.
fn progress() -> Value {
    nullable(record(json!({
        "stage": described(string(), "queued, loading, training, …, completed, failed"),
        "fraction": number(),
        "updated_at": nullable(datetime()),
        "attempt": integer(),
    })))
}

/// `ModelResponse` (`model_view`).
fn model() -> Value {
    record(json!({
        "id": uuid(),
        "name": string(),
        "model_type": described(
            string(),
            "The family: gradient_boosting, random_forest or logistic_regression",
        ),
        "symbol": string(),
        "timeframe": timeframe(),
        "strategy_id": nullable(uuid()),
        "strategy_name": described(nullable(string()), "Always null (no strategies on this platform)"),
        "is_active": boolean(),
        "is_pretrained": described(boolean(), "True for an imported default model"),
        "performance_metrics": described(
            nullable(json!({"type": "object"})),
            "The flat performance summary (accuracy, precision, recall, f1_score, win_rate, profit_factor, \
             total_trades, sharpe_ratio, max_drawdown, total_return, …), fractions; null until trained",
        ),
        "training_status": json!({"type": "string", "enum": ["idle", "training", "completed", "failed"]}),
        "training_error": nullable(string()),
        "training_started_at": nullable(datetime()),
        "training_completed_at": nullable(datetime()),
        "training_progress": progress(),
        "version": described(nullable(integer()), "The artefact version predictions use; null until trained"),
        "config": described(
            nullable(json!({"type": "object"})),
            "The validated training config (model, label, split, signal, backtest) with the auto-trading \
             knobs (confidence_threshold, max_trades_per_day, cooldown_minutes, lot_size)",
        ),
        "data_source": described(nullable(json!({"type": "object"})), "What the artefact was trained on"),
        "created_at": datetime(),
        "updated_at": datetime(),
    }))
}

/// The stored prediction object (§6.6 plus this backend's fields).
fn prediction_object() -> Value {
    let direction = json!({"type": "string", "enum": ["BUY", "SELL", "HOLD"]});
    described(
        nullable(object(
            json!({
                "direction": direction.clone(),
                "confidence": number(),
                "ml_signal": direction,
                "probabilities": object(
                    json!({"down": number(), "flat": number(), "up": number()}),
                    &["down", "up"],
                ),
                "should_trade": boolean(),
                "entry_price": number(),
                "stop_loss": nullable(number()),
                "take_profit": nullable(number()),
                "risk_reward_ratio": nullable(number()),
                "atr": nullable(number()),
                "current_indicators": any_object("Indicator snapshot (price, RSI(14), SMA(20), …), 5 decimals"),
                "generated_by": string(),
                "model_type": string(),
                "bar_time": datetime(),
                "history_bars": integer(),
                "strategy_validation": json!({"type": "object"}),
                "strategy_rules": nullable(json!({"type": "object"})),
                "trailing_stop": json!({"type": "object"}),
                "model_version": integer(),
                "candles": any_object("Where the candles came from (request, user_dataset, system_dataset)"),
                "timestamp": datetime(),
                "auto_trading": any_object("Present on the auto-trading cycle's predictions: the knobs it used"),
            }),
            &["direction", "confidence", "entry_price"],
        )),
        "The prediction (direction, confidence, probabilities, entry/SL/TP, indicators, …)",
    )
}

/// `PredictionResponse` (`prediction_view`).
fn prediction() -> Value {
    record(json!({
        "id": uuid(),
        "model_id": uuid(),
        "symbol": string(),
        "prediction": prediction_object(),
        "confidence": number(),
        "strategy_rules": described(nullable(json!({"type": "object"})), "Always null"),
        "executed_order_id": nullable(uuid()),
        "created_at": datetime(),
    }))
}

/// `dataset_view` properties.
fn dataset_properties() -> Value {
    json!({
        "symbol": string(),
        "timeframe": timeframe(),
        "bars": integer(),
        "first": datetime(),
        "last": datetime(),
        "size_bytes": integer(),
        "months": described(integer(), "Month chunks stored"),
        "source": json!({"type": "string", "enum": ["upload", "seed_file", "generated", "connector"]}),
        "revision": integer(),
        "updated_at": datetime(),
    })
}

const DATASET_FIELDS: &[&str] =
    &["symbol", "timeframe", "bars", "first", "last", "size_bytes", "months", "source", "revision", "updated_at"];

fn dataset() -> Value {
    object(dataset_properties(), DATASET_FIELDS)
}

/// `upload_view`: the dataset and what the merge did.
fn upload() -> Value {
    let mut props = dataset_properties();
    if let Value::Object(m) = &mut props {
        m.insert("received".into(), described(integer(), "Bars in the upload"));
        m.insert("added".into(), described(integer(), "New timestamps"));
        m.insert("replaced".into(), described(integer(), "Existing timestamps whose bar changed"));
        m.insert("unchanged".into(), described(integer(), "Existing timestamps with the same bar"));
        m.insert("months_written".into(), described(integer(), "Month chunks rewritten"));
    }
    let mut required = DATASET_FIELDS.to_vec();
    required.extend(["received", "added", "replaced", "unchanged", "months_written"]);
    object(props, &required)
}

const DEFAULT_FIELDS: &[&str] =
    &["model_path", "model_id", "symbol", "is_user_override", "win_rate", "profit_factor", "accuracy", "total_trades"];

/// `DefaultModelResponse` properties (`default_view`).
fn default_properties() -> Value {
    json!({
        "model_path": string(),
        "model_id": uuid(),
        "symbol": string(),
        "is_user_override": boolean(),
        "win_rate": described(nullable(number()), "Percent, one decimal (system default only; null otherwise)"),
        "profit_factor": nullable(number()),
        "accuracy": described(nullable(number()), "Percent, one decimal (system default only; null otherwise)"),
        "total_trades": nullable(integer()),
    })
}

fn default_model() -> Value {
    object(default_properties(), DEFAULT_FIELDS)
}

/// `file_view`.
fn model_file() -> Value {
    record(json!({
        "model_id": uuid(),
        "model_path": string(),
        "symbol": string(),
        "file_size": integer(),
        "created_at": datetime(),
        "metadata": any_object(
            "system_default, model_type, version and, for the system default, performance_metrics and \
             data_source; for the user's models name and current",
        ),
    }))
}

/// `bot_view`.
fn bot() -> Value {
    object(
        json!({
            "id": uuid(),
            "name": string(),
            "model_type": string(),
            "symbol": string(),
            "timeframe": timeframe(),
            "strategy_name": described(nullable(string()), "Always null"),
            "accuracy": described(nullable(number()), "Test accuracy (fraction; 0 before training)"),
            "last_prediction": nullable(object(
                json!({
                    "direction": string(),
                    "confidence": number(),
                    "entry_price": nullable(number()),
                    "created_at": datetime(),
                }),
                &["direction", "confidence", "entry_price", "created_at"],
            )),
            "today_signals": integer(),
            "is_active": boolean(),
        }),
        &[
            "id",
            "name",
            "model_type",
            "symbol",
            "timeframe",
            "strategy_name",
            "accuracy",
            "last_prediction",
            "today_signals",
            "is_active",
        ],
    )
}

/// `cycle_view`: a cycle's summary as the caller sees it.
fn cycle() -> Value {
    record(json!({
        "started_at": datetime(),
        "models_checked": integer(),
        "predictions_generated": integer(),
        "trades_executed": integer(),
        "errors": described(array(string()), "The caller's own error lines and the cycle's"),
        "completed_at": datetime(),
        "origin": json!({"type": "string", "enum": ["schedule", "trigger"]}),
        "run_id": uuid(),
    }))
}

/// `TradeOut` as the order use case answers it.
fn trade() -> Value {
    crate::trading::docs::trade_out()
}

/// The answer of `POST /ml/models/{id}/execute`.
fn execution() -> Value {
    object(
        json!({
            "success": described(boolean(), "True when the command was delivered to MT5"),
            "trade_id": nullable(uuid()),
            "prediction_id": uuid(),
            "direction": string(),
            "entry_price": nullable(number()),
            "stop_loss": nullable(number()),
            "take_profit": nullable(number()),
            "lot_size": nullable(number()),
            "mt5_execution": nullable(object(
                json!({
                    "success": boolean(),
                    "request_id": string(),
                    "connection_id": nullable(uuid()),
                    "error": string(),
                }),
                &[],
            )),
            "connection_id": nullable(uuid()),
            "trade": nullable(trade()),
        }),
        &[
            "success",
            "trade_id",
            "prediction_id",
            "direction",
            "entry_price",
            "stop_loss",
            "take_profit",
            "lot_size",
            "mt5_execution",
            "connection_id",
            "trade",
        ],
    )
}

// ------------------------------------------------------------------ request schemas

/// The body of `POST`/`PUT /ml/models`.
fn model_body() -> Value {
    object(
        json!({
            "name": json!({"type": "string", "minLength": 1, "maxLength": 100,
                "description": "1-100 characters (trimmed), no control characters"}),
            "model_type": json!({"type": "string",
                "enum": ["random_forest", "gradient_boosting", "xgboost", "gbdt", "logistic_regression", "logistic"],
                "description": "The family (case-insensitive; xgboost and gbdt are gradient_boosting, logistic is \
                    logistic_regression); absent or null: random_forest"}),
            "symbol": json!({"type": "string", "maxLength": 32, "examples": ["EURUSD"],
                "description": "A catalogue symbol (400 otherwise); absent or null: EURUSD"}),
            "timeframe": described(timeframe(), "Case-insensitive; absent or null: H1"),
            "strategy_id": described(
                nullable(uuid()),
                "A strategy id (a malformed one is 400; no strategies exist here, so any id is 404 Strategy not found)",
            ),
            "config": described(
                nullable(json!({"type": "object"})),
                "The training config, all optional: the sections hyperparameters (per family: iterations, \
                 max_depth, learning_rate, … for gradient_boosting; n_trees, max_depth, min_samples_split, … for \
                 random_forest; max_iterations, … for logistic_regression), label (kind, horizon, threshold), split \
                 (validation, test), signal (min_confidence, sl_atr_multiplier, tp_atr_multiplier, …) and backtest; \
                 the auto-trading knobs confidence_threshold (0-1), max_trades_per_day (1-100), cooldown_minutes \
                 (1-1440) and lot_size (0.01-100 in 0.01 steps); and the original's flat aliases n_estimators, \
                 max_depth, learning_rate, subsample, colsample_bytree, gamma, min_child_weight, min_samples_split, \
                 min_samples_leaf, random_state, max_iter (hyperparameters), lookahead, threshold (label), \
                 test_split (split), stop_loss_atr, profit_target_atr (signal). Unknown keys, a flat key the family \
                 has no use for, or one given with its structured twin are 422.",
            ),
        }),
        &["name"],
    )
}

/// A candle of a predict request.
fn candle() -> Value {
    let time = json!({"anyOf": [string(), integer()]});
    object(
        json!({
            "time": described(time.clone(), "ISO 8601 timestamp or unix seconds"),
            "timestamp": described(time, "Alias of time"),
            "open": number(),
            "high": number(),
            "low": number(),
            "close": number(),
            "volume": described(nullable(number()), "Absent or null: 0"),
        }),
        &["time", "open", "high", "low", "close"],
    )
}

/// An import from the connector (`import_view`).
fn history_import() -> Value {
    record(json!({
        "id": uuid(),
        "status": json!({"type": "string", "enum": ["running", "completed", "failed"]}),
        "symbol": string(),
        "timeframe": timeframe(),
        "start": datetime(),
        "end": datetime(),
        "pages": integer(),
        "pages_done": integer(),
        "bars_received": integer(),
        "bars_added": described(integer(), "Bars new to the dataset"),
        "connection_id": uuid(),
        "error": described(nullable(string()), "Why a failed import stopped (POST the same request to resume)"),
        "created_at": datetime(),
        "updated_at": datetime(),
        "requested_at": described(nullable(datetime()), "When the page it waits for was last asked for"),
        "status_url": string(),
    }))
}

fn scope() -> Value {
    json!({"type": "string", "enum": ["user", "system"]})
}

const SCOPE: &str = "user (the caller's datasets, default) or system (the platform's; admins only, 403 otherwise)";

/// This group's operations.
pub fn operations() -> Vec<Op> {
    vec![
        // ---------------------------------------------------------------- datasets
        Op::get("/api/v1/ml/datasets", ML, "List candle datasets")
            .query("scope", scope(), SCOPE)
            .ok(array(dataset())),
        Op::post("/api/v1/ml/datasets", ML, "Upload candles (CSV) into a dataset")
            .describe(
                "The request body is CSV text (read as raw bytes whatever its Content-Type; at most 4 MiB and \
                 100,000 rows): a `time,open,high,low,close[,volume]` header (any column order, names \
                 case-insensitive) or the backtesting.py layout (`,Open,High,Low,Close,Volume`, timestamp in the \
                 unnamed first column). The upload is validated as a whole (increasing timestamps, high/low \
                 consistent, finite positive prices; 422 names the line) and merged by time into the stored \
                 dataset of the symbol and timeframe (a bar at an existing timestamp replaces it).",
            )
            .required_query("symbol", json!({"type": "string", "maxLength": 32, "examples": ["EURUSD"]}), "A catalogue symbol")
            .required_query("timeframe", timeframe(), "Bar timeframe (case-insensitive)")
            .query("scope", scope(), SCOPE)
            .created(upload()),
        Op::delete("/api/v1/ml/datasets/{symbol}/{timeframe}", ML, "Delete a candle dataset")
            .describe("`symbol`: a catalogue symbol (400 otherwise); `timeframe`: M1 … W1 (422 otherwise).")
            .query("scope", scope(), SCOPE)
            .ok(record(json!({"deleted": described(string(), "SYMBOL/TF, e.g. EURUSD/H1")}))),
        Op::get("/api/v1/ml/datasets/{symbol}/{timeframe}/candles", ML, "The newest candles of a dataset")
            .describe(
                "The newest `limit` bars (default 300) of the caller's dataset of the symbol and timeframe, oldest \
                 first — what the dashboard's candle chart draws. `symbol`: a catalogue symbol (400 otherwise); \
                 `timeframe`: M1 … W1 (422 otherwise); 404 when there is no such dataset.",
            )
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 2000}), "Bars (default 300)")
            .query("scope", scope(), SCOPE)
            .ok(object(
                json!({
                    "symbol": string(),
                    "timeframe": string(),
                    "source": string(),
                    "bars": described(integer(), "Bars in the whole dataset"),
                    "revision": integer(),
                    "candles": array(object(
                        json!({
                            "time": datetime(),
                            "open": number(),
                            "high": number(),
                            "low": number(),
                            "close": number(),
                            "volume": number(),
                        }),
                        &["time", "open", "high", "low", "close", "volume"],
                    )),
                }),
                &["symbol", "timeframe", "candles"],
            )),
        Op::post("/api/v1/ml/datasets/from-connector", ML, "Import candles from the caller's MT5 connector")
            .describe(
                "Asks the caller's connector (the one on `connection_id`, or the one online) for the OHLC history of \
                 the symbol and timeframe with bar open times `start <= t < end`, and merges it into the caller's \
                 dataset of that symbol and timeframe (the one CSV uploads write and training, predictions, the AI \
                 analysis and backtests read). Answers 202 at once with the import; the connector answers page by \
                 page (at most 400 bars each) over its WebSocket: poll `status_url`. The import's id follows from the \
                 request, so the same request is the same import: repeated while it runs or after it failed, it \
                 resumes at the page it waits for; once completed it is answered as it stands. 400: `end` not after \
                 `start`, `end` in the future, `start` before 2000-01-01, or more than 50,000 bars. 409: the \
                 connector does not state the `history_candles` capability (the original connector). 503: no \
                 connector online.",
            )
            .body(object(
                json!({
                    "symbol": json!({"type": "string", "maxLength": 32, "examples": ["EURUSD"]}),
                    "timeframe": timeframe(),
                    "start": described(datetime(), "First bar open time (inclusive), RFC 3339"),
                    "end": described(datetime(), "Last bar open time (exclusive), RFC 3339"),
                    "connection_id": described(nullable(uuid()), "The broker connection to ask (default: the one online)"),
                }),
                &["symbol", "timeframe", "start", "end"],
            ))
            .respond(202, "Import started (or resumed, or already completed)", Some(history_import())),
        Op::get("/api/v1/ml/datasets/imports/{id}", ML, "One import from the connector")
            .describe("`id`: the import's UUID (400 when malformed, 404 when unknown or another user's).")
            .ok(history_import()),
        // ---------------------------------------------------------------- models
        Op::get("/api/v1/ml/models", ML, "List the caller's models (oldest first)")
            .query("skip", json!({"type": "integer", "minimum": 0, "maximum": 100_000}), "Models to skip (default 0)")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1_000}), "Page size (default 20)")
            .ok(array(model())),
        Op::post("/api/v1/ml/models", ML, "Create a model")
            .describe("At most 100 models per user (400 beyond). The model starts `idle`: train it next.")
            .body(model_body())
            .created(model()),
        Op::post("/api/v1/ml/models/import-default/{symbol}", ML, "Import a system default model")
            .describe(
                "`symbol`: XAUUSD, EURUSD or BTCUSD (case-insensitive; 400 otherwise). One import per symbol (400 \
                 the second time); 503 while the default is still being trained.",
            )
            .created(model()),
        Op::get("/api/v1/ml/models/{id}", ML, "One model")
            .describe("`id`: a model UUID (400 when malformed, 404 when unknown or another user's).")
            .ok(model()),
        Op::put("/api/v1/ml/models/{id}", ML, "Replace a model's definition")
            .describe(
                "A full replacement with the body of the create call (absent fields take their defaults). Refused \
                 (400) while the model trains when the change affects training, and for a symbol change of an \
                 active model.",
            )
            .body(model_body())
            .ok(model()),
        Op::delete("/api/v1/ml/models/{id}", ML, "Delete a model, its predictions and artefacts")
            .ok(record(json!({"deleted": uuid()}))),
        Op::post("/api/v1/ml/models/{id}/train", ML, "Queue a training job")
            .describe(
                "Queues the job on the ml-train queue and answers 202 at once; poll the status URL. 400 for an \
                 imported default, a model already training, or bad dates (range at most 2 years).",
            )
            .optional_body(object(
                json!({
                    "start_date": described(
                        nullable(string()),
                        "Train on bars from this date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, optionally with an offset)",
                    ),
                    "end_date": described(nullable(string()), "Train on bars before this date (after start_date)"),
                    "test_split": json!({"anyOf": [{"type": "number", "minimum": 0.05, "maximum": 0.4},
                        {"type": "null"}], "description": "Test share, overriding the model's split config"}),
                }),
                &[],
            ))
            .respond(
                202,
                "Training queued",
                Some(record(json!({
                        "id": uuid(),
                        "status": json!({"type": "string", "enum": ["queued"]}),
                        "training_status": described(string(), "`training` (a queued job reports training)"),
                        "job_id": uuid(),
                        "message": string(),
                        "status_url": string(),
                        "training_completed_at": described(nullable(datetime()), "Always null here"),
                    }))),
            ),
        Op::get("/api/v1/ml/models/{id}/status", ML, "Training status, progress and metrics").ok(object(
            json!({
                "id": uuid(),
                "training_status": json!({"type": "string", "enum": ["idle", "training", "completed", "failed"]}),
                "training_error": nullable(string()),
                "training_started_at": nullable(datetime()),
                "training_completed_at": nullable(datetime()),
                "performance_metrics": nullable(json!({"type": "object"})),
                "file_path": described(nullable(string()), "The current artefact's path (as /ml-models lists it)"),
                "job_id": nullable(uuid()),
                "queued": boolean(),
                "progress": progress(),
                "version": nullable(integer()),
                "checksum": nullable(string()),
                "versions": array(object(
                    json!({"version": integer(), "checksum": string(), "size_bytes": integer(),
                        "trained_at": datetime()}),
                    &["version", "checksum", "size_bytes", "trained_at"],
                )),
                "metrics": described(nullable(json!({"type": "object"})), "The full training metrics"),
                "data_source": nullable(json!({"type": "object"})),
            }),
            &[
                "id",
                "training_status",
                "training_error",
                "training_started_at",
                "training_completed_at",
                "performance_metrics",
                "file_path",
                "job_id",
                "queued",
                "progress",
                "version",
                "checksum",
                "versions",
                "metrics",
                "data_source",
            ],
        )),
        Op::post("/api/v1/ml/models/{id}/predict", ML, "Predict with a trained model")
            .describe(
                "Uses the candles sent (at most 5,000, oldest first; body at most 1 MiB) or else the newest stored \
                 bars (the caller's dataset, else the platform's). 400 for an untrained model, no stored candles, \
                 or too few bars. The prediction is stored.",
            )
            .optional_body(object(
                json!({
                    "symbol": described(
                        nullable(json!({"type": "string", "pattern": "^\\s*[A-Za-z0-9]{3,10}\\s*$"})),
                        "A catalogue symbol overriding the model's (3-10 alphanumeric characters; 400 otherwise)",
                    ),
                    "candles": nullable(json!({"type": "array", "items": candle(), "maxItems": 5_000})),
                }),
                &[],
            ))
            .ok(prediction()),
        Op::get("/api/v1/ml/models/{id}/predictions", ML, "A model's predictions, newest first")
            .ok(array(prediction()))
            .paginated(200),
        Op::post("/api/v1/ml/models/{id}/activate", ML, "Activate a model for live trading")
            .describe("One active model per symbol: the previous one is deactivated. 400 for an untrained model.")
            .ok(record(json!({
                    "id": uuid(),
                    "status": json!({"type": "string", "enum": ["active"]}),
                    "is_active": boolean(),
                    "symbol": string(),
                    "message": string(),
                }))),
        Op::post("/api/v1/ml/models/{id}/deactivate", ML, "Deactivate a model").ok(record(json!({
                "id": uuid(),
                "status": json!({"type": "string", "enum": ["inactive"]}),
                "is_active": boolean(),
                "message": string(),
            }))),
        Op::post("/api/v1/ml/models/{id}/execute", ML, "Place a stored prediction's order")
            .describe(
                "Places the BUY/SELL order of one of the model's stored predictions through the order use case \
                 (same checks as a manual order; 400 for a HOLD signal). A prediction is executed once: a repeat \
                 answers as the first did (409 with different parameters). 200 when delivered to MT5, 202 when \
                 delivery is uncertain (the order is reconciled).",
            )
            .body(object(
                json!({
                    "prediction_id": uuid(),
                    "lot_size": json!({"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                        {"type": "null"}], "description": "Lots (default 0.1; a numeric string is accepted too); \
                        checked against the instrument's limits (400)"}),
                    "connection_id": described(
                        nullable(json!({"type": "string", "format": "uuid", "maxLength": 64})),
                        "The broker connection (400 when malformed)",
                    ),
                }),
                &["prediction_id"],
            ))
            .ok(execution())
            .respond(202, "Sent, but delivery to MT5 is uncertain (success false)", Some(execution())),
        // ---------------------------------------------------------------- dashboard and auto-trading
        Op::get("/api/v1/ml/dashboard/active-bots", ML, "The caller's active models with today's signals").ok(
            object(
                json!({"active_count": integer(), "bots": array(bot()), "total_signals_today": integer()}),
                &["active_count", "bots", "total_signals_today"],
            ),
        ),
        Op::post("/api/v1/ml/auto-trading/trigger", ML, "Run an auto-trading cycle now")
            .describe("The caller's active models go first. 400 when the caller has no active trained model.")
            .ok(object(
                json!({
                    "status": json!({"type": "string", "enum": ["completed", "skipped"]}),
                    "result": described(cycle(), "With status completed"),
                    "reason": described(string(), "With status skipped: already_running"),
                }),
                &["status"],
            ))
            .respond(400, "No active trained model", Some(reference("Error"))),
        Op::get("/api/v1/ml/auto-trading/status", ML, "Auto-trading: the last run, today's (UTC) counts, the config")
            .ok(object(
                json!({
                    "scheduler_running": boolean(),
                    "cycle_running": boolean(),
                    "interval_minutes": integer(),
                    "active_models": integer(),
                    "predictions_today": integer(),
                    "trades_today": integer(),
                    "last_run": nullable(datetime()),
                    "last_result": nullable(cycle()),
                    "config": object(
                        json!({
                            "default_confidence_threshold": number(),
                            "default_max_trades_per_day": integer(),
                            "default_cooldown_minutes": integer(),
                            "default_lot_size": number(),
                        }),
                        &[
                            "default_confidence_threshold",
                            "default_max_trades_per_day",
                            "default_cooldown_minutes",
                            "default_lot_size",
                        ],
                    ),
                    "models": array(record(json!({
                            "id": uuid(),
                            "name": string(),
                            "symbol": string(),
                            "predictions_today": integer(),
                            "trades_today": integer(),
                            "confidence_threshold": number(),
                            "max_trades_per_day": integer(),
                            "cooldown_minutes": integer(),
                            "lot_size": number(),
                        }))),
                }),
                &[
                    "scheduler_running",
                    "cycle_running",
                    "interval_minutes",
                    "active_models",
                    "predictions_today",
                    "trades_today",
                    "last_run",
                    "last_result",
                    "config",
                    "models",
                ],
            )),
        Op::get("/api/v1/ml/auto-trading/health", ML, "Auto-trading scheduler health (monitoring)").public().ok(object(
            json!({
                "status": json!({"type": "string", "enum": ["healthy", "stale"]}),
                "is_running": boolean(),
                "last_run": nullable(datetime()),
                "loaded_models_in_cache": integer(),
                "is_stale": boolean(),
                "stale_after_minutes": integer(),
                "checks": object(
                    json!({"scheduler_initialized": boolean(), "last_run_recent": boolean(), "not_stuck": boolean()}),
                    &["scheduler_initialized", "last_run_recent", "not_stuck"],
                ),
                "timestamp": datetime(),
            }),
            &[
                "status",
                "is_running",
                "last_run",
                "loaded_models_in_cache",
                "is_stale",
                "stale_after_minutes",
                "checks",
                "timestamp",
            ],
        )),
        // ---------------------------------------------------------------- ml-models
        Op::get("/api/v1/ml-models/models", ML_MODELS, "Model artefacts usable per default symbol")
            .describe("An object keyed by XAUUSD, EURUSD and BTCUSD: the system default's and the caller's artefacts, newest first.")
            .ok(object(
                json!({
                    "XAUUSD": array(model_file()),
                    "EURUSD": array(model_file()),
                    "BTCUSD": array(model_file()),
                }),
                &["XAUUSD", "EURUSD", "BTCUSD"],
            )),
        Op::get("/api/v1/ml-models/models/{symbol}", ML_MODELS, "Model artefacts usable for a symbol")
            .describe("`symbol`: a catalogue symbol (400 otherwise).")
            .ok(record(json!({
                    "symbol": string(),
                    "models": array(model_file()),
                    "system_default": nullable(default_model()),
                    "user_default": described(nullable(default_model()), "The effective default (override or system)"),
                }))),
        Op::get("/api/v1/ml-models/defaults", ML_MODELS, "The effective default model per default symbol")
            .describe("An object keyed by XAUUSD, EURUSD and BTCUSD; a symbol without a trained default is absent.")
            .ok(object(
                json!({"XAUUSD": default_model(), "EURUSD": default_model(), "BTCUSD": default_model()}),
                &[],
            )),
        Op::get("/api/v1/ml-models/defaults/{symbol}", ML_MODELS, "The effective default model of a symbol")
            .describe("`symbol`: a catalogue symbol (400 otherwise); 404 when it has no default.")
            .ok({
                let mut props = default_properties();
                if let Value::Object(m) = &mut props {
                    m.insert("data_source".into(), described(nullable(json!({"type": "object"})), "System default only"));
                    m.insert("version".into(), described(nullable(integer()), "System default only"));
                }
                object(props, DEFAULT_FIELDS)
            }),
        Op::post("/api/v1/ml-models/defaults/{symbol}", ML_MODELS, "Override the default model of a symbol")
            .describe(
                "`model_id` and `model_path` must name one of the caller's trained models of the symbol (or the \
                 system default, which removes the override) as /ml-models/models lists them; 404 otherwise.",
            )
            .body(record(json!({
                    "model_path": json!({"type": "string", "minLength": 1, "maxLength": 300}),
                    "model_id": json!({"type": "string", "minLength": 1, "maxLength": 300}),
                })))
            .ok(default_model()),
        Op::delete("/api/v1/ml-models/defaults/{symbol}", ML_MODELS, "Remove the caller's override of a symbol")
            .describe("404 when there is no override.")
            .ok(object(json!({"status": string(), "message": string()}), &["status", "message"])),
        Op::post("/api/v1/ml-models/defaults/{symbol}/retrain", ML_MODELS, "Retrain a system default model (admin)")
            .describe(
                "Admins only (403 otherwise). `symbol`: XAUUSD, EURUSD or BTCUSD (400 otherwise); 400 while it \
                 trains, 409 when the default changed meanwhile.",
            )
            .respond(
                202,
                "Training queued",
                Some(record(json!({
                        "symbol": string(),
                        "status": json!({"type": "string", "enum": ["queued"]}),
                        "job_id": nullable(uuid()),
                    }))),
            )
            .respond(409, "The default model changed meanwhile; retry", Some(reference("Error"))),
    ]
}
