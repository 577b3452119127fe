//! HTTP routes of the admin settings (contract §2.12; the `admin` Lambda and the local gateway). Every route needs
//! an admin ([`AdminUser`]: 401 without a valid bearer, 403 `Admin access required` for anyone else). The one
//! place an [`AdminError`] becomes a status and a `{"detail": …}` body.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/admin/settings?category=` | 200 `SettingResponse[]` (active settings, by key) |
//! | `GET /api/v1/admin/settings/{key}` | 200 `SettingResponse`; 404 `Setting '<key>' not found` |
//! | `PUT /api/v1/admin/settings/{key}` | 200 `{"message": "Setting updated successfully", "key"}` |
//! | `DELETE /api/v1/admin/settings/{key}` | 200 `{"message": "Setting deleted successfully"}`; 404 |
//! | `GET /api/v1/admin/audit?limit=` | 200 the settings changes, newest first |
//! | `POST /api/v1/admin/test-llm` | 200 `{success, message, details?: {provider, model, response_time_ms}}` |
//! | `POST /api/v1/admin/test-redis` | 200 `{success, message}` |

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::audit::{Actor, MAX_AUDIT_PAGE};
use super::error::AdminError;
use super::service::{AdminService, PutSetting, SettingView};
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError};
use crate::ports::SecretsError;
use crate::settings::Category;
use crate::wire::iso;

/// State of the admin routes.
#[derive(Clone)]
pub struct AdminState {
    pub auth: Authenticator,
    pub admin: AdminService,
}

impl FromRef<AdminState> for Authenticator {
    fn from_ref(s: &AdminState) -> Self {
        s.auth.clone()
    }
}

/// An authenticated caller whose role is `admin` (the original's check: 403 `Admin access required`).
pub struct AdminUser(pub CurrentUser);

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(ApiError::Forbidden("Admin access required".into()));
        }
        Ok(AdminUser(user))
    }
}

impl AdminUser {
    fn actor(&self) -> Actor {
        Actor { id: self.0.id, email: self.0.email.clone() }
    }
}

/// The routes under `/api/v1/admin`.
pub fn router(state: AdminState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/admin/settings", get(list))
        .route("/admin/settings/{key}", get(get_one).put(put_one).delete(delete_one))
        .route("/admin/audit", get(audit))
        .route("/admin/test-llm", post(test_llm))
        .route("/admin/test-redis", post(test_redis))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            e @ AdminError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AdminError::Invalid(errors) => ApiError::Unprocessable(
                errors
                    .into_iter()
                    .map(|i| {
                        FieldError::new(
                            i.kind,
                            &[i.location, i.field],
                            i.message,
                            i.input.map_or(Value::Null, Value::from),
                        )
                    })
                    .collect(),
            ),
            e @ AdminError::TooMany => ApiError::BadRequest(e.to_string()),
            e @ AdminError::Conflict => ApiError::Conflict(e.to_string()),
            e @ AdminError::Encryption(SecretsError::Unavailable(_)) => ApiError::ServiceUnavailable(e.to_string()),
            e @ AdminError::Encryption(_) => ApiError::Internal(e.to_string()),
            AdminError::Store(s) => s.into(),
        }
    }
}

fn setting_json(s: &SettingView) -> Value {
    json!({
        "key": s.key,
        "value": s.value,
        "category": s.category.as_str(),
        "is_encrypted": s.is_encrypted,
        "description": s.description,
        "updated_at": iso(s.updated_at),
        "updated_by": s.updated_by,
    })
}

/// The 422 entry of a bad category (pydantic's enum error).
fn bad_category(location: &str, input: &Value) -> FieldError {
    let expected: Vec<String> = Category::ALL.iter().map(|c| format!("'{}'", c.as_str())).collect();
    let (last, rest) = expected.split_last().expect("categories");
    let input = match input {
        Value::String(s) => Value::from(s.chars().take(64).collect::<String>()),
        other => other.clone(),
    };
    FieldError::new("enum", &[location, "category"], format!("Input should be {} or {last}", rest.join(", ")), input)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    category: Option<String>,
}

