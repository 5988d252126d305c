//! The wire format of Envoy's rate-limit service (RLS v3), written out by hand: the filter sends
//! one `RateLimitRequest` through a proxy-wasm gRPC callout and reads one `RateLimitResponse`.
//! No protobuf library: the two messages are small, and a hand-written decoder can be bounded
//! and can refuse hostile input without ever panicking (a panic traps the VM).
//!
//! The callout carries the bare message; Envoy adds and strips the 5-byte gRPC frame prefix.
//!
//! Field numbers, from Envoy's `api/envoy/service/ratelimit/v3/rls.proto` and
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto`:
//!
//! ```text
//! service envoy.service.ratelimit.v3.RateLimitService { rpc ShouldRateLimit(RateLimitRequest) returns (RateLimitResponse); }
//! RateLimitRequest     { string domain = 1; repeated RateLimitDescriptor descriptors = 2; uint32 hits_addend = 3; }
//! RateLimitDescriptor  { repeated Entry entries = 1; RateLimitOverride limit = 2; }   (envoy.extensions.common.ratelimit.v3)
//!   Entry              { string key = 1; string value = 2; }
//! RateLimitResponse    { Code overall_code = 1; repeated DescriptorStatus statuses = 2;
//!                        repeated HeaderValue response_headers_to_add = 3; repeated HeaderValue request_headers_to_add = 4;
//!                        bytes raw_body = 5; Struct dynamic_metadata = 6; Quota quota = 7; }
//!   Code               { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }
//!   DescriptorStatus   { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!                        google.protobuf.Duration duration_until_reset = 4; Quota quota = 5; }
//!   RateLimit          { uint32 requests_per_unit = 1; Unit unit = 2; string name = 3; }
//!     Unit             { UNKNOWN = 0; SECOND = 1; MINUTE = 2; HOUR = 3; DAY = 4; MONTH = 5; YEAR = 6; }
//! google.protobuf.Duration { int64 seconds = 1; int32 nanos = 2; }
//! ```
//!
//! Fields the filter does not use (headers to add, raw body, metadata, quota, the limit's name)
//! are skipped, as is any field a later version of the API adds, whatever its wire type.

use std::fmt;

/// The largest response the decoder accepts. A real answer for a few descriptors is well under
/// 1 KiB; anything this large is not an answer to a filter's request.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The most descriptor statuses the decoder keeps (the filter sends a handful of descriptors).
pub const MAX_STATUSES: usize = 256;
/// How deeply (deprecated) groups may nest inside a skipped field.
const MAX_GROUP_DEPTH: u32 = 8;

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A response code: for one descriptor, or for the whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `UNKNOWN` (0), also any number the API does not define.
    Unknown,
    /// `OK` (1): under the limit.
    Ok,
    /// `OVER_LIMIT` (2).
    OverLimit,
}

impl Code {
    fn from_wire(v: u64) -> Code {
        // An enum is an int32 on the wire; proto3 keeps unknown numbers, we call them Unknown.
        match v as u32 {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// The time unit of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `UNKNOWN` (0), also any number the API does not define.
    Unknown,
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Unit {
    fn from_wire(v: u64) -> Unit {
        match v as u32 {
            1 => Unit::Second,
            2 => Unit::Minute,
            3 => Unit::Hour,
            4 => Unit::Day,
            5 => Unit::Month,
            6 => Unit::Year,
            _ => Unit::Unknown,
        }
    }

    /// The unit's length in seconds (a month is 30 days, a year 365), for `RateLimit-Policy`'s
    /// `w=`; `None` for an unknown unit.
    pub fn seconds(self) -> Option<u64> {
        match self {
            Unit::Unknown => None,
            Unit::Second => Some(1),
            Unit::Minute => Some(60),
            Unit::Hour => Some(3_600),
            Unit::Day => Some(86_400),
            Unit::Month => Some(30 * 86_400),
            Unit::Year => Some(365 * 86_400),
        }
    }
}

/// The limit the service applied to a descriptor (`current_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests_per_unit: u32,
    pub unit: Unit,
}

/// The service's answer for one descriptor, in the order the request listed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorStatus {
    pub code: Code,
    /// `None` when no configured limit matched the descriptor.
    pub limit: Option<Limit>,
    pub limit_remaining: u32,
    /// Whole seconds until the window resets, rounded up; `None` when the service did not say.
    pub duration_until_reset_s: Option<u64>,
}

/// A decoded `RateLimitResponse`, reduced to what the filter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsResponse {
    pub overall_code: Code,
    pub statuses: Vec<DescriptorStatus>,
}

