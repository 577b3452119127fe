//! Harness for the end-to-end tests: starts the real `nusatrade` binary (the local gateway) on a free
//! loopback port with its own data dir, and talks to it over HTTP and WebSocket.
//!
//! The binary is the one cargo built for this workspace (`target/<profile>/nusatrade`);
//! `cargo test --workspace` (and `tests/run.sh`) build it before running tests. Override with
//! `NUSATRADE_BIN`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the `nusatrade` binary is.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("NUSATRADE_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/nusatrade
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(|d| d.parent()).context("unexpected test executable location")?;
    let bin = profile_dir.join(format!("nusatrade{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("{} not found: build it first (cargo build -p nusatrade-local) or run tests/run.sh", bin.display());
    }
    Ok(bin)
}

/// A running gateway process. Killed on drop.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// How long the process took from spawn to its ready line.
    pub ready_after: Duration,
    pub data_dir: tempfile::TempDir,
    stderr_log: PathBuf,
}

impl Gateway {
    /// Starts `nusatrade serve` with extra arguments on a free port and waits for its ready line.
    pub async fn start(extra: &[&str]) -> anyhow::Result<Gateway> {
        Self::start_with_env(extra, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables for the child (e.g. cheap argon2
    /// parameters, rate limits).
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Gateway> {
        Self::start_in(tempfile::tempdir()?, extra, env).await
    }

    /// [`start_with_env`](Self::start_with_env) on an existing data dir (one a stopped gateway handed
    /// back with [`stop`](Self::stop)): a second process on the same data.
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Gateway> {
        let stderr_log = data_dir.path().join("gateway.log");
        let log_file = std::fs::File::create(&stderr_log)?;
        let started = Instant::now();
        let mut child = Command::new(binary()?)
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("spawn nusatrade")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("gateway did not become ready within 30 s")??
            .with_context(|| {
                format!("gateway exited before ready: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default())
            })?;
        let ready_after = started.elapsed();
        let base = line
            .strip_prefix("NusaTrade listening on ")
            .with_context(|| format!("unexpected ready line {line:?}"))?
            .trim()
            .to_owned();
        // keep draining stdout so the child never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Gateway { child, base, ready_after, data_dir, stderr_log })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base.replacen("http://", "ws://", 1))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The gateway's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Terminates the process and hands back its data dir (for [`start_in`](Self::start_in)).
    pub async fn stop(mut self) -> anyhow::Result<tempfile::TempDir> {
        let pid = self.child.id().context("already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.context("no exit within 10 s")??;
        Ok(self.data_dir)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        Ok(tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.context("no exit within 10 s")??)
    }
}

/// An HTTP client for tests (no proxies, short timeouts).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("http client")
}
