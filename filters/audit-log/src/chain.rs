//! The HMAC chain that makes the audit log tamper-evident.
//!
//! Each worker (VM) has a chain, named by a random id made when the worker starts (`audit.chain`).
//! The chain's records are numbered from 1 (`audit.seq`) and each carries
//! `audit.hash` = HMAC-SHA256(key, previous record's hash in hex ‖ this record's text without its
//! `hash` member), in lower-case hex; the first record's "previous hash" is empty.
//!
//! The text that is hashed is exact bytes, not a re-serialisation: a record line ends with
//! `,"hash":"<64 hex>"}}` (the `audit` object is the record's last member and `hash` the audit
//! object's last), and removing `,"hash":"<64 hex>"` from the line gives the hashed text back.
//! A verifier therefore needs no canonical JSON, and a shipper that forwards the line unchanged
//! (a file tail, syslog, the OpenTelemetry access logger) keeps it verifiable.
//!
//! Detected: an edited record (its hash no longer matches), a removed or reordered record (the next
//! record's `seq` or its link to the previous hash breaks), a record removed from the start of a
//! chain (the chain does not start at 1). Not detectable by a chain alone: records cut off the end
//! of a chain; compare the last `seq` with the `shieldwall.audit_log.records` counter for that.

use std::collections::BTreeMap;

use serde_json::Value;
use shieldwall_jose::HmacSha256;

use shieldwall_core::json_text::{push_hex, push_u64};

/// One worker's chain.
pub struct Chain {
    name: String,
    seq: u64,
    prev: String,
    key: HmacSha256,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(*p.first()?)? * 16 + digit(*p.get(1)?)?))
        .collect()
}

/// Turns `body` (a JSON object) in place into the record up to (not including) the `hash`
/// member of its `audit` object.
fn open_audit(body: &mut String, name: &str, seq: u64) {
    if body.ends_with('}') {
        body.pop();
    }
    if !body.trim_end().ends_with('{') {
        body.push(',');
    }
    body.push_str("\"audit\":{\"chain\":\"");
    body.push_str(name);
    body.push_str("\",\"seq\":");
    push_u64(body, seq);
}

impl Chain {
    /// `name`: the chain's id (letters, digits, `-`); `key`: the chain key.
    pub fn new(name: String, key: &[u8]) -> Chain {
        Chain {
            name,
            seq: 0,
            prev: String::new(),
            key: HmacSha256::new(key),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of records sealed so far.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Seals a record: `body` is the record as a JSON object without `audit`; the result is the
    /// line with `audit.chain`, `audit.seq` and `audit.hash` as its last member.
    pub fn seal(&mut self, body: &str) -> String {
        self.seal_owned(body.to_string())
    }

    /// [`Chain::seal`] that appends to the record's own buffer instead of copying it.
    pub fn seal_owned(&mut self, mut line: String) -> String {
        self.seq += 1;
        open_audit(&mut line, &self.name, self.seq);
        let tag = self
            .key
            .sign(&[self.prev.as_bytes(), line.as_bytes(), b"}}"]);
        self.prev.clear();
        push_hex(&mut self.prev, &tag);
        line.reserve(14 + self.prev.len());
        line.push_str(",\"hash\":\"");
        line.push_str(&self.prev);
        line.push_str("\"}}");
        line
    }
}

/// Where a file's chains first break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// 1-based line number in the input.
    pub line: usize,
    pub chain: String,
    pub reason: String,
}

/// What an intact input held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Chain name → (first seq seen, last seq seen).
    pub chains: BTreeMap<String, (u64, u64)>,
    pub records: usize,
    /// Lines that are not audit records (other log lines), skipped.
    pub ignored: usize,
}

struct Link {
    seq: u64,
    hash: String,
}

/// A record's chain fields and the text its hash covers.
struct Sealed<'a> {
    chain: &'a str,
    seq: u64,
    hash: &'a str,
    hashed: String,
}

