//! `nusatrade serve --with-sim-connector`: a demo user and a simulated connector in the gateway's process, so a
//! new user sees trades flow with one command.
//!
//! The demo user is `demo@nusatrade.local`. Its password comes from `NUSATRADE_DEMO_PASSWORD`, else from
//! `<data-dir>/demo.password` (generated on first start, mode 0600, so restarts keep it); it is printed on start.
//! The user is registered over HTTP if missing and its e-mail verified the way a person would: the verification
//! link is read from the local file mailer (`<data-dir>/mail/`) and its token posted to `POST
//! /auth/verify-email` (a new mail is requested once if no usable link is found). Orders need a verified e-mail
//! while `NUSATRADE_REQUIRE_EMAIL_VERIFICATION` is on (the default). The connector keeps its paper account in
//! `<data-dir>/sim-connector.state.json` ([`DEMO_STATE_FILE`]); an unusable one is moved to `….corrupt` and a fresh
//! account started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nusatrade_app::ports::Email;
use rand::Rng;
use rand::distr::Alphanumeric;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use nusatrade_sim::connector::{Api, ApiError, Backoff, ConnectorConfig, ConnectorError, Registration, SimConnector};

use crate::adapters::FileMailer;

/// The demo user's e-mail.
pub const DEMO_EMAIL: &str = "demo@nusatrade.local";
/// Environment variable holding the demo password.
pub const ENV_DEMO_PASSWORD: &str = "NUSATRADE_DEMO_PASSWORD";
/// File in the data dir holding the generated demo password.
pub const DEMO_PASSWORD_FILE: &str = "demo.password";
/// File in the data dir holding the demo connector's paper account and executed commands
/// ([`nusatrade_sim::connector::state`]), so a restarted `serve --with-sim-connector` keeps the demo positions.
pub const DEMO_STATE_FILE: &str = "sim-connector.state.json";

/// Why the demo could not be set up.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The password file cannot be read or written.
    #[error("demo password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The connector settings are wrong.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// An HTTP call of the set-up failed.
    #[error("demo user set-up: {0}")]
    Api(#[from] ApiError),
    /// The demo user exists with another password.
    #[error(
        "the demo user {DEMO_EMAIL} exists with another password: set {ENV_DEMO_PASSWORD} to it (or use a fresh --data-dir)"
    )]
    WrongPassword,
    /// No verification link could be found in the mail folder.
    #[error("no e-mail verification link for {DEMO_EMAIL} in {0}")]
    NoVerificationMail(PathBuf),
    /// The mail folder cannot be read.
    #[error("cannot read the mail folder: {0}")]
    Mail(String),
}

/// Where the demo password came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// `NUSATRADE_DEMO_PASSWORD`.
    Env,
    /// The password file (`generated`: created just now).
    File {
        /// The file.
        path: PathBuf,
        /// Created on this start.
        generated: bool,
    },
}