async fn list(_admin: AdminUser, State(s): State<AdminState>, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Response> {
    let category = match q.category.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(
            Category::parse(raw)
                .ok_or_else(|| ApiError::Unprocessable(vec![bad_category("query", &Value::from(raw))]))?,
        ),
    };
    let list = s.admin.list(category).await?;
    Ok(axum::Json(list.iter().map(setting_json).collect::<Vec<_>>()).into_response())
}

async fn get_one(_admin: AdminUser, State(s): State<AdminState>, Path(key): Path<String>) -> ApiResult<Response> {
    Ok(axum::Json(setting_json(&s.admin.get(&key).await?)).into_response())
}

/// The PUT body (`{value?: str, category: SettingCategory, is_encrypted = false, description?: str}`), read field by
/// field so every problem is one 422 entry; numbers and booleans are taken as their text. A value is never echoed
/// back (it may be a secret).
fn put_body(body: &Map<String, Value>) -> ApiResult<PutSetting> {
    let mut errors = Vec::new();
    let text = |field: &str, errors: &mut Vec<FieldError>, echo: bool| -> Option<String> {
        match body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if field == "value" => Some(n.to_string()),
            Some(Value::Bool(b)) if field == "value" => Some(b.to_string()),
            Some(other) => {
                let input = if echo { other.clone() } else { Value::Null };
                errors.push(FieldError::new("string_type", &["body", field], "Input should be a valid string", input));
                None
            }
        }
    };
    let value = text("value", &mut errors, false);
    let description = text("description", &mut errors, true);
    let category = match body.get("category") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("missing", &["body", "category"], "Field required", Value::Null));
            None
        }
        Some(v) => match v.as_str().and_then(Category::parse) {
            Some(c) => Some(c),
            None => {
                errors.push(bad_category("body", v));
                None
            }
        },
    };
    let is_encrypted = match body.get("is_encrypted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errors.push(FieldError::new(
                "bool_parsing",
                &["body", "is_encrypted"],
                "Input should be a valid boolean",
                other.clone(),
            ));
            false
        }
    };
    match category {
        Some(category) if errors.is_empty() => Ok(PutSetting { value, category, is_encrypted, description }),
        _ => Err(ApiError::Unprocessable(errors)),
    }
}

async fn put_one(
    admin: AdminUser,
    State(s): State<AdminState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let req = put_body(&body)?;
    s.admin.put(&admin.actor(), &key, req).await?;
    Ok(axum::Json(json!({"message": "Setting updated successfully", "key": key})).into_response())
}

async fn delete_one(admin: AdminUser, State(s): State<AdminState>, Path(key): Path<String>) -> ApiResult<Response> {
    s.admin.delete(&admin.actor(), &key).await?;
    Ok(axum::Json(json!({"message": "Setting deleted successfully"})).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
}

async fn audit(
    _admin: AdminUser,
    State(s): State<AdminState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "less_than_equal",
            &["query", "limit"],
            format!("limit must be between 1 and {MAX_AUDIT_PAGE}"),
            json!(limit),
        )]));
    }
    let entries = s.admin.audit(limit).await?;
    Ok(axum::Json(
        entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id.to_string(),
                    "at": e.at,
                    "actor_id": e.actor_id.to_string(),
                    "actor_email": e.actor_email,
                    "action": e.action,
                    "key": e.key,
                    "category": e.category.as_str(),
                    "is_encrypted": e.is_encrypted,
                })
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn test_llm(_admin: AdminUser, State(s): State<AdminState>) -> ApiResult<Response> {
    let c = s.admin.test_llm().await;
    let mut body = json!({"success": c.success, "message": c.message});
    if let Some(d) = c.details {
        body["details"] = json!({"provider": d.provider, "model": d.model, "response_time_ms": d.response_time_ms});
    }
    Ok(axum::Json(body).into_response())
}

async fn test_redis(_admin: AdminUser, State(s): State<AdminState>) -> ApiResult<Response> {
    let c = s.admin.test_redis().await;
    Ok(axum::Json(json!({"success": c.success, "message": c.message})).into_response())
}
