//! The ML pipeline on the AWS adapters (moto: DynamoDB, S3, SQS — `NUSATRADE_MOTO_ENDPOINT`, see
//! `common::moto_endpoint`): a dataset's month chunks and a model's artefact are written to and read back from
//! S3 under the documented keys, the training job travels through SQS to the consumer, predictions are stored
//! in DynamoDB, a tampered artefact (one changed byte, checksum left as is) and a swapped one (another model's
//! valid artefact) are refused, and deleting the model deletes its objects.

mod common;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use nusatrade_app::jobs::QueueConsumer;
use nusatrade_app::ml::artefacts::{self, ArtefactStoreError};
use nusatrade_app::ml::defaults::generated_series;
use nusatrade_app::ml::service::{ModelInput, PredictCandles};
use nusatrade_app::ml::store::{DatasetSource, Owner, TrainingStatus};
use nusatrade_app::ml::{ML_TRAIN_QUEUE, MlConfig, MlService, MlTrainConsumer, ModelCache, routes};
use nusatrade_app::ports::queue::dlq_name;
use nusatrade_aws::config::s3_client;
use nusatrade_aws::{AwsSettings, DynamoStore, S3Blobs, SqsQueue, build_ports_from};
use nusatrade_ml::{ModelKind, Timeframe};
use uuid::Uuid;

use common::{moto_endpoint, sdk, unique};

fn csv(bars: usize) -> String {
    let s = generated_series("EURUSD", bars, chrono::Utc::now());
    let mut out = String::from("time,open,high,low,close,volume\n");
    for c in s.candles() {
        out.push_str(&format!("{},{},{},{},{},{}\n", c.time.timestamp(), c.open, c.high, c.low, c.close, c.volume));
    }
    out
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list");
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

#[tokio::test]
async fn artefacts_on_s3_jobs_through_sqs_and_tampering_refused() {
    let sdk = sdk().await;
    let table = unique("nusatrade");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.expect("table");
    let bucket = unique("nusatrade");
    let s3 = s3_client(&sdk);
    S3Blobs::create_bucket(&s3, &bucket).await.expect("bucket");
    let queue_name = unique("ml-train");
    let (url, dlq_url) =
        SqsQueue::create_queue_pair(&aws_sdk_sqs::Client::new(&sdk), &queue_name, 5).await.expect("queues");
    let mut settings = AwsSettings::for_endpoint(moto_endpoint());
    settings.table = Some(table);
    settings.bucket = Some(bucket.clone());
    // The logical queue `ml-train` is this test's own queue.
    settings.queue_urls.insert(ML_TRAIN_QUEUE.into(), url);
    settings.queue_urls.insert(dlq_name(ML_TRAIN_QUEUE), dlq_url);
    let ports = build_ports_from(&sdk, &settings);
    let ml = MlService::new(&ports, None, MlConfig::default(), ModelCache::new(4));
    let consumer = MlTrainConsumer::new(ml.clone());
    let user = Uuid::new_v4();

    // The dataset: month chunks on S3.
    let up = ml
        .datasets
        .upload_csv(Owner::User(user), "EURUSD", Timeframe::H1, csv(1_500).as_bytes(), DatasetSource::Upload)
        .await
        .expect("upload");
    assert_eq!(up.record.bars, 1_500);
    let chunks = list(&s3, &bucket, &format!("datasets/{user}/EURUSD/H1/")).await;
    assert_eq!(chunks.len(), up.record.chunks.len(), "{chunks:?}");

    // A model trained through SQS.
    let config = routes::parse_config(
        ModelKind::GradientBoosting,
        Timeframe::H1,
        Some(&serde_json::json!({"hyperparameters": {"iterations": 10, "max_depth": 3, "nbins": 32}})),
    )
    .unwrap();
    let input = |name: &str| ModelInput {
        name: name.into(),
        symbol: "EURUSD",
        timeframe: Timeframe::H1,
        strategy_id: None,
        config: config.clone(),
    };
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let m = ml.create_model(user, input(name)).await.expect("create");
        ml.request_training(user, m.id, Default::default()).await.expect("queued on SQS");
        let msg = ports
            .queue
            .receive(ML_TRAIN_QUEUE, 1, Duration::from_secs(600), Duration::from_secs(5))
            .await
            .expect("receive")
            .pop()
            .expect("the job arrived");
        consumer.handle(&msg).await.expect("trained");
        ports.queue.delete(ML_TRAIN_QUEUE, &msg.receipt).await.unwrap();
        let rec = ml.get_model(user, m.id).await.unwrap();
        assert_eq!(rec.training_status, TrainingStatus::Completed, "{:?}", rec.training_error);
        ids.push(m.id);
    }
    let (a, b) = (ids[0], ids[1]);
    let key = format!("models/{user}/{a}/v1/model.json.gz");
    assert_eq!(list(&s3, &bucket, &format!("models/{user}/{a}/")).await, vec![key.clone()]);

    // Predictions read the artefact from S3 once, then from the cache; they are stored in DynamoDB.
    let p = ml.predict(user, a, None, PredictCandles::Stored).await.expect("predict");
    ml.predict(user, a, None, PredictCandles::Stored).await.expect("predict warm");
    assert_eq!(ml.cache.stats().2, 1, "one cold load");
    let (listed, _) = ml.predictions(user, a, 10, None).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].record.id, p.record.id, "newest first");

    // Tampering: one changed byte in the (plain JSON) document, the checksum inside left as it was.
    let rec = ml.get_model(user, a).await.unwrap();
    let (loc, checksum) = (rec.artefact.unwrap(), rec.artefact_checksum.unwrap());
    let original =
        s3.get_object().bucket(&bucket).key(&key).send().await.unwrap().body.collect().await.unwrap().into_bytes();
    let decoded = nusatrade_ml::artefact::decode(&original, 1 << 26).unwrap();
    let (plain, _) = nusatrade_ml::artefact::encode(&decoded.artefact, nusatrade_ml::Encoding::Json, 1 << 26).unwrap();
    let tampered = String::from_utf8(plain).unwrap().replacen("\"fit_millis\":", "\"fit_millis\":9", 1);
    s3.put_object().bucket(&bucket).key(&key).body(ByteStream::from(tampered.into_bytes())).send().await.unwrap();
    let err = artefacts::read(ports.blobs.as_ref(), Owner::User(user), &loc, &checksum).await.unwrap_err();
    assert!(matches!(err, ArtefactStoreError::Artefact(nusatrade_ml::ArtefactError::ChecksumMismatch { .. })), "{err}");
    // Swapped for model b's valid artefact: refused by the checksum the record expects.
    let other = s3
        .get_object()
        .bucket(&bucket)
        .key(format!("models/{user}/{b}/v1/model.json.gz"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    s3.put_object().bucket(&bucket).key(&key).body(ByteStream::from(other.to_vec())).send().await.unwrap();
    let err = artefacts::read(ports.blobs.as_ref(), Owner::User(user), &loc, &checksum).await.unwrap_err();
    assert!(matches!(err, ArtefactStoreError::Replaced { .. }), "{err}");

    // Deleting the model deletes its objects (and only its own).
    ml.delete_model(user, a).await.expect("delete");
    assert!(list(&s3, &bucket, &format!("models/{user}/{a}/")).await.is_empty());
    assert_eq!(list(&s3, &bucket, &format!("models/{user}/{b}/")).await.len(), 1);
    assert!(ml.predictions(user, a, 10, None).await.is_err(), "gone with its model");
}
