//! Load tool: warm predictions over HTTP through the local gateway (issue 7 benchmark).
//!
//! Starts the gateway binary (`NUSATRADE_BIN`, e.g. `target/release/nusatrade`), registers a user, uploads the
//! EURUSD sample (`../shared/data/EURUSD.csv`; exits when absent), creates and trains a model (gradient boosting,
//! the default hyperparameters unless `--iterations` says otherwise) through the `ml-train` worker, then runs
//! `--concurrency` clients for `--seconds`, each posting `POST /ml/models/{id}/predict` in a loop (features from
//! the stored candles, model from the warm cache, the prediction stored). Prints the training time, throughput and
//! latency percentiles.
//!
//! ```sh
//! cargo build --release -p nusatrade-local
//! NUSATRADE_BIN=target/release/nusatrade cargo run --release -p nusatrade-tests --example ml_predict -- \
//!     --concurrency 8 --seconds 10
//! ```

use std::time::{Duration, Instant};

use nusatrade_tests::{Gateway, TEST_ENV, arg, http, percentile as pct, register};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = arg("--concurrency", 8) as usize;
    let seconds = arg("--seconds", 10);
    let iterations = arg("--iterations", 100);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/EURUSD.csv");
    let Ok(csv) = std::fs::read(data) else {
        println!("SKIPPED: {data} not readable; the EURUSD sample is not beside the repository");
        return Ok(());
    };
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_RATE_LIMIT_ENABLED", "false"));
    env.push(("RUST_LOG", "warn"));
    let gw = Gateway::start_with_env(&[], &env).await?;
    let token = register(&gw, "ml-bench@example.com").await?;
    let client = http();

    let r = client
        .post(gw.url("/api/v1/ml/datasets?symbol=EURUSD&timeframe=H1"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "upload: {}", r.text().await?);
    let body = json!({"name": "bench", "model_type": "gradient_boosting", "symbol": "EURUSD",
                      "config": {"hyperparameters": {"iterations": iterations}}});
    let m: Value =
        client.post(gw.url("/api/v1/ml/models")).bearer_auth(&token).json(&body).send().await?.json().await?;
    let id = m["id"].as_str().ok_or_else(|| anyhow::anyhow!("create: {m}"))?.to_owned();
    let started = Instant::now();
    let r = client
        .post(gw.url(&format!("/api/v1/ml/models/{id}/train")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "train: {}", r.text().await?);
    let status = loop {
        let st: Value = client
            .get(gw.url(&format!("/api/v1/ml/models/{id}/status")))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if st["training_status"] == "completed" || st["training_status"] == "failed" {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    anyhow::ensure!(status["training_status"] == "completed", "training: {status}");
    println!(
        "training (5,000 bars, gradient boosting, {iterations} iterations/class): {:.2?} request → completed; fit {} ms; \
         test accuracy {:.3}; artefact {} bytes (gzip)",
        started.elapsed(),
        status["metrics"]["fit_millis"],
        status["performance_metrics"]["accuracy"].as_f64().unwrap_or(0.0),
        status["versions"][0]["size_bytes"]
    );

    // Warm-up: the first prediction loads the model into the cache and the candles into the tail cache.
    let path = format!("/api/v1/ml/models/{id}/predict");
    let first = Instant::now();
    let r = client.post(gw.url(&path)).bearer_auth(&token).json(&json!({"symbol": "EURUSD"})).send().await?;
    anyhow::ensure!(r.status() == 200, "predict: {}", r.text().await?);
    println!("first (cold) prediction: {:.2?}", first.elapsed());

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..concurrency).map(|_| {
        let (client, url, token) = (client.clone(), gw.url(&path), token.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client.post(&url).bearer_auth(&token).json(&json!({"symbol": "EURUSD"})).send().await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    Ok(r) => panic!("predict answered {}", r.status()),
                    Err(e) => panic!("predict failed: {e}"),
                }
            }
            lat
        })
    });
    let mut all: Vec<Duration> = Vec::new();
    for w in futures::future::join_all(workers).await {
        all.extend(w?);
    }
    all.sort();
    let n = all.len();
    println!(
        "warm predictions over HTTP: {n} in {seconds} s at concurrency {concurrency} = {:.0}/s; \
         latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        n as f64 / seconds as f64,
        pct(&all, 0.5).as_secs_f64() * 1e3,
        pct(&all, 0.9).as_secs_f64() * 1e3,
        pct(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
