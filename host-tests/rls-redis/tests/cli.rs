//! The binary: flags, the ready line, refused configurations.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rls_redis::testing::RedisServer;

#[test]
fn binary_prints_its_address_when_ready() {
    let redis = RedisServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!("rls-redis-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("limits.json");
    std::fs::write(
        &config,
        r#"{"domains": [{"domain": "edge", "descriptors": [
            {"key": "k", "rate_limit": {"requests_per_unit": 1, "unit": "hour"}}]}]}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rls-redis"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &redis.url(),
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        line.starts_with(
            "rls-redis: serving envoy.service.ratelimit.v3.RateLimitService on 127.0.0.1:"
        ),
        "{line:?}"
    );
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
}

#[test]
fn bad_flags_and_configs_fail_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_rls-redis"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--redis is required"));

    let dir = std::env::temp_dir().join(format!("rls-redis-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("limits.json");
    std::fs::write(&config, r#"{"domains": [{"domain": ""}]}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rls-redis"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis",
            "redis://127.0.0.1:1",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("domains[0].domain: empty"));
}
