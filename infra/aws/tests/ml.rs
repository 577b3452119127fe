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
    nusatrade_ml::to_csv(&generated_series("EURUSD", bars, chrono::Utc::now()))
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list");
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

/// A fresh table, bucket and `ml-train` queue pair on moto, and the settings that name them (the logical queue
/// `ml-train` is the test's own queue).
async fn ml_settings(sdk: &aws_config::SdkConfig) -> AwsSettings {
    let table = unique("nusatrade");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(sdk), &table).await.expect("table");
    let bucket = unique("nusatrade");
    S3Blobs::create_bucket(&s3_client(sdk), &bucket).await.expect("bucket");
    let queue_name = unique("ml-train");
    let (url, dlq_url) =
        SqsQueue::create_queue_pair(&aws_sdk_sqs::Client::new(sdk), &queue_name, 5).await.expect("queues");
    let mut settings = AwsSettings::for_endpoint(moto_endpoint());
    settings.table = Some(table);
    settings.bucket = Some(bucket);
    settings.queue_urls.insert(ML_TRAIN_QUEUE.into(), url);
    settings.queue_urls.insert(dlq_name(ML_TRAIN_QUEUE), dlq_url);
    settings
}

#[tokio::test]
async fn artefacts_on_s3_jobs_through_sqs_and_tampering_refused() {
    let sdk = sdk().await;
    let settings = ml_settings(&sdk).await;
    let (s3, bucket) = (s3_client(&sdk), settings.bucket.clone().unwrap());
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

    // Models trained through SQS. Two configurations: one trains to the same bytes whenever the two fits take the
    // same milliseconds (the artefact records `fit_millis`), and a swap of identical bytes is no swap.
    let input = |name: &str, iterations: u32| ModelInput {
        name: name.into(),
        symbol: "EURUSD",
        timeframe: Timeframe::H1,
        strategy_id: None,
        config: routes::parse_config(
            ModelKind::GradientBoosting,
            Timeframe::H1,
            Some(&serde_json::json!({"hyperparameters": {"iterations": iterations, "max_depth": 3, "nbins": 32}})),
        )
        .unwrap(),
        auto_trading: Default::default(),
    };
    let mut ids = Vec::new();
    for (name, iterations) in [("a", 10), ("b", 11)] {
        let m = ml.create_model(user, input(name, iterations)).await.expect("create");
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
    assert_ne!(
        ml.get_model(user, a).await.unwrap().artefact_checksum,
        ml.get_model(user, b).await.unwrap().artefact_checksum
    );
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

/// The auto-trading cycle on DynamoDB: the lease (an expired one still in the table is taken over, a live one
/// makes the cycle `already_running`, the holder deletes it), the `ML#ACTIVE` index query, the day-slot
/// transaction with the prediction mark, the order through the order use case, and a resumed prediction placing
/// no second order.
#[tokio::test]
async fn auto_trading_cycle_lease_index_and_slots_on_dynamodb() {
    use std::sync::Arc;

    use nusatrade_app::auth::{AuthConfig, AuthService, RequestMeta};
    use nusatrade_app::ml::auto::{SCHEDULED_BUDGET, utc_day};
    use nusatrade_app::ml::store::{PredictionRecord, auto_lease_key, prediction_key};
    use nusatrade_app::ml::{AutoTradingSettings, CycleOrigin, CycleOutcome};
    use nusatrade_app::ports::store::TTL_ATTR;
    use nusatrade_app::ports::{Condition, Item, Query, Update};
    use nusatrade_app::suites::orders::RecordingPush;
    use nusatrade_app::trading::orders::{OrderService, TradingConfig};

    let sdk = sdk().await;
    let settings = ml_settings(&sdk).await;
    let mut ports = build_ports_from(&sdk, &settings);
    let push = Arc::new(RecordingPush::default());
    ports.push = push.clone();
    let orders = OrderService::new(&ports, TradingConfig::default()).with_ack_timeouts(None);
    let config = MlConfig { require_email_verification: false, ..MlConfig::default() };
    let ml = MlService::new(&ports, Some(orders.clone()), config, ModelCache::new(2));
    let consumer = MlTrainConsumer::new(ml.clone());
    let mut auth_config = AuthConfig::for_tests("moto-secret-moto-secret-moto-secret!!");
    auth_config.require_email_verification = false;
    let auth = AuthService::new(auth_config, ports.clone()).unwrap();
    let meta = RequestMeta { ip: "10.0.0.1".into(), user_agent: "moto".into() };
    let (out, _) = auth.register(&format!("{}@example.com", unique("auto")), "Str0ng!pass", None, &meta).await.unwrap();
    let user: Uuid = out.id.parse().unwrap();

    // A trained, active model whose every prediction trades.
    ml.datasets
        .upload_csv(Owner::User(user), "EURUSD", Timeframe::H1, csv(1_500).as_bytes(), DatasetSource::Upload)
        .await
        .expect("upload");
    let cfg = serde_json::json!({"hyperparameters": {"iterations": 8, "max_depth": 3, "nbins": 32},
        "label": {"kind": "binary", "horizon": 5, "threshold": 0.0}, "signal": {"min_confidence": 0.0}});
    let input = ModelInput {
        name: "auto".into(),
        symbol: "EURUSD",
        timeframe: Timeframe::H1,
        strategy_id: None,
        config: routes::parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&cfg)).unwrap(),
        auto_trading: AutoTradingSettings { confidence_threshold: 0.0, ..AutoTradingSettings::default() },
    };
    let model = ml.create_model(user, input).await.expect("create");
    ml.request_training(user, model.id, Default::default()).await.expect("queued");
    let msg = ports
        .queue
        .receive(ML_TRAIN_QUEUE, 1, Duration::from_secs(600), Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    consumer.handle(&msg).await.expect("trained");
    ml.activate(user, model.id).await.expect("activate");
    let ws = format!("ws-{}", Uuid::new_v4().simple());
    orders.registry().register_connector(&ws, user, "auto@example.com", Uuid::new_v4()).await.unwrap();

    // A live lease of another instance: already running.
    let now = chrono::Utc::now().timestamp();
    let lease = |ttl: i64| {
        Item::new(&auto_lease_key())
            .with("holder", Uuid::new_v4().to_string())
            .with("origin", "schedule")
            .with(TTL_ATTR, ttl)
    };
    ports.store.put(lease(now + 600), None).await.unwrap();
    let out = ml.auto_trading_cycle(CycleOrigin::Schedule, SCHEDULED_BUDGET).await.unwrap();
    assert_eq!(out, CycleOutcome::AlreadyRunning);
    // An expired lease DynamoDB has not removed yet counts as absent: taken over.
    ports.store.put(lease(now - 5), None).await.unwrap();
    let CycleOutcome::Completed(r) = ml.auto_trading_cycle(CycleOrigin::Schedule, SCHEDULED_BUDGET).await.unwrap()
    else {
        panic!("the expired lease blocks the cycle")
    };
    assert_eq!((r.models_checked, r.predictions_generated, r.trades_executed), (1, 1, 1), "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(ports.store.get(&auto_lease_key()).await.unwrap().is_none(), "released by its holder");
    assert_eq!(push.of_type(&ws, "TRADE_OPEN").len(), 1);
    assert_eq!(ml.trades_on(user, model.id, utc_day(chrono::Utc::now())).await.unwrap(), 1);
    let status = ml.cycle_status().await.unwrap();
    assert_eq!(status.result().unwrap().run_id, r.run_id);

    // Resumed after a "crash" before its outcome was recorded: the same order, the slot not taken twice.
    let q = Query::partition(format!("USER#{user}")).sk_prefix(format!("PRED#{}#", model.id)).descending();
    let p: PredictionRecord = ports.store.query(q).await.unwrap().items[0].to_record().unwrap();
    let order = p.executed_order_id.expect("order recorded");
    let key = prediction_key(user, model.id, p.id);
    ports
        .store
        .update(&key, Update::new().remove("auto_outcome").remove("executed_order_id"), Some(Condition::Exists))
        .await
        .unwrap();
    let CycleOutcome::Completed(r) = ml.auto_trading_cycle(CycleOrigin::Schedule, SCHEDULED_BUDGET).await.unwrap()
    else {
        panic!("no lease held")
    };
    assert_eq!((r.predictions_generated, r.trades_executed), (0, 1), "{r:?}");
    assert_eq!(push.of_type(&ws, "TRADE_OPEN").len(), 1, "no second order");
    assert_eq!(ml.trades_on(user, model.id, utc_day(chrono::Utc::now())).await.unwrap(), 1);
    let again: PredictionRecord = ports.store.get(&key).await.unwrap().unwrap().to_record().unwrap();
    assert_eq!(again.executed_order_id, Some(order));
}
