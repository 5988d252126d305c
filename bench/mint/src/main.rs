//! `bench-mint mint --out DIR [--count N] [--ttl-s S]`: fresh keys, `DIR/jwks.json`, one token for
//! the warm path (`DIR/warm.txt`) and N distinct tokens per algorithm for the cold path
//! (`DIR/cold-RS256.txt`, `cold-ES256.txt`, `cold-EdDSA.txt`, one token a line).
//!
//! `bench-mint verify --dir DIR [--iterations N]`: times the shared signature crate's verification
//! (`shieldwall_jose::Key::verify`, the same code jwt-auth runs) natively over those tokens, and prints one JSON line per
//! algorithm: `{"alg", "iterations", "passes", "us_per_verify"` (the fastest of the passes),
//! `"us_per_verify_median", "us_per_parse"}`.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bench_mint::{claims, Alg, KeySet, Result, ALGS};
use jwt_auth::{parse_compact, parse_jwks, JwksOptions};
use serde_json::json;

/// Timed passes over the tokens per algorithm.
const PASSES: usize = 5;

fn usage() -> String {
    "usage: bench-mint mint --out DIR [--count N] [--ttl-s S]\n       bench-mint verify --dir DIR [--iterations N]".into()
}

struct Args {
    command: String,
    dir: Option<PathBuf>,
    count: usize,
    ttl_s: u64,
    iterations: usize,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or_else(usage)?;
    let mut args = Args {
        command,
        dir: None,
        count: 10_000,
        ttl_s: 6 * 3600,
        iterations: 2_000,
    };
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--out" | "--dir" => args.dir = Some(PathBuf::from(value)),
            "--count" => args.count = value.parse()?,
            "--ttl-s" => args.ttl_s = value.parse()?,
            "--iterations" => args.iterations = value.parse()?,
            _ => return Err(format!("unknown option {flag}\n{}", usage()).into()),
        }
    }
    Ok(args)
}

fn mint(dir: &Path, count: usize, ttl_s: u64) -> Result<()> {
    fs::create_dir_all(dir)?;
    let keys = KeySet::generate()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    fs::write(dir.join("jwks.json"), keys.jwks().to_string())?;
    fs::write(
        dir.join("warm.txt"),
        keys.token(Alg::Rs256, &claims(0, now, ttl_s))? + "\n",
    )?;
    for alg in ALGS {
        let mut text = String::with_capacity(count * 600);
        for n in 1..=count {
            text.push_str(&keys.token(alg, &claims(n, now, ttl_s))?);
            text.push('\n');
        }
        fs::write(dir.join(format!("cold-{}.txt", alg.name())), text)?;
    }
    Ok(())
}

fn verify(dir: &Path, iterations: usize) -> Result<()> {
    let opts = JwksOptions {
        allow_symmetric: false,
        max_bytes: 1 << 20,
        max_keys: 16,
    };
    let jwks = parse_jwks(&fs::read(dir.join("jwks.json"))?, opts)
        .map_err(|e| format!("jwks.json: {e}"))?;
    for alg in ALGS {
        let text = fs::read_to_string(dir.join(format!("cold-{}.txt", alg.name())))?;
        let tokens: Vec<&str> = text.lines().take(iterations.max(1)).collect();
        if tokens.is_empty() {
            return Err(format!("no {} tokens", alg.name()).into());
        }
        let key = jwks
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(alg.kid()))
            .ok_or_else(|| format!("no key {}", alg.kid()))?;

        let started = Instant::now();
        let mut parsed = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let token = tokens.get(i % tokens.len()).copied().unwrap_or_default();
            parsed.push(parse_compact(token, 8192).map_err(|e| format!("token: {e}"))?);
        }
        let parse_us = started.elapsed().as_secs_f64() * 1e6 / iterations as f64;

        // Several passes; the fastest is the least disturbed by whatever else the machine runs.
        let mut passes = Vec::with_capacity(PASSES);
        for _ in 0..PASSES {
            let started = Instant::now();
            for jws in &parsed {
                key.verify(
                    jws.header.alg,
                    black_box(jws.signing_input.as_bytes()),
                    black_box(&jws.signature),
                )
                .map_err(|e| format!("{}: {e}", alg.name()))?;
            }
            passes.push(started.elapsed().as_secs_f64() * 1e6 / iterations as f64);
        }
        passes.sort_by(f64::total_cmp);
        let fastest = passes.first().copied().unwrap_or_default();
        let median = passes.get(passes.len() / 2).copied().unwrap_or_default();
        println!(
            "{}",
            json!({"alg": alg.name(), "iterations": iterations, "passes": PASSES,
                   "us_per_verify": fastest, "us_per_verify_median": median,
                   "us_per_parse": parse_us})
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let dir = args.dir.clone().ok_or_else(usage)?;
    match args.command.as_str() {
        "mint" => mint(&dir, args.count, args.ttl_s),
        "verify" => verify(&dir, args.iterations.max(1)),
        _ => Err(usage().into()),
    }
}
