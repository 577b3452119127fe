//! `nusatrade admin grant|revoke|list` as an operator runs it: the real binary on a data dir, and with `--aws-table`
//! on a DynamoDB table on moto (`NUSATRADE_MOTO_ENDPOINT`, as the AWS contract suites; unset: the AWS case fails).

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use chrono::Utc;
use nusatrade_app::auth::store::{UserRecord, email_key, user_key};
use nusatrade_app::ports::{Clock, Item, ItemStore, SystemClock};
use nusatrade_local::adapters::EmbeddedStore;
use uuid::Uuid;

fn nusatrade(args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nusatrade"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("NUSATRADE_DATA_DIR")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run nusatrade")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

async fn add_user(store: &dyn ItemStore, email: &str) -> Uuid {
    let id = Uuid::new_v4();
    let now = Utc::now();
    let user = UserRecord {
        id,
        email: email.into(),
        full_name: None,
        role: "trader".into(),
        subscription_tier: "free".into(),
        password_hash: "$argon2id$unused".into(),
        email_verified: true,
        totp_enabled: false,
        totp_secret: None,
        totp_last_step: None,
        settings: Default::default(),
        created_at: now,
        updated_at: now,
    };
    store.put(Item::from_record(&user_key(id), &user).unwrap(), None).await.unwrap();
    store.put(Item::new(&email_key(email)).with("user_id", id.to_string()), None).await.unwrap();
    id
}

async fn role(store: &dyn ItemStore, id: Uuid) -> String {
    store.get(&user_key(id)).await.unwrap().unwrap().to_record::<UserRecord>().unwrap().role
}

fn open(dir: &Path) -> EmbeddedStore {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    EmbeddedStore::open(&dir.join("store.redb"), clock).unwrap()
}

#[tokio::test]
async fn grant_list_and_revoke_on_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    // no store yet: a clear refusal
    let o = nusatrade(&["admin", "grant", "ana@example.com", "--data-dir", d], &[]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("holds no store"), "{:?}", text(&o));

    std::fs::create_dir_all(&data).unwrap();
    let id = {
        let store = open(&data);
        add_user(&store, "ana@example.com").await
    };
    let o = nusatrade(&["admin", "grant", "Ana@Example.com", "--data-dir", d], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains(&format!("ana@example.com (user {id}) is now an admin")), "{:?}", text(&o));
    let o = nusatrade(&["admin", "list", "--data-dir", d], &[]);
    assert!(text(&o).0.starts_with(&format!("ana@example.com\t{id}\t")), "{:?}", text(&o));
    assert_eq!(role(&open(&data), id).await, "admin");

    // while another process holds the store: refused with a hint
    let held = open(&data);
    let o = nusatrade(&["admin", "revoke", "ana@example.com", "--data-dir", d], &[]);
    assert!(!o.status.success() && text(&o).1.contains("stop it first"), "{:?}", text(&o));
    drop(held);

    let o = nusatrade(&["admin", "revoke", "ana@example.com", "--data-dir", d], &[]);
    assert!(o.status.success() && text(&o).0.contains("is no longer an admin"), "{:?}", text(&o));
    assert_eq!(role(&open(&data), id).await, "trader");
    let o = nusatrade(&["admin", "grant", "bob@example.com", "--data-dir", d], &[]);
    assert!(!o.status.success() && text(&o).1.contains("no account with the e-mail bob@example.com"), "{:?}", text(&o));
}

#[tokio::test]
async fn grant_on_the_deployed_table_with_the_operators_credentials() {
    let endpoint = std::env::var("NUSATRADE_MOTO_ENDPOINT")
        .expect("NUSATRADE_MOTO_ENDPOINT is not set: this test needs moto (tests/run.sh starts it)");
    let sdk = nusatrade_aws::sdk_config_for_endpoint(&endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("nusatrade-admin-{}", Uuid::new_v4().simple());
    nusatrade_aws::DynamoStore::create_table(&client, &table).await.expect("create the table on moto");
    let store = nusatrade_aws::DynamoStore::new(client, table.clone(), Arc::new(SystemClock));
    let id = add_user(&store, "ops@example.com").await;

    let aws = [("NUSATRADE_AWS_ENDPOINT", endpoint.as_str()), ("AWS_REGION", "us-east-1")];
    let creds = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];
    let env: Vec<(&str, &str)> = aws.iter().chain(creds.iter()).copied().collect();
    let o = nusatrade(&["admin", "grant", "ops@example.com", "--aws-table", &table], &env);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("is now an admin"), "{:?}", text(&o));
    assert_eq!(role(&store, id).await, "admin");
    let o = nusatrade(&["admin", "list", "--aws-table", &table], &env);
    assert!(text(&o).0.contains(&id.to_string()), "{:?}", text(&o));

    // without credentials in the environment: refused before any call (an emulator endpoint would invent test
    // ones, so this runs against the real endpoints' configuration)
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nusatrade"))
        .args(["admin", "list", "--aws-table", &table])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("NUSATRADE_AWS_ENDPOINT")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).1.contains("no AWS credentials"), "{:?}", text(&o));
}