/// The JSON object in a line (from its first `{`, so a syslog header or a log prefix is skipped).
fn record_text(line: &str) -> Option<&str> {
    let start = line.find('{')?;
    Some(line.get(start..)?.trim_end())
}

fn sealed<'a>(text: &'a str, value: &'a Value) -> Result<Option<Sealed<'a>>, String> {
    let Some(audit) = value.get("audit").filter(|a| a.is_object()) else {
        return Ok(None);
    };
    let chain = audit
        .get("chain")
        .and_then(Value::as_str)
        .ok_or("audit.chain is missing")?;
    let seq = audit
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("audit.seq is missing")?;
    let hash = audit
        .get("hash")
        .and_then(Value::as_str)
        .ok_or("audit.hash is missing")?;
    if hash.len() != 64 || unhex(hash).is_none() {
        return Err("audit.hash is not 64 lower-case hex digits".into());
    }
    let suffix = format!(",\"hash\":\"{hash}\"}}}}");
    let head = text
        .strip_suffix(&suffix)
        .ok_or("the record does not end with its audit.hash (it was re-serialised or edited)")?;
    let _ = value;
    Ok(Some(Sealed {
        chain,
        seq,
        hash,
        hashed: format!("{head}}}}}"),
    }))
}

/// Checks every chain in `lines` (one record per line; lines that are not records are skipped).
/// `allow_partial`: a chain may start after seq 1 (a rotated file); its first record is then taken
/// as given and only the links after it are checked.
pub fn verify<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    key: &[u8],
    allow_partial: bool,
) -> Result<Summary, Break> {
    let key = HmacSha256::new(key);
    let mut last: BTreeMap<String, Link> = BTreeMap::new();
    let mut summary = Summary::default();
    for (index, line) in lines.into_iter().enumerate() {
        let number = index + 1;
        let Some(text) = record_text(line) else {
            summary.ignored += 1;
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            summary.ignored += 1;
            continue;
        };
        let record = match sealed(text, &value) {
            Ok(Some(r)) => r,
            Ok(None) => {
                summary.ignored += 1;
                continue;
            }
            Err(reason) => {
                return Err(Break {
                    line: number,
                    chain: value
                        .pointer("/audit/chain")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    reason,
                })
            }
        };
        let fail = |reason: String| Break {
            line: number,
            chain: record.chain.to_string(),
            reason,
        };
        let prev = match last.get(record.chain) {
            None if record.seq == 1 => Some(String::new()),
            None if allow_partial => None,
            None => {
                return Err(fail(format!(
                    "the chain starts at seq {}: records 1 to {} are missing",
                    record.seq,
                    record.seq - 1
                )))
            }
            Some(link) if record.seq == link.seq + 1 => Some(link.hash.clone()),
            Some(link) => {
                return Err(fail(if record.seq <= link.seq {
                    format!(
                        "seq {} after seq {}: a record was repeated or reordered",
                        record.seq, link.seq
                    )
                } else {
                    format!(
                        "seq {} after seq {}: {} record(s) missing",
                        record.seq,
                        link.seq,
                        record.seq - link.seq - 1
                    )
                }))
            }
        };
        if let Some(prev) = prev {
            let tag = unhex(record.hash).unwrap_or_default();
            if !key.verify(&[prev.as_bytes(), record.hashed.as_bytes()], &tag) {
                return Err(fail(format!(
                    "seq {}: the hash does not match (the record or the one before it was altered, or the key is not the chain's)",
                    record.seq
                )));
            }
        }
        summary
            .chains
            .entry(record.chain.to_string())
            .and_modify(|e| e.1 = record.seq)
            .or_insert((record.seq, record.seq));
        summary.records += 1;
        last.insert(
            record.chain.to_string(),
            Link {
                seq: record.seq,
                hash: record.hash.to_string(),
            },
        );
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn lines(chain: &mut Chain, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                chain.seal(&format!(
                    "{{\"event\":{{\"id\":\"r{i}\"}},\"url\":{{\"path\":\"/x\"}}}}"
                ))
            })
            .collect()
    }

    #[test]
    fn a_sealed_chain_verifies_and_ends_with_its_hash() {
        let mut c = Chain::new("w1".into(), KEY);
        let l = lines(&mut c, 5);
        assert!(l[0].starts_with("{\"event\":{\"id\":\"r0\"},\"url\":{\"path\":\"/x\"},\"audit\":{\"chain\":\"w1\",\"seq\":1,\"hash\":\""));
        let v: Value = serde_json::from_str(&l[4]).unwrap();
        assert_eq!(v["audit"]["seq"], 5);
        let s = verify(l.iter().map(String::as_str), KEY, false).unwrap();
        assert_eq!(s.records, 5);
        assert_eq!(s.chains["w1"], (1, 5));
    }

    #[test]
    fn interleaved_chains_and_other_lines() {
        let mut a = Chain::new("a".into(), KEY);
        let mut b = Chain::new("b".into(), KEY);
        let mut all = Vec::new();
        for i in 0..4 {
            all.push(a.seal("{\"n\":1}"));
            all.push(format!("[2026-11-30] some other log line {i}"));
            all.push(b.seal("{\"n\":2}"));
        }
        all.push("{\"not\":\"a record\"}".into());
        let s = verify(all.iter().map(String::as_str), KEY, false).unwrap();
        assert_eq!(s.records, 8);
        assert_eq!(s.ignored, 5);
        // A syslog header before the record is skipped.
        let framed: Vec<String> = all
            .iter()
            .map(|l| format!("<14>1 2026-11-30T03:00:00Z host envoy - - - {l}"))
            .collect();
        assert_eq!(
            verify(framed.iter().map(String::as_str), KEY, false)
                .unwrap()
                .records,
            8
        );
    }

    #[test]
    fn deleted_reordered_edited_and_foreign_records_break_the_chain() {
        let mut c = Chain::new("w".into(), KEY);
        let l = lines(&mut c, 6);
        let mut deleted = l.clone();
        deleted.remove(2);
        let e = verify(deleted.iter().map(String::as_str), KEY, false).unwrap_err();
        assert_eq!((e.line, e.chain.as_str()), (3, "w"));
        assert!(e.reason.contains("1 record(s) missing"), "{}", e.reason);

        let mut reordered = l.clone();
        reordered.swap(3, 4);
        let e = verify(reordered.iter().map(String::as_str), KEY, false).unwrap_err();
        assert_eq!(e.line, 4);

        let mut edited = l.clone();
        edited[1] = edited[1].replace("\"/x\"", "\"/y\"");
        let e = verify(edited.iter().map(String::as_str), KEY, false).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("does not match"), "{}", e.reason);

        // A record renumbered and re-hashed without the key cannot be made to fit.
        let mut forged = l.clone();
        let mut other = Chain::new("w".into(), b"another key, also 32 bytes long!!");
        let fake = lines(&mut other, 2);
        forged[1] = fake[1].clone();
        assert_eq!(
            verify(forged.iter().map(String::as_str), KEY, false)
                .unwrap_err()
                .line,
            2
        );

        let first_gone = l[1..].to_vec();
        let e = verify(first_gone.iter().map(String::as_str), KEY, false).unwrap_err();
        assert!(e.reason.contains("starts at seq 2"), "{}", e.reason);
        assert_eq!(
            verify(first_gone.iter().map(String::as_str), KEY, true)
                .unwrap()
                .records,
            5
        );

        // Re-serialised (key order or spacing changed): refused, not silently accepted.
        let v: Value = serde_json::from_str(&l[0]).unwrap();
        let pretty = serde_json::to_string_pretty(&v).unwrap().replace('\n', "");
        assert!(verify([pretty.as_str()], KEY, false).is_err());
        assert!(verify(
            l.iter().map(String::as_str),
            b"the wrong key, thirty-two bytes!",
            false
        )
        .is_err());
    }
}
