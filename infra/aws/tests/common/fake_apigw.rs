//! A tiny fake of the API Gateway Management API, because moto's is a stub (always 200, never 410,
//! no stage path). It serves `POST`/`DELETE /{stage}/@connections/{id}` on 127.0.0.1:0, accepts any
//! (SigV4) signature, answers 200 for open connections and 410 Gone for unknown or closed ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Default)]
pub struct Connections {
    /// Open connections and what they received.
    open: HashMap<String, Vec<String>>,
    /// Closed connections keep their messages for inspection.
    closed: HashMap<String, Vec<String>>,
}

#[derive(Clone, Default)]
pub struct FakeApiGw {
    state: Arc<Mutex<Connections>>,
}

/// A 410 as API Gateway sends it: the SDK reads the error type from `x-amzn-ErrorType`.
fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-ErrorType", "GoneException"), ("content-type", "application/json")],
        r#"{"message":null}"#,
    )
        .into_response()
}

impl FakeApiGw {
    /// Starts the fake; returns it and its management endpoint (`http://127.0.0.1:port/prod`).
    pub async fn start() -> (FakeApiGw, String) {
        let fake = FakeApiGw::default();
        let app = Router::new()
            .route("/prod/@connections/{id}", post(post_to).delete(delete).get(get_connection))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API Gateway");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (fake, format!("http://{addr}/prod"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new open connection, with an id shaped like API Gateway's (base64, may hold `=`).
    pub fn open(&self) -> String {
        let id = format!("{}=", &uuid::Uuid::new_v4().simple().to_string()[..14]);
        self.lock().open.insert(id.clone(), Vec::new());
        id
    }

    /// Opens a connection with a given id (API Gateway makes the connection exist only after `$connect` answered:
    /// until this is called, posts to `id` get 410).
    pub fn open_as(&self, id: &str) {
        self.lock().open.entry(id.to_owned()).or_default();
    }

    pub fn received(&self, id: &str) -> Vec<String> {
        let c = self.lock();
        c.open.get(id).or_else(|| c.closed.get(id)).cloned().unwrap_or_default()
    }

    pub fn hang_up(&self, id: &str) {
        let mut c = self.lock();
        if let Some(msgs) = c.open.remove(id) {
            c.closed.insert(id.to_owned(), msgs);
        }
    }

    pub fn is_open(&self, id: &str) -> bool {
        self.lock().open.contains_key(id)
    }
}

async fn post_to(State(f): State<FakeApiGw>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut c = f.lock();
    match c.open.get_mut(&id) {
        Some(msgs) => {
            msgs.push(String::from_utf8_lossy(&body).into_owned());
            StatusCode::OK.into_response()
        }
        None => gone(),
    }
}

async fn delete(State(f): State<FakeApiGw>, Path(id): Path<String>) -> Response {
    let mut c = f.lock();
    match c.open.remove(&id) {
        Some(msgs) => {
            c.closed.insert(id, msgs);
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}

async fn get_connection(State(f): State<FakeApiGw>, Path(id): Path<String>) -> Response {
    if f.is_open(&id) { (StatusCode::OK, "{}").into_response() } else { gone() }
}
