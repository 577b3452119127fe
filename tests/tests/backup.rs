//! Backups end to end with the real binary: `nusatrade backup` of a data dir a gateway wrote, `backups`,
//! `restore` into a new data dir, a gateway serving the restored data (a registered user logs in, their
//! broker connection is there); refusals: a data dir in use, a non-empty target, a corrupted file, an
//! incomplete backup.

use std::path::Path;
use std::process::Output;

use nusatrade_tests::{Gateway, TEST_ENV, binary, http, send, trader};
use serde_json::json;

async fn nusatrade(args: &[&str]) -> Output {
    tokio::process::Command::new(binary().unwrap())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run nusatrade")
}

/// `nusatrade args`, which must succeed.
async fn succeeds(args: &[&str]) -> Output {
    let out = nusatrade(args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

/// `nusatrade args`, which must fail saying `why` on stderr.
async fn refused(args: &[&str], why: &str) {
    let out = nusatrade(args).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

async fn login(gw: &Gateway, email: &str) -> reqwest::Response {
    http()
        .post(gw.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": "Str0ng!pass"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn backup_restore_into_a_new_data_dir_and_serve_it() {
    // A gateway writes some data, then stops.
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "backup-e2e@example.com").await.unwrap();
    let (s, _) = send(&gw, "GET", "/api/v1/auth/me", &token, None).await;
    assert_eq!(s, 200);
    // While the gateway holds the data dir, the CLI says so instead of failing obscurely.
    let source = gw.data_dir.path().join("data");
    refused(&["backup", "--data-dir", path(&source)], "nusatrade serve").await;
    let source_dir = gw.stop().await.unwrap();

    // Back up: the id on stdout.
    let out = succeeds(&["backup", "--data-dir", path(&source), "--segments", "3"]).await;
    let id = text(&out.stdout).trim().to_owned();
    assert!(id.len() > 17 && id.as_bytes()[8] == b'T', "backup id on stdout: {id:?}");
    assert!(text(&out.stderr).contains("complete"), "{}", text(&out.stderr));
    let backup_dir = source.join("blobs/backups").join(&id);
    for f in ["manifest.json", "segment-0000.jsonl.gz", "segment-0001.jsonl.gz", "segment-0002.jsonl.gz"] {
        assert!(backup_dir.join(f).is_file(), "{f}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["backup_id"], id.as_str());
    assert!(manifest["item_count"].as_u64().unwrap() >= 3, "user, e-mail index, session, connection: {manifest}");

    // Listed, and it verifies.
    let out = succeeds(&["backups", "--data-dir", path(&source), "--verify"]).await;
    let listing = text(&out.stdout);
    assert!(listing.contains(&id) && listing.contains("complete") && listing.contains("verified"), "{listing}");

    // Restore into a new data dir.
    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("data");
    let out = succeeds(&["restore", &id, "--data-dir", path(&target), "--from", path(&source)]).await;
    let report = text(&out.stdout);
    assert!(report.contains("count verified exactly"), "{report}");
    assert!(report.contains(&format!("{} items written", manifest["item_count"])), "{report}");

    // Once more into the same (now non-empty) data dir: refused.
    refused(&["restore", &id, "--data-dir", path(&target), "--from", path(&source)], "not empty").await;

    // Serve the restored data dir: the user logs in, their connection is there.
    let restored = Gateway::start_in(target_dir, &[], TEST_ENV).await.unwrap();
    let r = login(&restored, "backup-e2e@example.com").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (s, me) = send(&restored, "GET", "/api/v1/auth/me", &token, None).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["email"], "backup-e2e@example.com");
    let (s, list) = send(&restored, "GET", "/api/v1/brokers/connections", &token, None).await;
    assert_eq!(s, 200, "{list}");
    assert!(list.to_string().contains(&conn), "{list}");
    assert_eq!(login(&restored, "nobody@example.com").await.status(), 401);
    drop(restored);

    // A corrupted file: `backups --verify` fails, and so does a restore, writing nothing.
    let segment = (0..3)
        .map(|i| backup_dir.join(format!("segment-{i:04}.jsonl.gz")))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let original = std::fs::read(&segment).unwrap();
    let mut corrupted = original.clone();
    let mid = corrupted.len() / 2;
    corrupted[mid] ^= 0x20;
    std::fs::write(&segment, &corrupted).unwrap();
    let out = nusatrade(&["backups", "--data-dir", path(&source), "--verify"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stdout).contains("DOES NOT VERIFY"), "{}", text(&out.stdout));
    let other = tempfile::tempdir().unwrap();
    let other_data = other.path().join("data");
    refused(&["restore", &id, "--data-dir", path(&other_data), "--from", path(&source)], "SHA-256").await;
    std::fs::write(&segment, &original).unwrap();
    // Nothing was written: the same target takes the restore once the file is repaired.
    succeeds(&["restore", &id, "--data-dir", path(&other_data), "--from", path(&source)]).await;

    // Without its manifest a backup is incomplete: listed as such, never restored.
    std::fs::remove_file(backup_dir.join("manifest.json")).unwrap();
    let out = nusatrade(&["backups", "--data-dir", path(&source)]).await;
    assert!(text(&out.stdout).contains("incomplete"), "{}", text(&out.stdout));
    let fresh = tempfile::tempdir().unwrap();
    let fresh_data = fresh.path().join("data");
    refused(&["restore", &id, "--data-dir", path(&fresh_data), "--from", path(&source)], "incomplete").await;
    assert!(!fresh_data.exists(), "nothing created for a backup that cannot be restored");
    drop(source_dir);
}
