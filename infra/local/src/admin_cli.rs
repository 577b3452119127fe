//! `nusatrade admin grant|revoke|list`: the admin role, granted and revoked by e-mail by an operator — on a data dir
//! (the local platform; stop `nusatrade serve` first: the embedded store is held by one process) or, with
//! `--aws-table NAME`, on the deployed DynamoDB table with the operator's own AWS credentials from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`; e.g.
//! `eval "$(aws configure export-credentials --format env)"`). The same use case either way
//! (`nusatrade_app::auth::roles`); never reachable through a request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use nusatrade_app::auth::roles::{RoleError, Roles};
use nusatrade_app::ports::{Clock, ItemStore, RandomIds, SystemClock};

use crate::adapters::EmbeddedStore;
use crate::platform::STORE_FILE;

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
    /// Data directory whose accounts are changed (stop `nusatrade serve` on it first).
    #[arg(long, global = true, env = "NUSATRADE_DATA_DIR", default_value = "./.nusatrade")]
    pub data_dir: PathBuf,
    /// Change the accounts of the deployed platform instead: its DynamoDB table (the stack's `TableName` output),
    /// with the AWS credentials and region of the environment.
    #[cfg(feature = "aws")]
    #[arg(long, global = true, value_name = "NAME")]
    pub aws_table: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Make the account with this e-mail an admin.
    Grant { email: String },
    /// Make the admin with this e-mail a trader again.
    Revoke { email: String },
    /// List the admins (e-mail, user id, granted at).
    List,
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// The data dir's store, with a clear message when `nusatrade serve` holds it or there is none.
fn local_store(data_dir: &Path) -> anyhow::Result<Arc<dyn ItemStore>> {
    if !data_dir.join(STORE_FILE).is_file() {
        bail!(
            "{} holds no store ({STORE_FILE}): start `nusatrade serve --data-dir {0}` once and register the account first",
            data_dir.display()
        );
    }
    let store = EmbeddedStore::open(&data_dir.join(STORE_FILE), clock()).map_err(|e| {
        let hint = if e.to_string().contains("already open") {
            " (is `nusatrade serve` running on it? stop it first)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot open the store of {}{hint}: {e}", data_dir.display())
    })?;
    Ok(Arc::new(store))
}

/// The deployed table, reached with the environment's credentials (`NUSATRADE_AWS_ENDPOINT` points at an emulator).
#[cfg(feature = "aws")]
async fn aws_store(table: &str) -> anyhow::Result<Arc<dyn ItemStore>> {
    let mut settings = nusatrade_aws::AwsSettings::from_env().map_err(|e| anyhow::anyhow!("AWS settings: {e}"))?;
    settings.table = Some(table.to_owned());
    let sdk = nusatrade_aws::load_sdk_config(&settings).await;
    if sdk.credentials_provider().is_none() {
        bail!(
            "no AWS credentials in the environment: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
             AWS_SESSION_TOKEN), e.g. eval \"$(aws configure export-credentials --format env)\""
        );
    }
    if sdk.region().is_none() {
        bail!("no AWS region in the environment: export AWS_REGION (the stack's region)");
    }
    Ok(nusatrade_aws::PortsBuilder::new(&sdk, &settings).store().build().store)
}

/// Runs the command; prints what changed on stdout.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    #[cfg(feature = "aws")]
    let (store, by) = match &args.aws_table {
        Some(table) => (aws_store(table).await?, "cli:aws"),
        None => (local_store(&args.data_dir)?, "cli"),
    };
    #[cfg(not(feature = "aws"))]
    let (store, by) = (local_store(&args.data_dir)?, "cli");
    let roles = Roles::new(store, clock(), Arc::new(RandomIds));
    let explain = |e: RoleError| anyhow::anyhow!(e);
    match args.command {
        AdminCommand::Grant { email } => {
            let c = roles.grant_admin(&email, by).await.map_err(explain)?;
            if c.changed {
                println!("{} (user {}) is now an admin (was {})", c.email, c.user_id, c.previous);
            } else {
                println!("{} (user {}) is already an admin", c.email, c.user_id);
            }
        }
        AdminCommand::Revoke { email } => {
            let c = roles.revoke_admin(&email, by).await.map_err(explain)?;
            if c.changed {
                println!("{} (user {}) is no longer an admin", c.email, c.user_id);
            } else {
                println!("{} (user {}) was not an admin", c.email, c.user_id);
            }
        }
        AdminCommand::List => {
            let admins = roles.admins().await.map_err(explain)?;
            if admins.is_empty() {
                eprintln!("no admins");
            }
            for a in admins {
                println!("{}\t{}\t{}", a.email, a.user_id, a.granted_at);
            }
        }
    }
    Ok(())
}
