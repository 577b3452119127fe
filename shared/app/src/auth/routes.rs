//! HTTP routes of the `auth` function (contract §2.1, §2.2, §2.11 and the additions of issue #3).
//!
//! | route | auth | notes |
//! |---|---|---|
//! | `POST /api/v1/auth/register` | – | 201 `UserOut` + `access_token`, `refresh_token`, `token_type` |
//! | `POST /api/v1/auth/login` | – | `{access_token, refresh_token, user_id, token_type}` |
//! | `POST /api/v1/auth/login-2fa` | – | `{email, password, totp_token}` |
//! | `POST /api/v1/auth/logout` | optional | revokes the bearer's session and/or the given refresh token's |
//! | `POST /api/v1/auth/refresh` | – | `refresh_token` in the query (dashboard) or JSON body (connector) |
//! | `POST /api/v1/auth/forgot-password` | – | `email` in query or body; same answer for unknown e-mails |
//! | `POST /api/v1/auth/reset-password` | – | `token`, `new_password` in query or body |
//! | `POST /api/v1/auth/verify-email` | – | `token` in query or body |
//! | `POST /api/v1/auth/verify-email/resend` | bearer | |
//! | `GET /api/v1/auth/me`, `GET /api/v1/users/me` | bearer | `UserOut` |
//! | `PUT /api/v1/users/me` | bearer | `full_name` in query or body |
//! | `GET`/`PUT /api/v1/users/settings` | bearer | camelCase, string-typed |
//! | `GET /api/v1/users/activity?limit=&cursor=` | bearer | `{items, next_cursor}` |
//! | `GET /api/v1/auth/sessions` | bearer | bare array |
//! | `DELETE /api/v1/auth/sessions/{id}` | bearer | |
//! | `POST /api/v1/auth/sessions/revoke-others` | bearer | |
//! | `GET /api/v1/totp/status`, `POST /api/v1/totp/setup|verify|disable` | bearer | |
//! | `GET /verify-email`, `GET /reset-password` (+ `/links/links.js`, `/links/links.css`) | – | the mailed links' pages ([`super::pages`]) |

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use nusatrade_domain::auth as rules;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json_, json};
use uuid::Uuid;

use super::audit::RequestMeta;
use super::extract::{bearer_token, limit_requests};
use super::identity::CurrentUser;
use super::service::AuthService;
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError};
use crate::ports::Cursor;

/// Longest token accepted in a body or query (JWTs here are ~400 bytes, mailed tokens 43).
const MAX_TOKEN_INPUT: usize = 4096;
/// Longest string value of a settings key.
const MAX_SETTING_CHARS: usize = 100;

pub fn router(service: AuthService) -> Router {
    let limits = service.request_limits();
    let routes = Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/login-2fa", post(login_2fa))
        .route("/auth/logout", post(logout))
        .route("/auth/refresh", post(refresh))
        .route("/auth/forgot-password", post(forgot_password))
        .route("/auth/reset-password", post(reset_password))
        .route("/auth/verify-email", post(verify_email))
        .route("/auth/verify-email/resend", post(resend_verification))
        .route("/auth/me", get(me))
        .route("/auth/sessions", get(sessions))
        .route("/auth/sessions/revoke-others", post(revoke_others))
        .route("/auth/sessions/{id}", delete(revoke_session))
        .route("/users/me", get(me).put(update_me))
        .route("/users/settings", get(settings).put(update_settings))
        .route("/users/activity", get(activity))
        .route("/totp/status", get(totp_status))
        .route("/totp/setup", post(totp_setup))
        .route("/totp/verify", post(totp_verify))
        .route("/totp/disable", post(totp_disable))
        .with_state(service)
        .layer(from_fn_with_state(limits, limit_requests))
        .layer(map_response(private_answer));
    // The pages behind the mailed links live with the routes they call.
    Router::new().nest("/api/v1", routes).merge(super::pages::router())
}

/// Every answer of these routes: `Cache-Control: no-store` (tokens, profiles and sessions are never cached) and no
/// `X-Response-Time` (its timing would tell known e-mails from unknown ones).
async fn private_answer(mut r: Response) -> Response {
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    r.extensions_mut().insert(crate::http::layers::NoTimingHeader);
    r
}

// ------------------------------------------------------------------ input helpers

/// An optional JSON body: empty → `None`; otherwise it must parse (422 list if not). The original
/// took these values from the query string and its connector sends JSON, so both are accepted and
/// the content type is not required.
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::PayloadTooLarge),
            Err(rej) => return Err(ApiError::BadRequest(rej.body_text())),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        serde_json::from_slice(&bytes).map(|v| OptionalJson(Some(v))).map_err(|e| {
            let kind = if e.is_data() { "value_error" } else { "json_invalid" };
            ApiError::Unprocessable(vec![FieldError::new(kind, &["body"], e.to_string(), Json_::Null)])
        })
    }
}

