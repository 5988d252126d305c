//! The service against a real `redis-server`: replicas sharing one Redis enforce one limit, and
//! a Redis that is gone turns into UNAVAILABLE.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rls_redis::proto::{Code, Entry, RateLimitDescriptor, RateLimitRequest, RateLimitResponse};
use rls_redis::testing::RedisServer;
use rls_redis::{Config, Server};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;
use tonic_prost::ProstCodec;

// Day windows: a test never straddles a window's end except across midnight UTC.
const CONFIG: &str = r#"{"domains": [{"domain": "edge", "descriptors": [
    {"key": "rule", "value": "global", "rate_limit": {"requests_per_unit": 5, "unit": "day"}},
    {"key": "rule", "value": "per-client", "descriptors": [
        {"key": "client_id", "rate_limit": {"requests_per_unit": 2, "unit": "day"}},
        {"key": "client_id", "value": "batch", "rate_limit": {"requests_per_unit": 1, "unit": "day"}}]},
    {"key": "rule", "value": "blocked", "rate_limit": {"requests_per_unit": 0, "unit": "second"}}]}]}"#;

fn start_rls(redis: &RedisServer) -> Server {
    let config = Config::from_json(CONFIG).unwrap();
    Server::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        config,
        &redis.url(),
        "test",
    )
    .unwrap()
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
    }
}

fn request(descriptors: &[&[(&str, &str)]], hits_addend: u32) -> RateLimitRequest {
    RateLimitRequest {
        domain: "edge".into(),
        descriptors: descriptors.iter().map(|d| descriptor(d)).collect(),
        hits_addend,
    }
}

async fn ask(port: u16, req: RateLimitRequest) -> Result<RateLimitResponse, tonic::Status> {
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static(rls_redis::proto::SHOULD_RATE_LIMIT_PATH),
        ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn two_replicas_sharing_one_redis_enforce_one_limit() {
    let redis = RedisServer::start().unwrap();
    let a = start_rls(&redis);
    let b = start_rls(&redis);
    let mut codes = Vec::new();
    for i in 0..8 {
        let port = if i % 2 == 0 { a.port() } else { b.port() };
        let r = ask(port, request(&[&[("rule", "global")]], 0))
            .await
            .unwrap();
        let s = &r.statuses[0];
        let limit = s.current_limit.as_ref().unwrap();
        assert_eq!(limit.requests_per_unit, 5);
        assert_eq!(limit.unit, rls_redis::proto::Unit::Day as i32);
        let reset = s.duration_until_reset.as_ref().unwrap().seconds;
        assert!((1..=86_400).contains(&reset), "{reset}");
        assert_eq!(s.code, r.overall_code);
        codes.push((r.overall_code, s.limit_remaining));
    }
    let ok = Code::Ok as i32;
    let over = Code::OverLimit as i32;
    assert_eq!(
        codes,
        vec![
            (ok, 4),
            (ok, 3),
            (ok, 2),
            (ok, 1),
            (ok, 0),
            (over, 0),
            (over, 0),
            (over, 0)
        ]
    );
}

#[tokio::test]
async fn nested_descriptors_count_per_value_and_any_over_limit_is_overall() {
    let redis = RedisServer::start().unwrap();
    let rls = start_rls(&redis);
    let alice: &[(&str, &str)] = &[("rule", "per-client"), ("client_id", "alice")];
    let bob: &[(&str, &str)] = &[("rule", "per-client"), ("client_id", "bob")];
    let batch: &[(&str, &str)] = &[("rule", "per-client"), ("client_id", "batch")];
    let unlimited: &[(&str, &str)] = &[("tenant", "acme")];

    // alice: 2 a day; bob has his own counter; batch: 1 a day; tenant has no limit.
    for remaining in [1, 0] {
        let r = ask(rls.port(), request(&[alice, unlimited], 0))
            .await
            .unwrap();
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(r.statuses.len(), 2);
        assert_eq!(r.statuses[0].limit_remaining, remaining);
        assert_eq!(r.statuses[1].code, Code::Ok as i32);
        assert!(r.statuses[1].current_limit.is_none());
        assert!(r.statuses[1].duration_until_reset.is_none());
    }
    let r = ask(rls.port(), request(&[bob, alice], 0)).await.unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::Ok as i32);
    assert_eq!(r.statuses[0].limit_remaining, 1);
    assert_eq!(r.statuses[1].code, Code::OverLimit as i32);

    let r = ask(rls.port(), request(&[batch], 0)).await.unwrap();
    assert_eq!(
        r.statuses[0]
            .current_limit
            .as_ref()
            .unwrap()
            .requests_per_unit,
        1
    );
    assert_eq!(r.overall_code, Code::Ok as i32);
    let r = ask(rls.port(), request(&[batch], 0)).await.unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);

    // A limit of 0 refuses the first request; no descriptors at all is OK.
    let r = ask(rls.port(), request(&[&[("rule", "blocked")]], 0))
        .await
        .unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    let r = ask(rls.port(), request(&[], 0)).await.unwrap();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert!(r.statuses.is_empty());
}

#[tokio::test]
async fn hits_addend_counts_that_many() {
    let redis = RedisServer::start().unwrap();
    let rls = start_rls(&redis);
    let global: &[(&str, &str)] = &[("rule", "global")];
    let r = ask(rls.port(), request(&[global], 3)).await.unwrap();
    assert_eq!(
        (r.overall_code, r.statuses[0].limit_remaining),
        (Code::Ok as i32, 2)
    );
    let r = ask(rls.port(), request(&[global], 3)).await.unwrap();
    assert_eq!(
        (r.overall_code, r.statuses[0].limit_remaining),
        (Code::OverLimit as i32, 0)
    );
}

#[tokio::test]
async fn requests_the_service_cannot_answer_are_refused() {
    let redis = RedisServer::start().unwrap();
    let rls = start_rls(&redis);
    let mut r = request(&[&[("rule", "global")]], 0);
    r.domain.clear();
    let err = ask(rls.port(), r).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let many: Vec<&[(&str, &str)]> = vec![&[("rule", "global")]; 65];
    let err = ask(rls.port(), request(&many, 0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn redis_down_is_unavailable() {
    let mut redis = RedisServer::start().unwrap();
    let rls = start_rls(&redis);
    let global: &[(&str, &str)] = &[("rule", "global")];
    // Connected first, then Redis goes away under the open connection.
    assert!(ask(rls.port(), request(&[global], 0)).await.is_ok());
    redis.stop();
    for _ in 0..2 {
        let err = ask(rls.port(), request(&[global], 0)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    // A replica that never reached Redis.
    let fresh = start_rls(&redis);
    let err = ask(fresh.port(), request(&[global], 0)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    // A descriptor without a limit needs no Redis.
    let r = ask(fresh.port(), request(&[&[("tenant", "acme")]], 0))
        .await
        .unwrap();
    assert_eq!(r.overall_code, Code::Ok as i32);
}
