//! Reconciliation, ack timeouts and trailing stops (issue #6; `nusatrade_app::contract::reconcile`) over the real
//! order use cases on the embedded store, in memory and on disk.

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::{Clock, ItemStore};
use nusatrade_local::adapters::EmbeddedStore;
use uuid::Uuid;

struct InMemory;

#[async_trait]
impl StoreFactory for InMemory {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::temporary(clock).unwrap())
    }
}

/// The embedded store on disk, in a directory that lives as long as the factory (one case).
struct OnDisk(tempfile::TempDir);

impl OnDisk {
    fn new() -> OnDisk {
        OnDisk(tempfile::tempdir().unwrap())
    }
}

#[async_trait]
impl StoreFactory for OnDisk {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::open(&self.0.path().join(format!("{}.redb", Uuid::new_v4().simple())), clock).unwrap())
    }
}

mod in_memory {
    nusatrade_app::reconcile_contract!(super::InMemory);
}

mod on_disk {
    nusatrade_app::reconcile_contract!(super::OnDisk::new());
}

/// The local scheduler puts exactly the template's EventBridge schedules on the queue: same bodies, same rates.
#[test]
fn local_schedules_are_the_templates() {
    let template = include_str!("../../../template.yaml");
    for s in nusatrade_app::reconcile::SCHEDULES {
        let input = format!("Input: '{}'", s.body);
        let at = template.find(&input).unwrap_or_else(|| panic!("no schedule with {input} in template.yaml"));
        let block = &template[template[..at].rfind("Type: AWS::Scheduler::Schedule").expect("a schedule")..at];
        let rate = match s.every.as_secs() {
            60 => "rate(1 minute)".to_owned(),
            n => format!("rate({} minutes)", n / 60),
        };
        assert!(block.contains(&format!("ScheduleExpression: {rate}")), "{} runs at {rate}: {block}", s.name);
        assert!(block.contains("Arn: !GetAtt ReconcileQueue.Arn"), "{block}");
    }
}
