//! The `backtest` queue's consumer (the `backtest-jobs` function in AWS, a worker of `nusatrade serve` locally):
//! long runs, optimizer chunks and walk-forward analyses. Every message names its user and session; handling is
//! idempotent under redelivery — a finished session is left alone, a chunk is counted once (see
//! [`super::optimize`]), results are deterministic and overwrite their own blobs.
//!
//! Bodies: `{"kind":"run","user":U,"session":S}`, `{"kind":"optimize_chunk","user":U,"session":S,"chunk":N}`,
//! `{"kind":"walk_forward","user":U,"session":S}`.

use async_trait::async_trait;
use serde::Deserialize;
use uuid::Uuid;

use super::error::BacktestError;
use super::runs::{BACKTEST_QUEUE, BacktestService};
use crate::jobs::{JobError, QueueConsumer};
use crate::ports::ReceivedMessage;

/// One message of the `backtest` queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BacktestJob {
    Run { user: Uuid, session: Uuid },
    OptimizeChunk { user: Uuid, session: Uuid, chunk: u32 },
    WalkForward { user: Uuid, session: Uuid },
}

/// The consumer over the backtest use cases.
pub struct BacktestConsumer {
    pub service: BacktestService,
}

impl BacktestConsumer {
    pub fn new(service: BacktestService) -> Self {
        BacktestConsumer { service }
    }
}

fn job_error(e: BacktestError) -> JobError {
    if e.is_transient() { JobError::Unavailable(e.to_string()) } else { JobError::Invalid(e.to_string()) }
}

#[async_trait]
impl QueueConsumer for BacktestConsumer {
    fn queue(&self) -> &'static str {
        BACKTEST_QUEUE
    }

    async fn handle(&self, message: &ReceivedMessage) -> Result<(), JobError> {
        let job: BacktestJob =
            serde_json::from_str(&message.body).map_err(|e| JobError::Invalid(format!("not a backtest job: {e}")))?;
        tracing::info!(?job, receive_count = message.receive_count, "backtest job");
        match job {
            BacktestJob::Run { user, session } => self.service.run_stored(user, session).await,
            BacktestJob::OptimizeChunk { user, session, chunk } => self.service.run_chunk(user, session, chunk).await,
            BacktestJob::WalkForward { user, session } => self.service.run_walk_forward(user, session).await,
        }
        .map_err(job_error)
    }
}
