//! Handlers of `/strategies/*` (contract §2.5) and the legacy `/backtest/strategies/*` (§2.7).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nusatrade_backtest::strategy::{self as spec, RiskManagement, StrategyParameter, StrategyRule, parse_timeframe};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::{legacy_view, strategy_view, template_view};
use super::{BacktestState, path_id};
use crate::auth::CurrentUser;
use crate::backtest::runs::MAX_QUICK_DAYS;
use crate::backtest::store::StrategyRecord;
use crate::backtest::strategies::{self, StrategyInput, Template};
use crate::http::fields::instrument;
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError, optional_object};

/// Longest strategy name (the original's `varchar(255)`), in characters.
pub const MAX_NAME: usize = 255;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 5_000;
/// Longest `code`.
pub const MAX_CODE: usize = 20_000;
/// Longest `strategy_type` (`varchar(50)`).
pub const MAX_TYPE: usize = 50;
/// Most indicator names, and the longest one.
pub const MAX_INDICATORS: usize = 30;
pub const MAX_INDICATOR_NAME: usize = 50;
/// Largest legacy `config`, serialised.
pub const MAX_CONFIG_BYTES: usize = 8_192;

/// Body of `POST` / `PUT /strategies` (unknown keys are dropped, as the original's model dropped them).
#[derive(Debug, Default, Deserialize)]
pub struct StrategyBody {
    name: Option<String>,
    description: Option<String>,
    strategy_type: Option<String>,
    code: Option<String>,
    parameters: Option<Vec<StrategyParameter>>,
    indicators: Option<Vec<String>>,
    entry_rules: Option<Vec<StrategyRule>>,
    exit_rules: Option<Vec<StrategyRule>>,
    risk_management: Option<RiskManagement>,
}

fn too_long(field: &str, max: usize, input: &str) -> FieldError {
    FieldError::new(
        "string_too_long",
        &["body", field],
        format!("String should have at most {max} characters"),
        Value::from(input.chars().take(64).collect::<String>()),
    )
}

/// Checks lengths and the required name; `Ok` is the use case's input.
fn input_of(body: StrategyBody, creating: bool) -> ApiResult<StrategyInput> {
    let mut errors = Vec::new();
    let name = body.name.map(|n| n.trim().to_owned());
    match &name {
        None if creating => errors.push(FieldError::new("missing", &["body", "name"], "Field required", Value::Null)),
        Some(n) if n.is_empty() => errors.push(FieldError::new(
            "string_too_short",
            &["body", "name"],
            "String should have at least 1 character",
            Value::from(""),
        )),
        Some(n) if n.chars().count() > MAX_NAME => errors.push(too_long("name", MAX_NAME, n)),
        _ => {}
    }
    for (field, value, max) in [
        ("description", &body.description, MAX_DESCRIPTION),
        ("code", &body.code, MAX_CODE),
        ("strategy_type", &body.strategy_type, MAX_TYPE),
    ] {
        if let Some(v) = value.as_deref().filter(|v| v.chars().count() > max) {
            errors.push(too_long(field, max, v));
        }
    }
    if let Some(list) = &body.indicators {
        if list.len() > MAX_INDICATORS {
            errors.push(FieldError::new(
                "too_long",
                &["body", "indicators"],
                format!("List should have at most {MAX_INDICATORS} items"),
                Value::Null,
            ));
        }
        if let Some(long) = list.iter().find(|i| i.chars().count() > MAX_INDICATOR_NAME) {
            errors.push(too_long("indicators", MAX_INDICATOR_NAME, long));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Unprocessable(errors));
    }
    Ok(StrategyInput {
        name,
        description: body.description,
        strategy_type: body.strategy_type.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        code: body.code,
        parameters: body.parameters,
        indicators: body.indicators,
        entry_rules: body.entry_rules,
        exit_rules: body.exit_rules,
        risk_management: body.risk_management,
        config: None,
        is_public: None,
    })
}

