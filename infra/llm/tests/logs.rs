//! What the adapters log: one line per call with provider, model, status, attempts, latency and tokens; never the
//! prompt, the answer or the key — at any level, the HTTP stack's own events included.

#![cfg(feature = "fake")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nusatrade_app::ports::{ChatMessage, CompletionRequest, ModelFactory};
use nusatrade_llm::fake::{Answer, FakeKind, FakeLlm, Step};
use nusatrade_llm::{Backoff, HttpModels};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_counts_not_content() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fast = Backoff { base_delay: Duration::from_millis(1), ..Backoff::default() };
    for kind in [FakeKind::OpenAi, FakeKind::Anthropic] {
        let fake = FakeLlm::start(kind).await;
        let model = HttpModels::new().with_backoff(fast).connect(&fake.config("log-model")).unwrap();
        let request = CompletionRequest {
            system: "SECRET-SYSTEM-PROMPT".into(),
            messages: vec![ChatMessage::user("SECRET-USER-QUESTION")],
            max_tokens: 50,
            temperature: 0.1,
        };
        fake.push(Step::status(503));
        fake.push(Answer::text("SECRET-ANSWER").tokens(123, 45));
        model.complete(&request).await.unwrap();
        fake.push(Answer::chunks(["SECRET-", "STREAMED"]).tokens(7, 8));
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        model.stream(&request, tx).await.unwrap();
        fake.push(Step::status(401));
        model.complete(&request).await.unwrap_err();
    }

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for needle in ["SECRET", nusatrade_llm::fake::FAKE_API_KEY] {
        assert!(!logs.contains(needle), "the logs carry {needle}:\n{logs}");
    }
    let answered: Vec<&str> = logs.lines().filter(|l| l.contains("language model answered")).collect();
    assert_eq!(answered.len(), 4, "{logs}");
    assert!(answered[0].contains("provider=\"openai\"") || answered[0].contains("provider=openai"), "{}", answered[0]);
    for field in ["model=log-model", "status=200", "attempts=2", "input_tokens=123", "output_tokens=45", "latency_ms="]
    {
        assert!(answered[0].contains(field), "{field} missing: {}", answered[0]);
    }
    assert!(logs.contains("retrying") && logs.contains("status=503"), "{logs}");
    assert!(logs.lines().any(|l| l.contains("language model call failed") && l.contains("status=401")), "{logs}");
}
