//! The OpenAPI description of this group's routes ([`crate::http::openapi`]): one [`Op`] per mounted method and
//! path, next to the routes it describes.

use nusatrade_domain::auth as rules;
use serde_json::{Value, json};

use super::pages::{RESET_PASSWORD_PATH, SCRIPT_PATH, STYLE_PATH, VERIFY_EMAIL_PATH};
use crate::http::openapi::*;

/// Longest token accepted in a body or query (`routes::MAX_TOKEN_INPUT`, bytes).
const MAX_TOKEN_INPUT: usize = 4096;
/// Longest string value of a settings key (`routes::MAX_SETTING_CHARS`).
const MAX_SETTING_CHARS: usize = 100;
/// Longest pagination cursor (`ports::MAX_CURSOR_LEN`).
const MAX_CURSOR_LEN: usize = 4096;

/// The whitespace `str::trim` removes (Unicode `White_Space`), as a regex character class body.
const TRIMMED: &str = r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

// ------------------------------------------------------------------ request schemas

/// An e-mail the server validates (`rules::normalize_email`: dot-atom local part, a dotted domain).
fn email() -> Value {
    json!({"type": "string", "format": "email", "maxLength": rules::EMAIL_MAX_LEN})
}

/// An e-mail the server only length-checks (bytes).
fn loose_email() -> Value {
    json!({"type": "string", "maxLength": rules::EMAIL_MAX_LEN,
        "description": "Not validated as an address: a malformed one is treated as an unknown account"})
}

/// A password presented for checking (login, 2FA disable): only the hashing input is bounded.
fn password() -> Value {
    json!({"type": "string", "maxLength": rules::PASSWORD_MAX_BYTES,
        "description": "At most 1024 bytes (UTF-8)"})
}

/// A password being chosen (register, reset): the policy.
fn new_password() -> Value {
    json!({"type": "string", "minLength": rules::PASSWORD_MIN_CHARS, "maxLength": rules::PASSWORD_MAX_CHARS,
        "description": "8 to 128 characters with at least one uppercase letter, one lowercase letter, one digit \
            and one of !@#$%^&*()_+-=[]{}|;:,.<>?"})
}

/// A display name: trimmed, at most 100 characters, no control characters (empty: no name).
fn full_name() -> Value {
    let pattern = format!("^[{TRIMMED}]*[^\\u0000-\\u001F\\u007F-\\u009F]*[{TRIMMED}]*$");
    json!({"type": "string", "maxLength": rules::FULL_NAME_MAX_CHARS, "pattern": pattern,
        "description": "Trimmed; at most 100 characters, no control characters; empty means no name"})
}

/// A six-character TOTP code (digits, checked with the code itself).
fn totp_code() -> Value {
    json!({"type": "string", "minLength": rules::TOTP_CODE_LEN, "maxLength": rules::TOTP_CODE_LEN})
}

/// A refresh, reset or verification token.
fn token() -> Value {
    json!({"type": "string", "maxLength": MAX_TOKEN_INPUT})
}

// ------------------------------------------------------------------ response schemas