/// Why a response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlsError {
    /// The input ends inside a field.
    Truncated,
    /// A varint longer than 10 bytes, or one that overflows 64 bits.
    BadVarint,
    /// Wire type 6 or 7, or an end-group without its start.
    BadWireType(u8),
    /// Field number 0, or one above 2^29 - 1.
    BadFieldNumber,
    /// A length that does not fit the rest of the input, or an input over [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// More than [`MAX_STATUSES`] descriptor statuses.
    TooManyStatuses,
    /// Groups nested deeper than the decoder follows, or a group that does not close.
    BadGroup,
}

impl fmt::Display for RlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RlsError::Truncated => f.write_str("truncated message"),
            RlsError::BadVarint => f.write_str("malformed varint"),
            RlsError::BadWireType(t) => write!(f, "invalid wire type {t}"),
            RlsError::BadFieldNumber => f.write_str("invalid field number"),
            RlsError::TooLarge => f.write_str("length out of bounds"),
            RlsError::TooManyStatuses => write!(f, "more than {MAX_STATUSES} descriptor statuses"),
            RlsError::BadGroup => f.write_str("malformed group"),
        }
    }
}

impl std::error::Error for RlsError {}

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes a `RateLimitRequest`. Each descriptor is a list of `(key, value)` entries, most
/// general first, as the service's configuration nests them. Fields at their proto3 default
/// (an empty string, `hits_addend` 0, which the service reads as 1) are left out, as any proto3
/// encoder does.
pub fn encode_request(
    domain: &str,
    descriptors: &[Vec<(String, String)>],
    hits_addend: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + domain.len() + descriptors.len() * 48);
    if !domain.is_empty() {
        put_bytes(&mut out, 1, domain.as_bytes());
    }
    let mut descriptor = Vec::new();
    let mut entry = Vec::new();
    for entries in descriptors {
        descriptor.clear();
        for (key, value) in entries {
            entry.clear();
            if !key.is_empty() {
                put_bytes(&mut entry, 1, key.as_bytes());
            }
            if !value.is_empty() {
                put_bytes(&mut entry, 2, value.as_bytes());
            }
            put_bytes(&mut descriptor, 1, &entry);
        }
        put_bytes(&mut out, 2, &descriptor);
    }
    if hits_addend != 0 {
        put_key(&mut out, 3, VARINT);
        put_varint(&mut out, u64::from(hits_addend));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A cursor over one message's bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

/// One field's payload, by wire type.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed-width numbers and groups: no field the decoder knows uses them.
    Other,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn varint(&mut self) -> Result<u64, RlsError> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let (&b, rest) = self.rest.split_first().ok_or(RlsError::Truncated)?;
            self.rest = rest;
            let low = u64::from(b & 0x7f);
            // The 10th byte may carry only the 64th bit.
            if i == 9 && low > 1 {
                return Err(RlsError::BadVarint);
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RlsError::BadVarint)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RlsError> {
        if n > self.rest.len() {
            return Err(RlsError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), RlsError> {
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let field = key >> 3;
        if field == 0 || field > (1 << 29) - 1 {
            return Err(RlsError::BadFieldNumber);
        }
        Ok((field as u32, wire_type))
    }

    /// The next field: its number and payload. Groups are skipped whole.
    fn field(&mut self) -> Result<(u32, Value<'a>), RlsError> {
        let (field, wire_type) = self.key()?;
        let value = match wire_type {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| RlsError::TooLarge)?;
                if len > self.rest.len() {
                    return Err(RlsError::TooLarge);
                }
                Value::Bytes(self.take(len)?)
            }
            FIXED64 => {
                self.take(8)?;
                Value::Other
            }
            FIXED32 => {
                self.take(4)?;
                Value::Other
            }
            START_GROUP => {
                self.skip_group(field, 1)?;
                Value::Other
            }
            other => return Err(RlsError::BadWireType(other)),
        };
        Ok((field, value))
    }

    /// Skips to the end-group that closes the group `field` opened.
    fn skip_group(&mut self, field: u32, depth: u32) -> Result<(), RlsError> {
        if depth > MAX_GROUP_DEPTH {
            return Err(RlsError::BadGroup);
        }
        loop {
            if self.is_empty() {
                return Err(RlsError::BadGroup);
            }
            let (inner, wire_type) = self.key()?;
            match wire_type {
                VARINT => {
                    self.varint()?;
                }
                FIXED64 => {
                    self.take(8)?;
                }
                FIXED32 => {
                    self.take(4)?;
                }
                LEN => {
                    let len = usize::try_from(self.varint()?).map_err(|_| RlsError::TooLarge)?;
                    self.take(len)?;
                }
                START_GROUP => self.skip_group(inner, depth + 1)?,
                END_GROUP if inner == field => return Ok(()),
                END_GROUP => return Err(RlsError::BadGroup),
                other => return Err(RlsError::BadWireType(other)),
            }
        }
    }
}

