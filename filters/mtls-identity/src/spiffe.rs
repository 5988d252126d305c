//! SPIFFE IDs as the SPIFFE ID specification defines them: `spiffe://<trust domain><path>`.
//!
//! - the scheme is `spiffe` (lower case), followed by `://`;
//! - the trust domain is not empty and uses only `a-z 0-9 . - _` (no upper case, no port, no
//!   userinfo: `:` and `@` are simply not allowed characters);
//! - the path is empty or `/segment(/segment)*`, each segment non-empty, not `.` or `..`, of
//!   `A-Z a-z 0-9 . - _` only (no percent-encoding, so no query or fragment either);
//! - the whole ID is at most 2048 bytes.

use std::fmt;

/// The longest SPIFFE ID the specification allows, in bytes.
pub const MAX_LEN: usize = 2048;

const SCHEME: &str = "spiffe://";

/// A parsed, valid SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeId {
    id: String,
    /// Where the path starts in `id` (its length when the path is empty).
    path_at: usize,
}

/// Why a string is not a SPIFFE ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiffeError {
    TooLong,
    WrongScheme,
    EmptyTrustDomain,
    BadTrustDomainChar,
    EmptySegment,
    DotSegment,
    BadPathChar,
    TrailingSlash,
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpiffeError::TooLong => "longer than 2048 bytes",
            SpiffeError::WrongScheme => "the scheme is not `spiffe://`",
            SpiffeError::EmptyTrustDomain => "the trust domain is empty",
            SpiffeError::BadTrustDomainChar => {
                "the trust domain has a character other than a-z, 0-9, `.`, `-`, `_`"
            }
            SpiffeError::EmptySegment => "the path has an empty segment",
            SpiffeError::DotSegment => "the path has a `.` or `..` segment",
            SpiffeError::BadPathChar => {
                "the path has a character other than A-Z, a-z, 0-9, `.`, `-`, `_`"
            }
            SpiffeError::TrailingSlash => "the path ends with `/`",
        })
    }
}

fn trust_domain_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Checks a trust domain name on its own (as configured in `trust_domains`).
pub fn check_trust_domain(td: &str) -> Result<(), SpiffeError> {
    if td.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    if !td.bytes().all(trust_domain_char) {
        return Err(SpiffeError::BadTrustDomainChar);
    }
    Ok(())
}

impl SpiffeId {
    pub fn parse(text: &str) -> Result<SpiffeId, SpiffeError> {
        if text.len() > MAX_LEN {
            return Err(SpiffeError::TooLong);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(SpiffeError::WrongScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        check_trust_domain(td)?;
        if !path.is_empty() {
            let segments = path.get(1..).unwrap_or("");
            let count = segments.split('/').count();
            for (i, segment) in segments.split('/').enumerate() {
                if segment.is_empty() {
                    return Err(if i + 1 == count {
                        SpiffeError::TrailingSlash
                    } else {
                        SpiffeError::EmptySegment
                    });
                }
                if segment == "." || segment == ".." {
                    return Err(SpiffeError::DotSegment);
                }
                if !segment.bytes().all(path_char) {
                    return Err(SpiffeError::BadPathChar);
                }
            }
        }
        Ok(SpiffeId {
            id: text.to_string(),
            path_at: SCHEME.len() + td_len,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn trust_domain(&self) -> &str {
        self.id.get(SCHEME.len()..self.path_at).unwrap_or("")
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        self.id.get(self.path_at..).unwrap_or("")
    }

    /// Whether this ID is `prefix` or lies below it, on whole path segments:
    /// `spiffe://td/ns/a` is under `spiffe://td/ns` but `spiffe://td/ns-b` is not.
    pub fn is_at_or_under(&self, prefix: &SpiffeId) -> bool {
        match self.id.strip_prefix(prefix.as_str()) {
            Some("") => true,
            Some(rest) => rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}
