//! The rate-limit filter's hand-written RLS codec against prost's reading of the same messages:
//! what the filter sends is what this service decodes, and what this service answers is what the
//! filter decodes.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../../filters/rate-limit/src/rls.rs"]
#[allow(dead_code)]
mod rls;

use prost::Message;
use rls_redis::proto;

#[test]
fn the_filters_request_decodes_as_a_rate_limit_request() {
    let descriptors = vec![
        vec![
            ("rule".to_string(), "per-client".to_string()),
            ("client_id".to_string(), "a".repeat(300)),
        ],
        vec![("rule".to_string(), "global".to_string())],
    ];
    let bytes = rls::encode_request("edge", &descriptors, 2);
    let decoded = proto::RateLimitRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded.domain, "edge");
    assert_eq!(decoded.hits_addend, 2);
    let got: Vec<Vec<(String, String)>> = decoded
        .descriptors
        .iter()
        .map(|d| {
            d.entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect()
        })
        .collect();
    assert_eq!(got, descriptors);
    // And byte for byte what prost writes for the same message.
    assert_eq!(decoded.encode_to_vec(), bytes);
}

#[test]
fn the_services_response_decodes_in_the_filter() {
    let response = proto::RateLimitResponse {
        overall_code: proto::Code::OverLimit as i32,
        statuses: vec![
            proto::DescriptorStatus {
                code: proto::Code::Ok as i32,
                current_limit: Some(proto::RateLimit {
                    requests_per_unit: 100,
                    unit: proto::Unit::Minute as i32,
                    name: "per-client".into(),
                }),
                limit_remaining: 41,
                duration_until_reset: Some(proto::Duration {
                    seconds: 17,
                    nanos: 0,
                }),
            },
            proto::DescriptorStatus {
                code: proto::Code::OverLimit as i32,
                current_limit: Some(proto::RateLimit {
                    requests_per_unit: 5,
                    unit: proto::Unit::Hour as i32,
                    name: String::new(),
                }),
                limit_remaining: 0,
                duration_until_reset: Some(proto::Duration {
                    seconds: 3599,
                    nanos: 500,
                }),
            },
            proto::DescriptorStatus {
                code: proto::Code::Ok as i32,
                current_limit: None,
                limit_remaining: 0,
                duration_until_reset: None,
            },
        ],
    };
    let decoded = rls::decode_response(&response.encode_to_vec()).unwrap();
    assert_eq!(decoded.overall_code, rls::Code::OverLimit);
    assert_eq!(
        decoded.statuses,
        vec![
            rls::DescriptorStatus {
                code: rls::Code::Ok,
                limit: Some(rls::Limit {
                    requests_per_unit: 100,
                    unit: rls::Unit::Minute
                }),
                limit_remaining: 41,
                duration_until_reset_s: Some(17),
            },
            rls::DescriptorStatus {
                code: rls::Code::OverLimit,
                limit: Some(rls::Limit {
                    requests_per_unit: 5,
                    unit: rls::Unit::Hour
                }),
                limit_remaining: 0,
                duration_until_reset_s: Some(3600),
            },
            rls::DescriptorStatus {
                code: rls::Code::Ok,
                limit: None,
                limit_remaining: 0,
                duration_until_reset_s: None,
            },
        ]
    );
}