/// The demo password: `NUSATRADE_DEMO_PASSWORD`, else `<data_dir>/demo.password`, generated (and kept, mode
/// 0600) when missing. Generated passwords satisfy the password policy.
pub fn demo_password(data_dir: &Path) -> Result<(String, PasswordSource), DemoError> {
    if let Ok(p) = std::env::var(ENV_DEMO_PASSWORD)
        && !p.trim().is_empty()
    {
        return Ok((p, PasswordSource::Env));
    }
    let path = data_dir.join(DEMO_PASSWORD_FILE);
    let err = |source| DemoError::PasswordFile { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => {
            return Ok((s.trim().to_owned(), PasswordSource::File { path, generated: false }));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let random: String = rand::rng().sample_iter(&Alphanumeric).take(12).map(char::from).collect();
    // Upper, lower, digit and special character whatever the random part holds.
    let password = format!("Demo-{random}-7x");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(err)?;
    std::io::Write::write_all(&mut f, password.as_bytes()).map_err(err)?;
    Ok((password, PasswordSource::File { path, generated: true }))
}

/// The verification token of the newest verification mail to `email` (the `token` parameter of its link).
pub fn verification_token(mails: &[Email], email: &str) -> Option<String> {
    mails.iter().rev().filter(|m| m.to.eq_ignore_ascii_case(email)).find_map(|m| {
        let start = m.text.find("verify-email?token=")? + "verify-email?token=".len();
        let token: String =
            m.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.~%".contains(*c)).collect();
        (!token.is_empty()).then_some(token)
    })
}

/// Makes sure the demo user exists, can log in with `password` and has a verified e-mail.
pub async fn prepare_demo_user(api: &Api, mail_dir: &Path, password: &str) -> Result<(), DemoError> {
    let tokens = match api.register(DEMO_EMAIL, password, "NusaTrade Demo").await? {
        Registration::Created(t) => {
            info!(email = DEMO_EMAIL, "demo user registered");
            t
        }
        Registration::AlreadyRegistered => match api.login(DEMO_EMAIL, password).await {
            Ok(t) => t,
            Err(e) if e.status() == Some(401) => return Err(DemoError::WrongPassword),
            Err(e) => return Err(e.into()),
        },
    };
    if api.me(&tokens.access).await?.get("email_verified").and_then(serde_json::Value::as_bool) == Some(true) {
        return Ok(());
    }
    let mailer = FileMailer::new(mail_dir.to_path_buf());
    let mut asked_again = false;
    loop {
        let mails = mailer.sent().await.map_err(|e| DemoError::Mail(e.to_string()))?;
        match verification_token(&mails, DEMO_EMAIL) {
            Some(token) => match api.verify_email(&token).await {
                Ok(()) => {
                    info!(email = DEMO_EMAIL, "demo user's e-mail verified with the mailed link");
                    return Ok(());
                }
                // Used or expired: ask for a new one, once.
                Err(e) if e.status() == Some(400) && !asked_again => {}
                Err(e) => return Err(e.into()),
            },
            None if asked_again => return Err(DemoError::NoVerificationMail(mail_dir.to_path_buf())),
            None => {}
        }
        api.resend_verification(&tokens.access).await?;
        asked_again = true;
    }
}

/// Starts the demo in the background against the gateway at `addr` (the loopback address when it listens on
/// every interface): prints the demo credentials, prepares the user, then runs a simulated connector (random
/// walk over the default symbols, one tick per second) until `shutdown`.
pub fn spawn(data_dir: &Path, addr: SocketAddr, shutdown: watch::Receiver<bool>) -> Result<JoinHandle<()>, DemoError> {
    let (password, source) = demo_password(data_dir)?;
    match &source {
        PasswordSource::Env => println!("Demo user: {DEMO_EMAIL} (password from {ENV_DEMO_PASSWORD})"),
        PasswordSource::File { path, .. } => {
            println!("Demo user: {DEMO_EMAIL} / {password} (kept in {})", path.display())
        }
    }
    let ip = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        addr.ip()
    };
    let server = format!("http://{}", SocketAddr::new(ip, addr.port()));
    let mut config = ConnectorConfig::new(&server, DEMO_EMAIL, &password);
    config.reconnect = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(30), max_attempts: 0 };
    config.state_file = Some(data_dir.join(DEMO_STATE_FILE));
    config.set_aside_unusable_state = true;
    let connector = SimConnector::new(config)?;
    let api = Api::new(&server, Duration::from_secs(30)).map_err(ConnectorError::Url)?;
    let mail_dir = data_dir.join("mail");
    Ok(tokio::spawn(async move {
        if let Err(e) = prepare_demo_user(&api, &mail_dir, &password).await {
            warn!(error = %e, "demo user set-up failed: the simulated connector is not started");
            return;
        }
        if let Err(e) = connector.run(shutdown).await {
            warn!(error = %e, "the demo's simulated connector stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str, text: &str) -> Email {
        Email { to: to.into(), subject: "Confirm your NusaTrade e-mail address".into(), text: text.into() }
    }

    #[test]
    fn the_newest_link_to_the_demo_user_wins() {
        let mails = [
            mail(DEMO_EMAIL, "open http://x/verify-email?token=old_Token-1\nthanks"),
            mail("someone@example.com", "http://x/verify-email?token=not-ours"),
            mail(DEMO_EMAIL, "Reset: http://x/reset-password?token=reset"),
            mail(DEMO_EMAIL, "Confirm: http://x/verify-email?token=new_Token-2\n"),
            mail("someone@example.com", "http://x/verify-email?token=not-ours-either"),
        ];
        assert_eq!(verification_token(&mails, DEMO_EMAIL).as_deref(), Some("new_Token-2"));
        assert_eq!(verification_token(&mails[..2], DEMO_EMAIL).as_deref(), Some("old_Token-1"));
        assert_eq!(verification_token(&mails[2..3], DEMO_EMAIL), None);
    }

    #[test]
    fn the_generated_password_is_kept_and_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The variable is not set in unit tests; if a developer has it set, the file path is not exercised.
        if std::env::var(ENV_DEMO_PASSWORD).is_ok() {
            return;
        }
        let (first, source) = demo_password(dir.path()).expect("generated");
        assert_eq!(source, PasswordSource::File { path: dir.path().join(DEMO_PASSWORD_FILE), generated: true });
        assert_eq!(nusatrade_domain::auth::check_password_policy(&first), Ok(()));
        let (again, source) = demo_password(dir.path()).expect("read back");
        assert_eq!(again, first);
        assert!(matches!(source, PasswordSource::File { generated: false, .. }));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEMO_PASSWORD_FILE)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
