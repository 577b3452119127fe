//! Log setup for the CLI: human-readable by default, JSON lines with `--log-format json`.
//! Logs go to stderr; stdout carries only the CLI's own output (e.g. the ready line).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Level from `RUST_LOG`; by default `info`, with the per-request access lines (target `access`) only in JSON
/// (a terminal would scroll with every request; `RUST_LOG=info` shows them in the human format too).
pub fn init(format: LogFormat) {
    let default = match format {
        LogFormat::Human => "info,access=warn",
        LogFormat::Json => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
}
