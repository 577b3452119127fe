//! `nusatrade`: the whole platform on a laptop.
//!
//! `nusatrade serve` starts the local gateway (HTTP API + WebSocket APIs) on the embedded store;
//! `nusatrade connector` runs a simulated MT5 connector against a server; `nusatrade backup`,
//! `backups` and `restore` back up and restore a data dir's store; `nusatrade backtest` and `optimize` run the
//! backtest engine and the optimizer on a strategy file and a candle CSV (or the data dir's own); `nusatrade admin
//! grant|revoke|list` manages the admin role (on a data dir, or on the deployed table with `--aws-table`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use nusatrade_local::gateway::{self, Gateway, GatewayConfig, WsLimits};
use nusatrade_local::logging::{self, LogFormat};
use nusatrade_local::platform::LocalPlatform;
use nusatrade_local::{admin_cli, backtest_cli, backup_cli, demo};
use nusatrade_sim as sim;

/// jemalloc instead of glibc's malloc: on the order round trip glibc's allocator took ~17 % of the
/// gateway's CPU (perf; `malloc_consolidate` on every page-sized buffer the store writer allocates),
/// and with jemalloc the same load ran 12–35 % faster (README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(name = "nusatrade", version, about = "NusaTrade platform: local gateway and tools")]
struct Cli {
    /// Log format: human-readable or JSON lines (logs go to stderr).
    #[arg(long, global = true, env = "NUSATRADE_LOG_FORMAT", value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the platform: HTTP API and WebSocket APIs on the embedded store.
    Serve(ServeArgs),
    /// Run a simulated MT5 connector (paper account) against a NusaTrade server.
    Connector(Box<sim::cli::ConnectorArgs>),
    /// Back up the data dir's store into its blobs (backups/<id>/); prints the backup id.
    Backup(backup_cli::BackupArgs),
    /// List the data dir's backups (complete, incomplete); --verify checks them.
    Backups(backup_cli::BackupsArgs),
    /// Restore a backup into an empty data dir, verifying checksums and counts.
    Restore(backup_cli::RestoreArgs),
    /// Backtest a strategy on a candle CSV or a stored dataset; prints the statistics (no server needed).
    Backtest(Box<backtest_cli::BacktestArgs>),
    /// Optimize a strategy's parameters (grid or random search, optional walk-forward) with a progress bar.
    Optimize(Box<backtest_cli::OptimizeArgs>),
    /// Grant, revoke or list the admin role (by e-mail; on a data dir, or the deployed table with --aws-table).
    Admin(admin_cli::AdminArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NUSATRADE_ADDR", default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Data directory (embedded store, blobs, mail).
    #[arg(long, env = "NUSATRADE_DATA_DIR", default_value = "./.nusatrade")]
    data_dir: PathBuf,
    /// WebSocket idle timeout in seconds (API Gateway: 600).
    #[arg(long, env = "NUSATRADE_WS_IDLE_TIMEOUT", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ws_idle_timeout: u64,
    /// WebSocket maximum connection duration in seconds (API Gateway: 7200).
    #[arg(long, env = "NUSATRADE_WS_MAX_DURATION", default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    ws_max_duration: u64,
    /// Also run a demo user (demo@nusatrade.local) and a simulated MT5 connector in this process.
    #[arg(long)]
    with_sim_connector: bool,
    /// Prometheus metrics at /metrics (`false`: none).
    #[arg(long, env = "NUSATRADE_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    metrics: bool,
    /// Serve /metrics on this address instead of the gateway's (e.g. an address only the monitoring host reaches).
    #[arg(long, env = "NUSATRADE_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nusatrade: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args, started).await.map(|()| true),
            Command::Connector(args) => {
                sim::cli::run(*args, gateway::shutdown_signal()).await.map(|()| true).map_err(anyhow::Error::from)
            }
            Command::Backup(args) => backup_cli::backup(args).await.map(|()| true),
            Command::Backups(args) => backup_cli::list(args).await,
            Command::Restore(args) => backup_cli::restore(args).await.map(|()| true),
            Command::Backtest(args) => backtest_cli::backtest(*args).await.map(|()| true),
            Command::Optimize(args) => backtest_cli::optimize(*args).await.map(|()| true),
            Command::Admin(args) => admin_cli::run(args).await.map(|()| true),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "nusatrade failed");
            eprintln!("nusatrade: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, started: Instant) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let metrics =
        if args.metrics { Some(nusatrade_local::metrics::install().map_err(anyhow::Error::msg)?) } else { None };
    let platform = LocalPlatform::open(&args.data_dir)?;
    let config = GatewayConfig {
        addr: args.addr,
        ws_limits: WsLimits {
            idle_timeout: Duration::from_secs(args.ws_idle_timeout),
            max_duration: Duration::from_secs(args.ws_max_duration),
            ..WsLimits::default()
        },
        metrics: metrics.clone().filter(|_| args.metrics_addr.is_none()),
    };
    let gw = Gateway::bind(&platform, platform.ws_apis(), &config)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = gw.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %args.data_dir.display(),
        ready_ms = started.elapsed().as_secs_f64() * 1000.0,
        "gateway ready"
    );
    // The first line on stdout: harnesses wait for it to learn the address.
    println!("NusaTrade listening on http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_server = match (metrics, args.metrics_addr) {
        (Some(handle), Some(maddr)) => {
            let listener = tokio::net::TcpListener::bind(maddr)
                .await
                .with_context(|| format!("cannot listen on {maddr} (--metrics-addr)"))?;
            tracing::info!(addr = %listener.local_addr()?, "metrics on their own address");
            let mut stop = stop_rx.clone();
            let app = nusatrade_local::metrics::router(handle);
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
            }))
        }
        _ => None,
    };
    // Queue workers and schedules: what the SQS event sources and EventBridge do in AWS.
    let jobs = platform.start_jobs(stop_rx.clone());
    // Operator-supplied candles for the ML default models (NUSATRADE_ML_SEED_DIR), before any request needs them.
    platform.seed_ml().await;
    let demo = if args.with_sim_connector { Some(demo::spawn(&args.data_dir, addr, stop_rx)?) } else { None };
    gw.serve(async move {
        gateway::shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await?;
    if let Some(task) = demo
        && tokio::time::timeout(Duration::from_secs(3), task).await.is_err()
    {
        tracing::warn!("the demo connector did not stop within 3 s");
    }
    if let Some(task) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    if tokio::time::timeout(Duration::from_secs(3), futures::future::join_all(jobs)).await.is_err() {
        tracing::warn!("queue workers still busy after 3 s; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}
