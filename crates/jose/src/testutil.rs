//! Helpers the unit tests share: hex test vectors and random bytes. Compiled for tests only.

#![cfg(test)]

use ring::rand::{SecureRandom, SystemRandom};

/// Hex text (an even number of digits) as bytes.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Hex text of exactly `N` bytes.
pub(crate) fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).unwrap();
    out
}

pub(crate) fn random_vec(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    SystemRandom::new().fill(&mut out).unwrap();
    out
}

/// Microseconds per call of `f` (which must return true), the best of three passes of `rounds`
/// calls: the timing tests' measure.
pub(crate) fn best_micros(rounds: u32, f: &dyn Fn() -> bool) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            assert!(f());
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds));
    }
    best
}