/// Decodes a `RateLimitResponse`. Unknown fields of any wire type are skipped; a field of a known
/// number but an unexpected wire type is skipped too (it cannot be what this API defines there).
/// A repeated occurrence of a singular field replaces a scalar and merges a message, as protobuf
/// does.
pub fn decode_response(bytes: &[u8]) -> Result<RlsResponse, RlsError> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(RlsError::TooLarge);
    }
    let mut response = RlsResponse {
        overall_code: Code::Unknown,
        statuses: Vec::new(),
    };
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.field()? {
            (1, Value::Varint(v)) => response.overall_code = Code::from_wire(v),
            (2, Value::Bytes(b)) => {
                if response.statuses.len() >= MAX_STATUSES {
                    return Err(RlsError::TooManyStatuses);
                }
                response.statuses.push(decode_status(b)?);
            }
            _ => {}
        }
    }
    Ok(response)
}

fn decode_status(bytes: &[u8]) -> Result<DescriptorStatus, RlsError> {
    let mut status = DescriptorStatus {
        code: Code::Unknown,
        limit: None,
        limit_remaining: 0,
        duration_until_reset_s: None,
    };
    // Merged across repeated occurrences, as protobuf merges a singular message field.
    let mut duration: Option<(i64, i32)> = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.field()? {
            (1, Value::Varint(v)) => status.code = Code::from_wire(v),
            (2, Value::Bytes(b)) => {
                let mut limit = status.limit.unwrap_or(Limit {
                    requests_per_unit: 0,
                    unit: Unit::Unknown,
                });
                merge_limit(b, &mut limit)?;
                status.limit = Some(limit);
            }
            (3, Value::Varint(v)) => status.limit_remaining = v as u32,
            (4, Value::Bytes(b)) => {
                let mut d = duration.unwrap_or((0, 0));
                merge_duration(b, &mut d)?;
                duration = Some(d);
            }
            _ => {}
        }
    }
    status.duration_until_reset_s = duration.map(|(seconds, nanos)| {
        if seconds < 0 {
            0
        } else {
            (seconds as u64).saturating_add(u64::from(nanos > 0))
        }
    });
    Ok(status)
}

fn merge_limit(bytes: &[u8], limit: &mut Limit) -> Result<(), RlsError> {
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.field()? {
            (1, Value::Varint(v)) => limit.requests_per_unit = v as u32,
            (2, Value::Varint(v)) => limit.unit = Unit::from_wire(v),
            _ => {}
        }
    }
    Ok(())
}