fn user_props() -> serde_json::Map<String, Value> {
    let props = json!({
        "id": uuid(),
        "email": string(),
        "full_name": nullable(string()),
        "role": string(),
        "subscription_tier": string(),
        "created_at": datetime(),
        "email_verified": boolean(),
        "totp_enabled": boolean(),
    });
    match props {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

const USER_FIELDS: [&str; 8] =
    ["id", "email", "full_name", "role", "subscription_tier", "created_at", "email_verified", "totp_enabled"];

/// `UserOut`.
fn user_out() -> Value {
    object(Value::Object(user_props()), &USER_FIELDS)
}

fn bearer_type() -> Value {
    json!({"type": "string", "enum": ["bearer"]})
}

/// `TokenResponse` (the original's `TokenWithRefresh`).
fn token_response() -> Value {
    object(
        json!({"access_token": string(), "refresh_token": string(), "user_id": uuid(), "token_type": bearer_type()}),
        &["access_token", "refresh_token", "user_id", "token_type"],
    )
}

/// `UserOut` with the first session's tokens.
fn registered() -> Value {
    let mut props = user_props();
    props.insert("access_token".into(), string());
    props.insert("refresh_token".into(), string());
    props.insert("token_type".into(), bearer_type());
    let mut required = USER_FIELDS.to_vec();
    required.extend(["access_token", "refresh_token", "token_type"]);
    object(Value::Object(props), &required)
}

const SETTING_STRINGS: [&str; 9] = [
    "defaultLotSize",
    "maxLotSize",
    "maxOpenPositions",
    "defaultStopLoss",
    "defaultTakeProfit",
    "riskPerTrade",
    "theme",
    "timezone",
    "language",
];
const SETTING_FLAGS: [&str; 3] = ["emailNotifications", "tradeAlerts", "dailySummary"];

/// The merged settings (defaults, then the stored values): every key, strings and three booleans.
fn settings() -> Value {
    let mut props = serde_json::Map::new();
    for k in SETTING_STRINGS {
        props.insert(k.into(), string());
    }
    for k in SETTING_FLAGS {
        props.insert(k.into(), boolean());
    }
    let required: Vec<&str> = SETTING_STRINGS.iter().chain(SETTING_FLAGS.iter()).copied().collect();
    object(Value::Object(props), &required)
}

/// The settings a `PUT` accepts: any of the keys (null: unchanged); unknown keys are dropped.
fn settings_patch() -> Value {
    let mut props = serde_json::Map::new();
    for k in SETTING_STRINGS {
        props.insert(k.into(), nullable(string_max(MAX_SETTING_CHARS)));
    }
    for k in SETTING_FLAGS {
        props.insert(k.into(), nullable(boolean()));
    }
    object(Value::Object(props), &[])
}

fn status_message() -> Value {
    object(json!({"status": string(), "message": string()}), &["status", "message"])
}

fn totp_enabled() -> Value {
    record(json!({"enabled": boolean()}))
}

/// `{"detail": "..."}`, for the errors the shared ones leave out: 401/403 of public routes (added only with a
/// bearer) and 400 of routes without input (added only with parameters or a body).
fn error() -> Option<Value> {
    Some(reference("Error"))
}

// ------------------------------------------------------------------ operations

/// This group's operations.
pub fn operations() -> Vec<Op> {
    vec![
        // -------------------------------------------------------------- registration and login
        Op::post("/api/v1/auth/register", "auth", "Create an account")
            .public()
            .describe(
                "Creates an unverified account, mails the verification link and opens a first session (the \
                 answer carries its tokens). An e-mail already registered is a 400; a password failing the \
                 policy a 422.",
            )
            .body(object(
                json!({"email": email(), "password": new_password(), "full_name": nullable(full_name())}),
                &["email", "password"],
            ))
            .created(registered()),
        Op::post("/api/v1/auth/login", "auth", "Log in with e-mail and password")
            .public()
            .describe(
                "Opens a session. Accounts with 2FA enabled answer 403 and use `/api/v1/auth/login-2fa`. \
                 Repeated failures lock the account (429 with `Retry-After`).",
            )
            .body(object(json!({"email": email(), "password": password()}), &["email", "password"]))
            .ok(token_response())
            .respond(401, "Incorrect e-mail or password", error())
            .respond(403, "2FA is enabled: use /api/v1/auth/login-2fa", error()),
        Op::post("/api/v1/auth/login-2fa", "auth", "Log in with e-mail, password and TOTP code")
            .public()
            .describe("For accounts with 2FA enabled (400 otherwise; 400 when the code is missing).")
            .body(object(
                json!({"email": loose_email(), "password": password(), "totp_token": nullable(totp_code())}),
                &["email", "password"],
            ))
            .ok(token_response())
            .respond(401, "Incorrect e-mail, password or TOTP code", error()),
        // -------------------------------------------------------------- tokens
        Op::post("/api/v1/auth/logout", "auth", "Log out")
            .optional_auth()
            .describe(
                "Revokes the session of the bearer access token (when sent) and/or of the refresh token given in \
                 the query or the body, and closes that session's WebSockets. Always succeeds: invalid tokens are \
                 ignored.",
            )
            .query("refresh_token", string(), "The refresh token whose session to end (the query wins over the body)")
            .optional_body(object(json!({"refresh_token": nullable(string())}), &[]))
            .ok(status_message()),
        Op::post("/api/v1/auth/refresh", "auth", "Rotate the refresh token")
            .public()
            .describe(
                "Takes `refresh_token` from the query (the dashboard) or the JSON body (the connector); one of the \
                 two is required (422 otherwise). Presenting an already rotated refresh token revokes its session.",
            )
            .query("refresh_token", token(), "The refresh token (or in the body)")
            .optional_body(object(json!({"refresh_token": nullable(token())}), &[]))
            .ok(token_response())
            .respond(401, "Invalid, expired or reused refresh token", error()),
        // -------------------------------------------------------------- password reset and verification
        Op::post("/api/v1/auth/forgot-password", "auth", "Mail a password reset link")
            .public()
            .describe(
                "`email` from the query or the body (one is required). The same answer, in the same time (no sooner \
                 than `NUSATRADE_FORGOT_PASSWORD_FLOOR_MS`), whether or not an account exists for the address (or \
                 it is malformed).",
            )
            .query("email", loose_email(), "The account's e-mail (or in the body)")
            .optional_body(object(json!({"email": nullable(loose_email())}), &[]))
            .ok(status_message()),
        Op::post("/api/v1/auth/reset-password", "auth", "Choose a new password with a mailed token")
            .public()
            .describe(
                "`token` and `new_password` from the query or the body (each required in one of them). A password \
                 failing the policy, or an invalid, expired or used token, is a 400. Ends every session of the \
                 account and marks its e-mail verified.",
            )
            .query("token", token(), "The mailed reset token (or in the body)")
            .query("new_password", new_password(), "The new password (or in the body)")
            .optional_body(object(json!({"token": nullable(token()), "new_password": nullable(new_password())}), &[]))
            .ok(status_message())
            .not_found(true),
        Op::post("/api/v1/auth/verify-email", "auth", "Confirm the e-mail address with a mailed token")
            .public()
            .describe(
                "`token` from the query or the body (one is required). An invalid, expired or used token is a 400.",
            )
            .query("token", token(), "The mailed verification token (or in the body)")
            .optional_body(object(json!({"token": nullable(token())}), &[]))
            .ok(object(json!({"status": string(), "email_verified": boolean()}), &["status", "email_verified"]))
            .not_found(true),
        Op::post("/api/v1/auth/verify-email/resend", "auth", "Mail the verification link again")
            .describe("At most 3 mails an hour (429). An already verified e-mail is a 400.")
            .ok(record(json!({"status": string()})))
            .respond(400, "The e-mail is already verified", error()),
        // -------------------------------------------------------------- profile, settings, activity
        Op::get("/api/v1/auth/me", "auth", "The caller's account").ok(user_out()),
        Op::get("/api/v1/users/me", "users", "The caller's account").ok(user_out()),
        Op::put("/api/v1/users/me", "users", "Change the caller's display name")
            .describe(
                "`full_name` from the query or the body; absent or empty leaves the name unchanged (the original \
                 took it from the query).",
            )
            .query("full_name", full_name(), "The new display name (or in the body)")
            .optional_body(object(json!({"full_name": nullable(full_name())}), &[]))
            .ok(object(json!({"message": string(), "user": user_out()}), &["message", "user"])),
        Op::get("/api/v1/users/settings", "users", "The caller's settings")
            .describe("Every key, the defaults merged with the stored values (camelCase keys, string-typed numbers).")
            .ok(settings()),
        Op::put("/api/v1/users/settings", "users", "Change some of the caller's settings")
            .describe(
                "A shallow merge of the given keys: strings (at most 100 characters; a JSON number is a 422) and \
                 three booleans. Unknown keys are dropped.",
            )
            .body(settings_patch())
            .ok(object(json!({"message": string(), "settings": settings()}), &["message", "settings"])),
        Op::get("/api/v1/users/activity", "users", "The caller's security events, newest first")
            .describe("A page of the audit trail; `next_cursor` (null on the last page) continues it.")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 100}), "Page size (default 20)")
            .query("cursor", string_max(MAX_CURSOR_LEN), "The previous page's `next_cursor`")
            .ok(object(
                json!({
                    "items": array(object(
                        json!({"id": string(), "event": string(), "at": datetime(), "ip": string(),
                            "user_agent": string(), "details": any()}),
                        &["id", "event", "at", "ip", "user_agent", "details"],
                    )),
                    "next_cursor": nullable(string()),
                }),
                &["items", "next_cursor"],
            )),
        // -------------------------------------------------------------- sessions
        Op::get("/api/v1/auth/sessions", "auth", "The caller's live sessions, most recently used first").ok(array(
            object(
                json!({"id": uuid(), "created_at": datetime(), "last_used_at": datetime(), "expires_at": datetime(),
                    "ip": string(), "user_agent": string(), "current": boolean()}),
                &["id", "created_at", "last_used_at", "expires_at", "ip", "user_agent", "current"],
            ),
        )),
        Op::post("/api/v1/auth/sessions/revoke-others", "auth", "End every session but the caller's")
            .ok(object(json!({"status": string(), "revoked": integer()}), &["status", "revoked"])),
        Op::delete("/api/v1/auth/sessions/{id}", "auth", "End one of the caller's sessions")
            .describe("`id` must be a UUID (400 otherwise); an unknown or already ended session is a 404.")
            .ok(object(json!({"status": string(), "session_id": uuid()}), &["status", "session_id"])),
        // -------------------------------------------------------------- TOTP
        Op::get("/api/v1/totp/status", "totp", "Whether 2FA is enabled").ok(totp_enabled()),
        Op::post("/api/v1/totp/setup", "totp", "Start setting up 2FA")
            .describe(
                "A new pending secret (replacing an unverified one) with its `otpauth://` URI and QR code (a PNG \
                 data URI). 400 when 2FA is already enabled.",
            )
            .ok(object(
                json!({"secret": string(), "qr_code": string(), "uri": string()}),
                &["secret", "qr_code", "uri"],
            ))
            .respond(400, "2FA is already enabled", error()),
        Op::post("/api/v1/totp/verify", "totp", "Enable 2FA with a first code")
            .describe(
                "400 without a pending setup or when already enabled; 401 for a wrong code. Wrong codes count in the \
                 login lock-out (429 with `Retry-After` while locked); the one that locks the account also ends the \
                 caller's session and closes its WebSockets.",
            )
            .body(record(json!({"token": totp_code()})))
            .ok(totp_enabled()),
        Op::post("/api/v1/totp/disable", "totp", "Disable 2FA")
            .describe(
                "Needs the password and a fresh code (401 otherwise); 400 when 2FA is not enabled. Wrong passwords \
                 and codes count in the login lock-out (429 with `Retry-After` while locked); the one that locks the \
                 account also ends the caller's session and closes its WebSockets.",
            )
            .body(object(json!({"password": password(), "totp_token": totp_code()}), &["password", "totp_token"]))
            .ok(totp_enabled()),
        // -------------------------------------------------------------- the mailed links' pages
        Op::get(VERIFY_EMAIL_PATH, "pages", "The e-mail verification page (the mailed link)")
            .public()
            .describe(
                "An HTML page; its script reads `token` from the address and calls `POST /api/v1/auth/verify-email`.",
            )
            .text("text/html", "The page"),
        Op::get(RESET_PASSWORD_PATH, "pages", "The password reset page (the mailed link)")
            .public()
            .describe(
                "An HTML page; its script reads `token` from the address and calls \
                 `POST /api/v1/auth/reset-password`.",
            )
            .text("text/html", "The page"),
        Op::get(SCRIPT_PATH, "pages", "The link pages' script").public().text("text/javascript", "The script"),
        Op::get(STYLE_PATH, "pages", "The link pages' style sheet").public().text("text/css", "The style sheet"),
    ]
}
