//! `build_ports` from settings, against moto: every port built from one SDK config works; missing
//! settings give clear errors. Plus SQS FIFO queues and moto's API Gateway Management stub.
//!
//! moto vs. AWS here:
//! - moto's API Gateway Management API is a stub: `PostToConnection` answers 200 for any connection id
//!   (never 410 Gone) and only at the server's root (a stage path such as `/prod` gets 404). The Gone
//!   path is therefore tested against a local fake (`tests/contract.rs`, `push` cases).
//! - moto lets SES v2 send only from an identity created with `CreateEmailIdentity` (as SES in sandbox
//!   mode would for a verified one), and keeps sent messages in memory (`/moto-api/data.json`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use nusatrade_app::ports::{
    BlobError, BlobKey, Email, Item, Key, MailError, PushError, PushOutcome, QueueError, StoreError,
};
use nusatrade_aws::config::{queue_env_var, queue_name_from_env};
use nusatrade_aws::{AwsSettings, SqsQueue, build_ports};

use common::{moto_endpoint, sdk, unique};

#[tokio::test]
async fn build_ports_wires_every_adapter_from_settings() {
    let sdk = sdk().await;
    let table = unique("nusatrade");
    let bucket = unique("nusatrade");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    nusatrade_aws::DynamoStore::create_table(&dynamo, &table).await.unwrap();
    nusatrade_aws::S3Blobs::create_bucket(&nusatrade_aws::config::s3_client(&sdk), &bucket).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = unique("reconcile");
    let (url, dlq_url) = SqsQueue::create_queue_pair(&sqs, &name, 3).await.unwrap();
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let _ = ses.create_email_identity().email_identity("ops@nusatrade.test").send().await;

    // the settings exactly as a Lambda reads them from its environment
    let vars = vec![
        ("NUSATRADE_AWS_ENDPOINT".to_owned(), moto_endpoint()),
        ("NUSATRADE_TABLE".to_owned(), table.clone()),
        ("NUSATRADE_BUCKET".to_owned(), bucket),
        (queue_env_var(&name), url),
        (queue_env_var(&format!("{name}-dlq")), dlq_url),
        ("NUSATRADE_MAIL_FROM".to_owned(), "ops@nusatrade.test".to_owned()),
    ];
    let settings = AwsSettings::from_vars(vars).unwrap();
    assert_eq!(queue_name_from_env(&queue_env_var(&name)["NUSATRADE_QUEUE_URL_".len()..]), name);
    assert_eq!(settings.missing(), ["NUSATRADE_WS_ENDPOINT"]);
    let ports = build_ports(&settings).await;

    let k = Key::new(unique("USER#"), "PROFILE");
    ports.store.put(Item::new(&k).with("a", 1i64), None).await.unwrap();
    assert!(ports.store.get(&k).await.unwrap().is_some());

    // path-style S3 (a bucket subdomain of 127.0.0.1 would not resolve)
    let key = BlobKey::new("models/x/v1/model.json").unwrap();
    ports.blobs.put(&key, Bytes::from_static(b"{}"), "application/json").await.unwrap();
    assert_eq!(ports.blobs.get(&key, 10).await.unwrap(), Some(Bytes::from_static(b"{}")));

    ports.queue.send(&name, "job", Duration::ZERO).await.unwrap();
    let got = ports.queue.receive(&name, 1, Duration::from_secs(30), Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    ports.queue.delete(&name, &got[0].receipt).await.unwrap();
    assert!(
        ports
            .queue
            .receive(&format!("{name}-dlq"), 1, Duration::from_secs(1), Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );

    // without NUSATRADE_WS_ENDPOINT pushes go to the emulator endpoint: moto's stub says delivered
    assert_eq!(ports.push.post("anyConnection=", Bytes::from_static(b"{}")).await.unwrap(), PushOutcome::Delivered);

    ports
        .mailer
        .send(&Email { to: "trader@example.com".into(), subject: "Hi".into(), text: "secret link".into() })
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_settings_give_clear_errors() {
    // emulator settings with nothing configured: none of these calls reaches AWS
    let settings = AwsSettings::for_endpoint(moto_endpoint());
    let ports = build_ports(&settings).await;
    match ports.store.get(&Key::new("A", "B")).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("NUSATRADE_TABLE"), "{m}"),
        other => panic!("{other:?}"),
    }
    match ports.blobs.get(&BlobKey::new("a").unwrap(), 1).await {
        Err(BlobError::Unavailable(m)) => assert!(m.contains("NUSATRADE_BUCKET"), "{m}"),
        other => panic!("{other:?}"),
    }
    match ports.queue.send("reconcile", "m", Duration::ZERO).await {
        Err(QueueError::UnknownQueue(q)) => assert_eq!(q, "reconcile"),
        other => panic!("{other:?}"),
    }
    let email = Email { to: "a@example.com".into(), subject: "s".into(), text: "t".into() };
    match ports.mailer.send(&email).await {
        Err(MailError::Unavailable(m)) => assert!(m.contains("NUSATRADE_MAIL_FROM"), "{m}"),
        other => panic!("{other:?}"),
    }
    // the push falls back to the emulator endpoint; with none at all it is unconfigured
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
        .build();
    let bare = nusatrade_aws::build_ports_from(&sdk, &AwsSettings::default());
    match bare.push.post("c", Bytes::new()).await {
        Err(PushError::Unavailable(m)) => assert!(m.contains("NUSATRADE_WS_ENDPOINT"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fifo_queues_keep_order() {
    let client = aws_sdk_sqs::Client::new(&sdk().await);
    let name = format!("{}.fifo", unique("orders"));
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let q = SqsQueue::new(client, HashMap::from([("orders".to_owned(), url)]));
    use nusatrade_app::ports::Queue as _;
    for i in 0..3 {
        q.send("orders", &format!("m{i}"), Duration::ZERO).await.unwrap();
    }
    assert!(matches!(q.send("orders", "late", Duration::from_secs(1)).await, Err(QueueError::Invalid(_))));
    let got = q.receive("orders", 10, Duration::from_secs(30), Duration::from_secs(1)).await.unwrap();
    let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["m0", "m1", "m2"]);
}