fn missing(loc: &[&str]) -> FieldError {
    FieldError::new("missing", loc, "Field required", Json_::Null)
}

fn too_long(loc: &[&str], max: usize) -> FieldError {
    FieldError::new("string_too_long", loc, format!("String should have at most {max} characters"), Json_::Null)
}

/// The value from the query, else from the body; 422 (reported at the query location, as the
/// original did) when neither has it or it is too long.
fn pick(name: &str, query: Option<String>, body: Option<String>, max: usize) -> Result<String, FieldError> {
    let v = query.or(body).ok_or_else(|| missing(&["query", name]))?;
    if v.len() > max {
        return Err(too_long(&["query", name], max));
    }
    Ok(v)
}

fn unprocessable(errors: Vec<FieldError>) -> ApiError {
    ApiError::Unprocessable(errors)
}

fn email_field(raw: &str, loc: &[&str]) -> Result<String, FieldError> {
    rules::normalize_email(raw).map_err(|e| FieldError::new("value_error", loc, e.to_string(), json!(raw)))
}

fn password_field(pw: &str, loc: &[&str]) -> Result<(), FieldError> {
    if pw.len() > rules::PASSWORD_MAX_BYTES {
        return Err(too_long(loc, rules::PASSWORD_MAX_BYTES));
    }
    Ok(())
}

/// A password being chosen: the length cap, then the policy, as a 422 entry (`value_error`, the policy's message).
fn new_password_field(pw: &str, loc: &[&str]) -> Result<(), FieldError> {
    password_field(pw, loc)?;
    rules::check_password_policy(pw).map_err(|msg| FieldError::new("value_error", loc, msg, json!("********")))
}

fn collect(results: Vec<Result<(), FieldError>>) -> ApiResult<()> {
    let errors: Vec<FieldError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() { Ok(()) } else { Err(unprocessable(errors)) }
}

// ------------------------------------------------------------------ registration and login

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    password: String,
    #[serde(default)]
    full_name: Option<String>,
}