pub(super) async fn list(user: CurrentUser, State(s): State<BacktestState>) -> ApiResult<Response> {
    let list = s.backtests.strategies.list(user.id).await?;
    Ok(axum::Json(list.iter().map(strategy_view).collect::<Vec<_>>()).into_response())
}

pub(super) async fn create(
    user: CurrentUser,
    State(s): State<BacktestState>,
    ApiJson(body): ApiJson<StrategyBody>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.create(user.id, input_of(body, true)?).await?;
    Ok((StatusCode::CREATED, axum::Json(strategy_view(&record))).into_response())
}

pub(super) async fn get_one(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.get(user.id, path_id(&id, "strategy")?).await?;
    Ok(axum::Json(strategy_view(&record)).into_response())
}

pub(super) async fn update(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StrategyBody>,
) -> ApiResult<Response> {
    let id = path_id(&id, "strategy")?;
    let mut input = input_of(body, false)?;
    input.strategy_type = None; // not updatable through this route (the original's model has no such field)
    let record = s.backtests.strategies.update(user.id, id, input).await?;
    Ok(axum::Json(strategy_view(&record)).into_response())
}

pub(super) async fn delete(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    s.backtests.strategies.delete(user.id, path_id(&raw, "strategy")?).await?;
    Ok(axum::Json(json!({"deleted": raw})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ToggleBody {
    is_active: bool,
}

pub(super) async fn toggle(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ToggleBody>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.set_active(user.id, path_id(&id, "strategy")?, body.is_active).await?;
    Ok(axum::Json(strategy_view(&record)).into_response())
}

fn validation_view(errors: Vec<String>) -> Response {
    axum::Json(json!({"valid": errors.is_empty(), "errors": errors})).into_response()
}

pub(super) async fn validate(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.get(user.id, path_id(&id, "strategy")?).await?;
    Ok(validation_view(strategies::validate(&record)))
}

/// `POST /strategies/validate`: validates an unsaved strategy body (the rule builder's live check).
pub(super) async fn validate_body(
    user: CurrentUser,
    State(_s): State<BacktestState>,
    ApiJson(body): ApiJson<StrategyBody>,
) -> ApiResult<Response> {
    let input = input_of(body, false)?;
    let mut record = StrategyRecord::draft(uuid::Uuid::nil(), user.id, chrono::Utc::now());
    strategies::apply(&mut record, input);
    Ok(validation_view(strategies::validate(&record)))
}

#[derive(Debug, Default, Deserialize)]
pub struct QuickBody {
    symbol: Option<String>,
    timeframe: Option<String>,
    days: Option<i64>,
}

pub(super) async fn quick_backtest(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let id = path_id(&id, "strategy")?;
    let body: QuickBody = serde_json::from_value(Value::Object(optional_object(&body)?)).map_err(|e| {
        ApiError::Unprocessable(vec![FieldError::new("value_error", &["body"], e.to_string(), Value::Null)])
    })?;
    let symbol = instrument(body.symbol.as_deref().unwrap_or("EURUSD").trim())?.symbol;
    let tf_raw = body.timeframe.as_deref().unwrap_or("H1");
    let tf = parse_timeframe(tf_raw).ok_or_else(|| timeframe_error(tf_raw))?;
    let days = body.days.unwrap_or(30);
    if !(1..=i64::from(MAX_QUICK_DAYS)).contains(&days) {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "less_than_equal",
            &["body", "days"],
            format!("days must be between 1 and {MAX_QUICK_DAYS}"),
            Value::from(days),
        )]));
    }
    let (metrics, _) = s.backtests.quick(user.id, id, symbol, tf, days as u32).await?;
    Ok(axum::Json(metrics).into_response())
}

/// 422 for a timeframe that is neither an MT5 name nor a common alias.
pub(super) fn timeframe_error(raw: &str) -> ApiError {
    ApiError::Unprocessable(vec![FieldError::new(
        "enum",
        &["body", "timeframe"],
        "timeframe must be one of M1, M5, M15, M30, H1, H4, D1, W1 (or 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w)",
        Value::from(raw.chars().take(32).collect::<String>()),
    )])
}

