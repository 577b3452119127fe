//! The fakes' wire formats: reading a request back into a [`SeenRequest`], and answering a [`Step`] as each provider
//! would.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use nusatrade_app::ports::{ChatMessage, Role, Usage};
use serde_json::{Value, json};

use super::{Answer, FakeKind, SeenRequest, Status, Step};

/// Text of a content field: a string, or an array of `{text}` blocks.
fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().concat()
        }
        _ => String::new(),
    }
}

fn chat_messages(v: Option<&Value>) -> Vec<ChatMessage> {
    let Some(Value::Array(messages)) = v else { return Vec::new() };
    messages
        .iter()
        .filter_map(|m| {
            let role = match m.get("role").and_then(Value::as_str)? {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                _ => return None,
            };
            Some(ChatMessage { role, content: text_of(m.get("content")) })
        })
        .collect()
}

fn u32_at(v: &Value, pointer: &str) -> Option<u32> {
    v.pointer(pointer).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

fn f32_at(v: &Value, pointer: &str) -> Option<f32> {
    v.pointer(pointer).and_then(Value::as_f64).map(|t| t as f32)
}

/// The neutral view of a request received by a fake of `kind`.
pub(super) fn decode(
    kind: FakeKind,
    body: &Value,
    path_model: Option<&str>,
    stream_path: bool,
    key: &str,
    headers: &HeaderMap,
) -> SeenRequest {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let model = path_model.map(str::to_owned).unwrap_or_else(|| text_of(body.get("model")));
    let stream = stream_path || body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    match kind {
        FakeKind::OpenAi => {
            let all = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
            let system = all
                .iter()
                .filter(|m| matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer")))
                .map(|m| text_of(m.get("content")))
                .collect::<Vec<_>>()
                .join("\n");
            SeenRequest {
                model,
                system,
                messages: chat_messages(body.get("messages")),
                max_tokens: u32_at(body, "/max_tokens").or_else(|| u32_at(body, "/max_completion_tokens")),
                temperature: f32_at(body, "/temperature"),
                stream,
                authorized: header("authorization") == format!("Bearer {key}"),
            }
        }
        FakeKind::Anthropic => SeenRequest {
            model,
            system: text_of(body.get("system")),
            messages: chat_messages(body.get("messages")),
            max_tokens: u32_at(body, "/max_tokens"),
            temperature: f32_at(body, "/temperature"),
            stream,
            authorized: header("x-api-key") == key && !header("anthropic-version").is_empty(),
        },
        FakeKind::Bedrock => SeenRequest {
            model,
            system: text_of(body.get("system")),
            messages: chat_messages(body.get("messages")),
            max_tokens: u32_at(body, "/inferenceConfig/maxTokens"),
            temperature: f32_at(body, "/inferenceConfig/temperature"),
            stream,
            authorized: header("authorization").starts_with("AWS4-HMAC-SHA256 ")
                && header("authorization").contains(&format!("Credential={key}/")),
        },
    }
}

/// The answer of a fake of `kind` to one step.
pub(super) async fn answer(kind: FakeKind, step: Step, stream: bool, model: &str) -> Response {
    match step {
        Step::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Step::Status(s) => error(kind, &s),
        Step::Garbage if stream => {
            let frame = match kind {
                FakeKind::Anthropic => "event: message_start\ndata: {this is not json\n\n",
                FakeKind::OpenAi => "data: {this is not json\n\n",
                FakeKind::Bedrock => "this is not an event-stream frame, whatever its prelude says",
            };
            ([(header::CONTENT_TYPE, stream_content_type(kind))], frame).into_response()
        }
        Step::Garbage => ([(header::CONTENT_TYPE, "application/json")], "{\"this is\": not json").into_response(),
        Step::Answer(a) if stream => stream_answer(kind, a, model),
        Step::Answer(a) => json_answer(kind, &a, model),
    }
}

fn json_answer(kind: FakeKind, a: &Answer, model: &str) -> Response {
    let text = a.full_text();
    let Usage { input_tokens: i, output_tokens: o } = a.usage;
    let body = match kind {
        FakeKind::OpenAi => json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": if a.truncated { "length" } else { "stop" }}],
            "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
        }),
        FakeKind::Anthropic => json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": if a.truncated { "max_tokens" } else { "end_turn" }, "stop_sequence": null,
            "usage": {"input_tokens": i, "output_tokens": o},
        }),
        FakeKind::Bedrock => json!({
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": if a.truncated { "max_tokens" } else { "end_turn" },
            "usage": {"inputTokens": i, "outputTokens": o, "totalTokens": i + o},
            "metrics": {"latencyMs": 1},
        }),
    };
    let mut bytes = serde_json::to_vec(&body).expect("JSON");
    if a.cut_after.is_some() {
        bytes.truncate(bytes.len() / 2);
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn error(kind: FakeKind, s: &Status) -> Response {
    let status = StatusCode::from_u16(s.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match kind {
        FakeKind::OpenAi => {
            let kind = if s.status == 429 { "rate_limit_error" } else { "api_error" };
            (status, axum::Json(json!({"error": {"message": s.message, "type": kind, "param": null, "code": null}})))
                .into_response()
        }
        FakeKind::Anthropic => {
            let kind = match s.status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            (status, axum::Json(json!({"type": "error", "error": {"type": kind, "message": s.message}})))
                .into_response()
        }
        FakeKind::Bedrock => {
            let kind = match s.status {
                401 | 403 => "AccessDeniedException",
                404 => "ResourceNotFoundException",
                408 => "ModelTimeoutException",
                424 => "ModelErrorException",
                429 => "ThrottlingException",
                503 => "ServiceUnavailableException",
                500..=599 => "InternalServerException",
                _ => "ValidationException",
            };
            let mut r = (status, axum::Json(json!({"message": s.message}))).into_response();
            r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(kind));
            r
        }
    };
    if let Some(secs) = s.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn stream_content_type(kind: FakeKind) -> &'static str {
    match kind {
        FakeKind::Bedrock => "application/vnd.amazon.eventstream",
        _ => "text/event-stream",
    }
}

/// One SSE event.
fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(e) => Bytes::from(format!("event: {e}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// One AWS event-stream frame (Bedrock ConverseStream): an event of `event_type` with a JSON payload.
fn aws_event(event_type: &str, payload: &Value) -> Bytes {
    use aws_smithy_types::event_stream::{Header, HeaderValue as Hv, Message};
    let message = Message::new(serde_json::to_vec(payload).expect("JSON"))
        .add_header(Header::new(":message-type", Hv::String("event".into())))
        .add_header(Header::new(":event-type", Hv::String(event_type.to_owned().into())))
        .add_header(Header::new(":content-type", Hv::String("application/json".into())));
    let mut frame = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut frame).expect("an event-stream frame");
    Bytes::from(frame)
}

/// The frames of a streamed answer: before the text, one per chunk, after the text.
fn stream_frames(kind: FakeKind, a: &Answer, model: &str) -> (Vec<Bytes>, Vec<Bytes>, Vec<Bytes>) {
    let Usage { input_tokens: i, output_tokens: o } = a.usage;
    match kind {
        FakeKind::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                sse(
                    None,
                    &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            let head = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
            let body = a.chunks.iter().map(|c| chunk(json!({"content": c}), Value::Null)).collect();
            let finish = if a.truncated { "length" } else { "stop" };
            let tail = vec![
                chunk(json!({}), json!(finish)),
                sse(
                    None,
                    &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                    "choices": [], "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}}),
                ),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ];
            (head, body, tail)
        }
        FakeKind::Anthropic => {
            let event = |v: Value| sse(Some(v["type"].as_str().unwrap_or("message")), &v);
            let head = vec![
                event(json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message",
                    "role": "assistant", "model": model, "content": [], "stop_reason": null,
                    "usage": {"input_tokens": i, "output_tokens": 1}}})),
                event(json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}})),
                event(json!({"type": "ping"})),
            ];
            let body = a
                .chunks
                .iter()
                .map(|c| {
                    event(json!({"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": c}}))
                })
                .collect();
            let stop = if a.truncated { "max_tokens" } else { "end_turn" };
            let tail = vec![
                event(json!({"type": "content_block_stop", "index": 0})),
                event(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                             "usage": {"output_tokens": o}})),
                event(json!({"type": "message_stop"})),
            ];
            (head, body, tail)
        }
        FakeKind::Bedrock => {
            let head = vec![aws_event("messageStart", &json!({"role": "assistant"}))];
            let body = a
                .chunks
                .iter()
                .map(|c| aws_event("contentBlockDelta", &json!({"contentBlockIndex": 0, "delta": {"text": c}})))
                .collect();
            let stop = if a.truncated { "max_tokens" } else { "end_turn" };
            let tail = vec![
                aws_event("contentBlockStop", &json!({"contentBlockIndex": 0})),
                aws_event("messageStop", &json!({"stopReason": stop})),
                aws_event(
                    "metadata",
                    &json!({"usage": {"inputTokens": i, "outputTokens": o, "totalTokens": i + o},
                                              "metrics": {"latencyMs": 1}}),
                ),
            ];
            (head, body, tail)
        }
    }
}

/// Breaks the connection: once what was sent is flushed (hyper drops its unwritten buffer when a body fails), the
/// body fails.
async fn cut(tx: &mut futures::channel::mpsc::Sender<Result<Bytes, io::Error>>) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = tx.send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "scripted cut"))).await;
}

/// Streams the answer: the chunks `delay` apart; with `cut_after`, the connection breaks after that many chunks.
fn stream_answer(kind: FakeKind, a: Answer, model: &str) -> Response {
    let (head, chunks, tail) = stream_frames(kind, &a, model);
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, io::Error>>(16);
    let (delay, cut_after) = (a.delay, a.cut_after);
    tokio::spawn(async move {
        for frame in head {
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
        for (n, frame) in chunks.into_iter().enumerate() {
            if cut_after == Some(n) {
                cut(&mut tx).await;
                return;
            }
            if n > 0 && delay > Duration::ZERO {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
        if cut_after.is_some() {
            cut(&mut tx).await;
            return;
        }
        for frame in tail {
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Body::from_stream(rx));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(stream_content_type(kind)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