async fn register(
    State(s): State<AuthService>,
    meta: RequestMeta,
    ApiJson(b): ApiJson<RegisterBody>,
) -> ApiResult<Response> {
    let email = email_field(&b.email, &["body", "email"]);
    let name = match b.full_name.as_deref().map(rules::normalize_full_name) {
        None => Ok(None),
        Some(Ok(n)) => Ok(n),
        Some(Err(msg)) => Err(FieldError::new("string_too_long", &["body", "full_name"], msg, json!(b.full_name))),
    };
    let pw = new_password_field(&b.password, &["body", "password"]);
    collect(vec![email.clone().map(|_| ()), name.clone().map(|_| ()), pw])?;
    let (email, name) = (email.map_err(|e| unprocessable(vec![e]))?, name.map_err(|e| unprocessable(vec![e]))?);
    s.check_credential_limit(&meta).await?;
    let (user, pair) = s.register(&email, &b.password, name, &meta).await?;
    let mut body = serde_json::to_value(&user).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Json_::Object(m) = &mut body {
        m.insert("access_token".into(), json!(pair.access_token));
        m.insert("refresh_token".into(), json!(pair.refresh_token));
        m.insert("token_type".into(), json!("bearer"));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(State(s): State<AuthService>, meta: RequestMeta, ApiJson(b): ApiJson<LoginBody>) -> ApiResult<Response> {
    let email = email_field(&b.email, &["body", "email"]);
    collect(vec![email.clone().map(|_| ()), password_field(&b.password, &["body", "password"])])?;
    let email = email.map_err(|e| unprocessable(vec![e]))?;
    s.check_credential_limit(&meta).await?;
    Ok(Json(s.login(&email, &b.password, &meta).await?).into_response())
}

#[derive(Deserialize)]
struct Login2faBody {
    email: String,
    password: String,
    #[serde(default)]
    totp_token: Option<String>,
}

async fn login_2fa(
    State(s): State<AuthService>,
    meta: RequestMeta,
    ApiJson(b): ApiJson<Login2faBody>,
) -> ApiResult<Response> {
    let mut checks = vec![password_field(&b.password, &["body", "password"])];
    if b.email.len() > rules::EMAIL_MAX_LEN {
        checks.push(Err(too_long(&["body", "email"], rules::EMAIL_MAX_LEN)));
    }
    if let Some(t) = &b.totp_token
        && !rules::totp_code_has_valid_length(t)
    {
        checks.push(Err(FieldError::new(
            "string_too_short",
            &["body", "totp_token"],
            "String should have exactly 6 characters",
            json!(t),
        )));
    }
    collect(checks)?;
    // the original did not validate this e-mail: a malformed one is just an unknown account
    let email = rules::normalize_email(&b.email).unwrap_or_else(|_| b.email.trim().to_ascii_lowercase());
    s.check_credential_limit(&meta).await?;
    Ok(Json(s.login_2fa(&email, &b.password, b.totp_token.as_deref(), &meta).await?).into_response())
}

// ------------------------------------------------------------------ tokens

#[derive(Deserialize, Default)]
struct RefreshInput {
    #[serde(default)]
    refresh_token: Option<String>,
}

async fn refresh(
    State(s): State<AuthService>,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<RefreshInput>,
    OptionalJson(b): OptionalJson<RefreshInput>,
) -> ApiResult<Response> {
    let token = pick("refresh_token", q.refresh_token, b.and_then(|b| b.refresh_token), MAX_TOKEN_INPUT)
        .map_err(|e| unprocessable(vec![e]))?;
    Ok(Json(s.refresh(&token, &meta).await?).into_response())
}

async fn logout(
    State(s): State<AuthService>,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<RefreshInput>,
    OptionalJson(b): OptionalJson<RefreshInput>,
) -> ApiResult<Response> {
    let refresh = q.refresh_token.or(b.and_then(|b| b.refresh_token)).filter(|t| t.len() <= MAX_TOKEN_INPUT);
    Ok(Json(s.logout(bearer_token(&headers), refresh.as_deref(), &meta).await?).into_response())
}

// ------------------------------------------------------------------ password reset and verification

#[derive(Deserialize, Default)]
struct ForgotInput {
    #[serde(default)]
    email: Option<String>,
}

async fn forgot_password(
    State(s): State<AuthService>,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<ForgotInput>,
    OptionalJson(b): OptionalJson<ForgotInput>,
) -> ApiResult<Response> {
    let email =
        pick("email", q.email, b.and_then(|b| b.email), rules::EMAIL_MAX_LEN).map_err(|e| unprocessable(vec![e]))?;
    s.check_credential_limit(&meta).await?;
    Ok(Json(s.forgot_password(&email, &meta).await?).into_response())
}

#[derive(Deserialize, Default)]
struct ResetInput {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    new_password: Option<String>,
}

async fn reset_password(
    State(s): State<AuthService>,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<ResetInput>,
    OptionalJson(b): OptionalJson<ResetInput>,
) -> ApiResult<Response> {
    let b = b.unwrap_or_default();
    let token = pick("token", q.token, b.token, MAX_TOKEN_INPUT);
    let pw = pick("new_password", q.new_password, b.new_password, rules::PASSWORD_MAX_BYTES);
    collect(vec![token.clone().map(|_| ()), pw.clone().map(|_| ())])?;
    let (token, pw) = (token.map_err(|e| unprocessable(vec![e]))?, pw.map_err(|e| unprocessable(vec![e]))?);
    s.check_credential_limit(&meta).await?;
    Ok(Json(s.reset_password(&token, &pw, &meta).await?).into_response())
}

#[derive(Deserialize, Default)]
struct TokenInput {
    #[serde(default)]
    token: Option<String>,
}

async fn verify_email(
    State(s): State<AuthService>,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<TokenInput>,
    OptionalJson(b): OptionalJson<TokenInput>,
) -> ApiResult<Response> {
    let token = pick("token", q.token, b.and_then(|b| b.token), MAX_TOKEN_INPUT).map_err(|e| unprocessable(vec![e]))?;
    s.check_credential_limit(&meta).await?;
    Ok(Json(s.verify_email(&token, &meta).await?).into_response())
}

async fn resend_verification(State(s): State<AuthService>, user: CurrentUser) -> ApiResult<Response> {
    Ok(Json(s.resend_verification(&user).await?).into_response())
}

// ------------------------------------------------------------------ profile, settings, activity

async fn me(State(s): State<AuthService>, user: CurrentUser) -> ApiResult<Response> {
    Ok(Json(s.me(&user).await?).into_response())
}

#[derive(Deserialize, Default)]
struct ProfileInput {
    #[serde(default)]
    full_name: Option<String>,
}

async fn update_me(
    State(s): State<AuthService>,
    user: CurrentUser,
    meta: RequestMeta,
    ApiQuery(q): ApiQuery<ProfileInput>,
    OptionalJson(b): OptionalJson<ProfileInput>,
) -> ApiResult<Response> {
    let raw = q.full_name.or(b.and_then(|b| b.full_name));
    let name = match raw.as_deref().map(rules::normalize_full_name) {
        None => None,
        Some(Ok(n)) => n,
        Some(Err(msg)) => {
            return Err(unprocessable(vec![FieldError::new(
                "string_too_long",
                &["query", "full_name"],
                msg,
                json!(raw),
            )]));
        }
    };
    Ok(Json(s.update_me(&user, name, &meta).await?).into_response())
}

async fn settings(State(s): State<AuthService>, user: CurrentUser) -> ApiResult<Response> {
    Ok(Json(s.settings(&user).await?).into_response())
}

/// The settings the original accepted: strings (a JSON number is a 422) and three booleans.
/// Unknown keys are dropped.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    default_lot_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_lot_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_open_positions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_stop_loss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_take_profit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_per_trade: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    theme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_notifications: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trade_alerts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_summary: Option<bool>,
}

async fn update_settings(
    State(s): State<AuthService>,
    user: CurrentUser,
    ApiJson(b): ApiJson<SettingsBody>,
) -> ApiResult<Response> {
    let Ok(Json_::Object(patch)) = serde_json::to_value(&b) else {
        return Err(ApiError::Internal("settings do not serialise to an object".into()));
    };
    let errors: Vec<FieldError> = patch
        .iter()
        .filter(|(_, v)| v.as_str().is_some_and(|s| s.chars().count() > MAX_SETTING_CHARS))
        .map(|(k, _)| too_long(&["body", k], MAX_SETTING_CHARS))
        .collect();
    if !errors.is_empty() {
        return Err(unprocessable(errors));
    }
    let merged: Map<String, Json_> = s.update_settings(&user, patch).await?;
    Ok(Json(json!({ "message": "Settings updated successfully", "settings": merged })).into_response())
}

#[derive(Deserialize)]
struct ActivityQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn activity(
    State(s): State<AuthService>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(unprocessable(vec![FieldError::new(
            "less_than_equal",
            &["query", "limit"],
            "Input should be between 1 and 100",
            json!(limit),
        )]));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(Cursor::parse(c).map_err(|_| ApiError::BadRequest("Invalid pagination cursor".into()))?),
    };
    let (items, next) = s.activity(&user, limit, cursor).await?;
    Ok(Json(json!({ "items": items, "next_cursor": next.map(|c| c.to_string()) })).into_response())
}