fn template_of(name: &str) -> ApiResult<Template> {
    match name {
        "ml-profitable" => Ok(Template::MlProfitable),
        "ml-profitable-eurusd" => Ok(Template::MlProfitableEurusd),
        _ => Err(ApiError::NotFound("Template not found".into())),
    }
}

pub(super) async fn template(_user: CurrentUser, Path(name): Path<String>) -> ApiResult<Response> {
    let (spec, config) = strategies::template_spec(template_of(&name)?);
    Ok(axum::Json(template_view(&spec, &config)).into_response())
}

pub(super) async fn clone_template(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.clone_template(user.id, template_of(&name)?).await?;
    Ok((StatusCode::CREATED, axum::Json(strategy_view(&record))).into_response())
}

// ------------------------------------------------------------------ legacy /backtest/strategies

#[derive(Debug, Default, Deserialize)]
pub struct LegacyQuery {
    include_public: Option<bool>,
}

pub(super) async fn legacy_list(
    user: CurrentUser,
    State(s): State<BacktestState>,
    ApiQuery(q): ApiQuery<LegacyQuery>,
) -> ApiResult<Response> {
    let list = s.backtests.strategies.list_with_public(user.id, q.include_public.unwrap_or(true)).await?;
    Ok(axum::Json(list.iter().map(legacy_view).collect::<Vec<_>>()).into_response())
}

/// Body of the legacy create and replace.
#[derive(Debug, Deserialize)]
pub struct LegacyBody {
    name: String,
    description: Option<String>,
    strategy_type: Option<String>,
    config: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    is_public: bool,
}

fn legacy_input(body: LegacyBody) -> ApiResult<StrategyInput> {
    let name = body.name.trim().to_owned();
    let strategy_type = body.strategy_type.unwrap_or_else(|| "ma_crossover".into()).trim().to_ascii_lowercase();
    let config = Value::Object(body.config.unwrap_or_default());
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(FieldError::new(
            "string_too_short",
            &["body", "name"],
            "String should have at least 1 character",
            Value::from(""),
        ));
    } else if name.chars().count() > MAX_NAME {
        errors.push(too_long("name", MAX_NAME, &name));
    }
    if let Some(d) = body.description.as_deref().filter(|d| d.chars().count() > MAX_DESCRIPTION) {
        errors.push(too_long("description", MAX_DESCRIPTION, d));
    }
    if config.to_string().len() > MAX_CONFIG_BYTES {
        errors.push(FieldError::new(
            "too_long",
            &["body", "config"],
            format!("config is larger than {MAX_CONFIG_BYTES} bytes"),
            Value::Null,
        ));
    } else if let Err(p) = spec::legacy_strategy(&strategy_type, &config) {
        errors.push(FieldError::new("strategy_invalid", &["body", "config"], p.to_string(), config.clone()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Unprocessable(errors));
    }
    Ok(StrategyInput {
        name: Some(name),
        description: body.description,
        strategy_type: Some(strategy_type),
        config: Some(config),
        is_public: Some(body.is_public),
        ..StrategyInput::default()
    })
}

pub(super) async fn legacy_create(
    user: CurrentUser,
    State(s): State<BacktestState>,
    ApiJson(body): ApiJson<LegacyBody>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.create(user.id, legacy_input(body)?).await?;
    Ok((StatusCode::CREATED, axum::Json(legacy_view(&record))).into_response())
}

pub(super) async fn legacy_get(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = s.backtests.strategies.get_visible(user.id, path_id(&id, "strategy")?).await?;
    Ok(axum::Json(legacy_view(&record)).into_response())
}

pub(super) async fn legacy_update(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LegacyBody>,
) -> ApiResult<Response> {
    let id = path_id(&id, "strategy")?;
    let record = s.backtests.strategies.update(user.id, id, legacy_input(body)?).await?;
    Ok(axum::Json(legacy_view(&record)).into_response())
}