fn merge_duration(bytes: &[u8], duration: &mut (i64, i32)) -> Result<(), RlsError> {
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.field()? {
            (1, Value::Varint(v)) => duration.0 = v as i64,
            (2, Value::Varint(v)) => duration.1 = v as i32,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Test-only encoder for responses, built from the same primitives.
    fn status_bytes(
        code: u64,
        limit: Option<(u32, u64)>,
        remaining: u32,
        reset: Option<(i64, i32)>,
    ) -> Vec<u8> {
        let mut s = Vec::new();
        if code != 0 {
            put_key(&mut s, 1, VARINT);
            put_varint(&mut s, code);
        }
        if let Some((rpu, unit)) = limit {
            let mut l = Vec::new();
            put_bytes(&mut l, 3, b"name-is-skipped");
            put_key(&mut l, 1, VARINT);
            put_varint(&mut l, u64::from(rpu));
            put_key(&mut l, 2, VARINT);
            put_varint(&mut l, unit);
            put_bytes(&mut s, 2, &l);
        }
        if remaining != 0 {
            put_key(&mut s, 3, VARINT);
            put_varint(&mut s, u64::from(remaining));
        }
        if let Some((secs, nanos)) = reset {
            let mut d = Vec::new();
            if secs != 0 {
                put_key(&mut d, 1, VARINT);
                put_varint(&mut d, secs as u64);
            }
            if nanos != 0 {
                put_key(&mut d, 2, VARINT);
                put_varint(&mut d, nanos as i64 as u64);
            }
            put_bytes(&mut s, 4, &d);
        }
        s
    }

    fn response_bytes(overall: u64, statuses: &[Vec<u8>]) -> Vec<u8> {
        let mut r = Vec::new();
        put_key(&mut r, 1, VARINT);
        put_varint(&mut r, overall);
        for s in statuses {
            put_bytes(&mut r, 2, s);
        }
        r
    }

    type Request = (String, Vec<Vec<(String, String)>>, u32);

    /// Decodes a request back, to check the encoder by round trip.
    fn decode_request(bytes: &[u8]) -> Result<Request, RlsError> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut domain = String::new();
        let mut descriptors = Vec::new();
        let mut hits = 0;
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            match r.field()? {
                (1, Value::Bytes(b)) => domain = text(b),
                (2, Value::Bytes(b)) => {
                    let mut d = Vec::new();
                    let mut dr = Reader::new(b);
                    while !dr.is_empty() {
                        if let (1, Value::Bytes(e)) = dr.field()? {
                            let (mut k, mut v) = (String::new(), String::new());
                            let mut er = Reader::new(e);
                            while !er.is_empty() {
                                match er.field()? {
                                    (1, Value::Bytes(x)) => k = text(x),
                                    (2, Value::Bytes(x)) => v = text(x),
                                    _ => {}
                                }
                            }
                            d.push((k, v));
                        }
                    }
                    descriptors.push(d);
                }
                (3, Value::Varint(v)) => hits = v as u32,
                _ => {}
            }
        }
        Ok((domain, descriptors, hits))
    }

    #[test]
    fn request_known_bytes() {
        // domain "edge"; one descriptor [("k","v")]; hits_addend 1.
        let bytes = encode_request("edge", &[entries(&[("k", "v")])], 1);
        let expected: Vec<u8> = vec![
            0x0a, 0x04, b'e', b'd', b'g', b'e', // 1: "edge"
            0x12, 0x08, // 2: descriptor, 8 bytes
            0x0a, 0x06, // 1: entry, 6 bytes
            0x0a, 0x01, b'k', // 1: "k"
            0x12, 0x01, b'v', // 2: "v"
            0x18, 0x01, // 3: 1
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn request_leaves_out_defaults() {
        assert_eq!(encode_request("", &[], 0), Vec::<u8>::new());
        assert_eq!(encode_request("d", &[], 0), vec![0x0a, 0x01, b'd']);
        // A multi-byte varint for hits_addend: 300 = 0xac 0x02.
        assert_eq!(encode_request("", &[], 300), vec![0x18, 0xac, 0x02]);
    }

    #[test]
    fn request_round_trip() {
        let long = "x".repeat(200); // a length that needs a two-byte varint
        let descriptors = vec![
            entries(&[("rule", "per-client"), ("client_id", "orders-reader")]),
            entries(&[("rule", "global")]),
            entries(&[("path", &long)]),
        ];
        let bytes = encode_request("edge", &descriptors, 7);
        assert_eq!(
            decode_request(&bytes),
            Ok(("edge".to_string(), descriptors, 7))
        );
    }

    #[test]
    fn response_known_bytes() {
        // overall OVER_LIMIT; one status: OVER_LIMIT, limit {10, MINUTE}, remaining 0, reset 42s.
        let bytes: Vec<u8> = vec![
            0x08, 0x02, // 1: OVER_LIMIT
            0x12, 0x0c, // 2: status, 12 bytes
            0x08, 0x02, // 1: OVER_LIMIT
            0x12, 0x04, 0x08, 0x0a, 0x10, 0x02, // 2: limit {1: 10, 2: MINUTE}
            0x22, 0x02, 0x08, 0x2a, // 4: duration {seconds: 42}
        ];
        assert_eq!(
            decode_response(&bytes),
            Ok(RlsResponse {
                overall_code: Code::OverLimit,
                statuses: vec![DescriptorStatus {
                    code: Code::OverLimit,
                    limit: Some(Limit {
                        requests_per_unit: 10,
                        unit: Unit::Minute
                    }),
                    limit_remaining: 0,
                    duration_until_reset_s: Some(42),
                }],
            })
        );
    }

    #[test]
    fn response_round_trip() {
        let bytes = response_bytes(
            1,
            &[
                status_bytes(1, Some((100, 1)), 99, Some((0, 250_000_000))),
                status_bytes(1, None, 0, None),
                status_bytes(2, Some((5, 3)), 0, Some((3599, 0))),
            ],
        );
        let r = decode_response(&bytes);
        assert_eq!(
            r,
            Ok(RlsResponse {
                overall_code: Code::Ok,
                statuses: vec![
                    DescriptorStatus {
                        code: Code::Ok,
                        limit: Some(Limit {
                            requests_per_unit: 100,
                            unit: Unit::Second
                        }),
                        limit_remaining: 99,
                        // 0.25 s rounds up to 1: a client told 0 would retry at once.
                        duration_until_reset_s: Some(1),
                    },
                    DescriptorStatus {
                        code: Code::Ok,
                        limit: None,
                        limit_remaining: 0,
                        duration_until_reset_s: None,
                    },
                    DescriptorStatus {
                        code: Code::OverLimit,
                        limit: Some(Limit {
                            requests_per_unit: 5,
                            unit: Unit::Hour
                        }),
                        limit_remaining: 0,
                        duration_until_reset_s: Some(3599),
                    },
                ],
            })
        );
    }

    #[test]
    fn empty_response_is_unknown_code() {
        assert_eq!(
            decode_response(&[]),
            Ok(RlsResponse {
                overall_code: Code::Unknown,
                statuses: vec![]
            })
        );
    }

    #[test]
    fn unknown_enum_numbers_and_negative_durations() {
        let status = status_bytes(9, Some((1, 77)), 0, Some((-5, 0)));
        let r = decode_response(&response_bytes(u64::MAX, &[status]));
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.overall_code, Code::Unknown); // -1 as an int32 enum
        let s = r.statuses.first().cloned();
        assert_eq!(
            s.map(|s| (s.code, s.limit.map(|l| l.unit), s.duration_until_reset_s)),
            Some((Code::Unknown, Some(Unit::Unknown), Some(0)))
        );
    }

    #[test]
    fn skips_unknown_fields_of_every_wire_type() {
        let mut r = Vec::new();
        // 3: response_headers_to_add (LEN), 5: raw_body, 6: a Struct, 7: quota.
        put_bytes(&mut r, 3, b"\x0a\x03k-1\x12\x01v");
        put_bytes(&mut r, 5, b"body");
        // An unknown varint, fixed64, fixed32 and a nested group, in a field number past 7.
        put_key(&mut r, 100, VARINT);
        put_varint(&mut r, u64::MAX);
        put_key(&mut r, 101, FIXED64);
        r.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        put_key(&mut r, 102, FIXED32);
        r.extend_from_slice(&[1, 2, 3, 4]);
        put_key(&mut r, 103, START_GROUP);
        put_key(&mut r, 1, VARINT);
        put_varint(&mut r, 5);
        put_key(&mut r, 2, START_GROUP);
        put_bytes(&mut r, 1, b"inner");
        put_key(&mut r, 2, END_GROUP);
        put_key(&mut r, 103, END_GROUP);
        // A known field number with the wrong wire type is skipped, not misread.
        put_bytes(&mut r, 1, b"\x02");
        put_key(&mut r, 1, VARINT);
        put_varint(&mut r, 2);
        // Unknown fields inside a status and inside its limit.
        let mut s = status_bytes(1, Some((3, 2)), 2, Some((10, 0)));
        put_key(&mut s, 5, LEN); // quota
        put_varint(&mut s, 2);
        s.extend_from_slice(&[0x08, 0x01]);
        put_key(&mut s, 200, FIXED32);
        s.extend_from_slice(&[0, 0, 0, 0]);
        put_bytes(&mut r, 2, &s);
        let decoded = decode_response(&r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.overall_code, Code::OverLimit);
        assert_eq!(
            decoded.statuses,
            vec![DescriptorStatus {
                code: Code::Ok,
                limit: Some(Limit {
                    requests_per_unit: 3,
                    unit: Unit::Minute
                }),
                limit_remaining: 2,
                duration_until_reset_s: Some(10),
            }]
        );
    }

    #[test]
    fn repeated_singular_message_fields_merge() {
        let mut s = Vec::new();
        put_bytes(&mut s, 2, &[0x08, 0x07]); // limit {requests_per_unit: 7}
        put_bytes(&mut s, 2, &[0x10, 0x04]); // limit {unit: DAY}
        let r = decode_response(&response_bytes(1, &[s])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.statuses.first().and_then(|s| s.limit),
            Some(Limit {
                requests_per_unit: 7,
                unit: Unit::Day
            })
        );
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let full = response_bytes(
            2,
            &[
                status_bytes(2, Some((10, 2)), 0, Some((42, 1))),
                status_bytes(1, Some((1000, 4)), 999, Some((86_000, 0))),
            ],
        );
        assert!(decode_response(&full).is_ok());
        for cut in 1..full.len() {
            let prefix = full.get(..cut).unwrap_or(&[]);
            // A cut on a field boundary of the outer message is a valid shorter message; any
            // other cut must be refused.
            let _ = decode_response(prefix);
        }
        // Cuts inside the first status are always errors.
        for cut in 3..16 {
            let prefix = full.get(..cut).unwrap_or(&[]);
            assert!(decode_response(prefix).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        let cases: &[(&[u8], RlsError)] = &[
            (&[0x08], RlsError::Truncated),       // key without value
            (&[0x08, 0x80], RlsError::Truncated), // varint runs off the end
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ],
                RlsError::BadVarint,
            ),
            (
                &[
                    0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
                ],
                RlsError::BadVarint,
            ),
            (&[0x00, 0x00], RlsError::BadFieldNumber), // field 0
            (&[0x0e], RlsError::BadWireType(6)),
            (&[0x0f], RlsError::BadWireType(7)),
            (&[0x0c], RlsError::BadWireType(END_GROUP)), // end group without start
            (&[0x12, 0x05, 0x08], RlsError::TooLarge),   // length past the end
            (&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], RlsError::TooLarge),
            (&[0x0b], RlsError::BadGroup),       // group never closed
            (&[0x0b, 0x14], RlsError::BadGroup), // closed by another field's end
            (&[0x09, 1, 2, 3], RlsError::Truncated), // short fixed64
            (&[0x0d, 1], RlsError::Truncated),   // short fixed32
            (&[0x12, 0x02, 0x12, 0x05], RlsError::TooLarge), // inner length past the status
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_response(bytes), Err(*want), "{bytes:02x?}");
        }
        // A field number above 2^29 - 1.
        let mut big = Vec::new();
        put_varint(&mut big, (1u64 << 32) | u64::from(VARINT));
        big.push(0);
        assert_eq!(decode_response(&big), Err(RlsError::BadFieldNumber));
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        // Deeply nested groups.
        let mut deep = Vec::new();
        for _ in 0..100 {
            put_key(&mut deep, 1000, START_GROUP);
        }
        assert_eq!(decode_response(&deep), Err(RlsError::BadGroup));
        // Too many statuses.
        let many: Vec<Vec<u8>> = (0..=MAX_STATUSES).map(|_| vec![0x08, 0x01]).collect();
        assert_eq!(
            decode_response(&response_bytes(1, &many)),
            Err(RlsError::TooManyStatuses)
        );
        // An input over the size bound.
        let mut huge = Vec::new();
        put_bytes(&mut huge, 5, &vec![0u8; MAX_RESPONSE_BYTES]);
        assert_eq!(decode_response(&huge), Err(RlsError::TooLarge));
    }

    #[test]
    fn pseudo_random_garbage_never_panics() {
        // A small deterministic generator (xorshift), so the test needs no crate.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = response_bytes(1, &[status_bytes(1, Some((10, 2)), 9, Some((5, 0)))]);
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 64) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                // Mutate a valid message: flip a few bytes.
                let mut b = valid.clone();
                for _ in 0..(1 + next() % 3) {
                    let i = (next() as usize) % b.len();
                    if let Some(x) = b.get_mut(i) {
                        *x = next() as u8;
                    }
                }
                b
            };
            let _ = decode_response(&bytes);
        }
    }

    #[test]
    fn unit_seconds() {
        assert_eq!(Unit::Minute.seconds(), Some(60));
        assert_eq!(Unit::Day.seconds(), Some(86_400));
        assert_eq!(Unit::Unknown.seconds(), None);
    }
}
