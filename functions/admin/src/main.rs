//! Lambda entry point for the admin routes (`/api/v1/admin/...`, contract §2.12): the operator settings — secrets
//! sealed with envelope encryption under the stack's KMS key (`NUSATRADE_KMS_KEY_ID`) — their audit trail, and the
//! language-model and Redis checks. Admins only (the role is granted by an operator: `nusatrade admin grant EMAIL
//! --aws-table NAME`).
//!
//! Wiring only: logging, the auth settings, the AWS adapters it uses (DynamoDB for the settings, the audit trail and
//! the callers' sessions; KMS for the data keys) built once per execution environment, and the shared router served
//! through `lambda_http`. Request limits come from API Gateway's route throttling.

use nusatrade_app::admin::{self, AdminService, AdminState};
use nusatrade_app::auth::AuthConfig;
use nusatrade_app::{compose, trading};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("admin", |p| p.store()).await?;
    let auth = AuthConfig::from_env()?;
    let keys = nusatrade_aws::kms::key_wrapper_from_env().await?;
    let settings = compose::runtime_settings(&ports)?.with_keys(keys);
    // The language models `test-llm` reaches: Bedrock, OpenAI-compatible and Anthropic (as the `ai` function).
    let models: Option<std::sync::Arc<dyn nusatrade_app::ports::ModelFactory>> =
        Some(std::sync::Arc::new(nusatrade_aws::bedrock::AwsModels::from_env().await?));
    tracing::info!(?settings, "admin function initialised");
    let state =
        AdminState { auth: trading::authenticator(&auth, &ports), admin: AdminService::new(&ports, settings, models) };
    nusatrade_aws::runtime::serve(admin::router(state, None)).await
}