// ------------------------------------------------------------------ sessions

async fn sessions(State(s): State<AuthService>, user: CurrentUser) -> ApiResult<Response> {
    Ok(Json(s.sessions(&user).await?).into_response())
}

async fn revoke_session(
    State(s): State<AuthService>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let sid = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest("Invalid session_id format. Must be a valid UUID.".into()))?;
    Ok(Json(s.revoke_session(&user, sid, &meta).await?).into_response())
}

async fn revoke_others(State(s): State<AuthService>, user: CurrentUser, meta: RequestMeta) -> ApiResult<Response> {
    Ok(Json(s.revoke_other_sessions(&user, &meta).await?).into_response())
}

// ------------------------------------------------------------------ TOTP

async fn totp_status(State(s): State<AuthService>, user: CurrentUser) -> ApiResult<Response> {
    Ok(Json(s.totp_status(&user).await?).into_response())
}

async fn totp_setup(State(s): State<AuthService>, user: CurrentUser, meta: RequestMeta) -> ApiResult<Response> {
    Ok(Json(s.totp_setup(&user, &meta).await?).into_response())
}

fn code_field(code: &str, loc: &[&str]) -> ApiResult<()> {
    if rules::totp_code_has_valid_length(code) {
        Ok(())
    } else {
        Err(unprocessable(vec![FieldError::new(
            "string_too_short",
            loc,
            "String should have exactly 6 characters",
            json!(code.chars().take(16).collect::<String>()),
        )]))
    }
}

#[derive(Deserialize)]
struct VerifyBody {
    token: String,
}

async fn totp_verify(
    State(s): State<AuthService>,
    user: CurrentUser,
    meta: RequestMeta,
    ApiJson(b): ApiJson<VerifyBody>,
) -> ApiResult<Response> {
    code_field(&b.token, &["body", "token"])?;
    Ok(Json(s.totp_verify(&user, &b.token, &meta).await?).into_response())
}

#[derive(Deserialize)]
struct DisableBody {
    password: String,
    totp_token: String,
}

async fn totp_disable(
    State(s): State<AuthService>,
    user: CurrentUser,
    meta: RequestMeta,
    ApiJson(b): ApiJson<DisableBody>,
) -> ApiResult<Response> {
    code_field(&b.totp_token, &["body", "totp_token"])?;
    password_field(&b.password, &["body", "password"]).map_err(|e| unprocessable(vec![e]))?;
    Ok(Json(s.totp_disable(&user, &b.password, &b.totp_token, &meta).await?).into_response())
}
