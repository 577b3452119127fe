//! Costs behind authentication: verifying an access token (every authenticated request) and one
//! argon2id password verification at the production parameters (every login).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use nusatrade_app::auth::TokenKind;
use nusatrade_app::auth::config::Argon2Params;
use nusatrade_app::auth::passwords::PasswordHasher;
use nusatrade_app::auth::tokens::TokenService;
use nusatrade_app::ports::SystemClock;
use std::time::Duration;

fn bench_auth(c: &mut Criterion) {
    let tokens = TokenService::new(
        b"bench-secret-bench-secret-bench-secret!!",
        Duration::from_secs(3600),
        Duration::from_secs(7 * 86400),
        Arc::new(SystemClock),
    );
    let pair = tokens.issue(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4()).expect("issue");
    c.bench_function("token_verify_access", |b| {
        b.iter(|| tokens.verify(std::hint::black_box(&pair.access_token), TokenKind::Access).expect("valid"))
    });
    c.bench_function("token_issue_pair", |b| {
        b.iter(|| tokens.issue(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4()).expect("issue"))
    });

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hasher = PasswordHasher::new(Argon2Params::default(), 1).expect("params");
    let stored = rt.block_on(hasher.hash("Str0ng!pass")).expect("hash");
    let mut group = c.benchmark_group("argon2id_m65536_t3_p4");
    group.sample_size(10);
    group.bench_function("verify", |b| {
        b.to_async(&rt).iter(|| async { assert!(hasher.verify("Str0ng!pass", Some(&stored)).await.expect("answer")) })
    });
    group.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
