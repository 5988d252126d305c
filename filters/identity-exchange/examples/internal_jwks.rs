//! Prints the JWKS identity-exchange serves at `jwks_path` for a configuration, so a mesh can be
//! given the keys statically (Istio `RequestAuthentication.jwks`). The configuration is parsed
//! and checked exactly as the filter does at load; `private_key_env` is read from this process's
//! environment. Only public keys are printed. `scripts/internal-jwks.sh` runs it.
//!
//! Usage: internal_jwks <config.json>   (`-` reads the configuration from stdin)

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: internal_jwks <config.json | ->");
        return ExitCode::from(2);
    };
    let mut text = Vec::new();
    let read = if path == "-" {
        std::io::stdin().read_to_end(&mut text).map(|_| ())
    } else {
        std::fs::read(&path).map(|t| text = t)
    };
    if let Err(e) = read {
        eprintln!("internal_jwks: {path}: {e}");
        return ExitCode::from(2);
    }
    match identity_exchange::Config::parse(&text, &|name| std::env::var(name).ok()) {
        Ok(config) => {
            println!("{}", config.jwks);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("internal_jwks: invalid configuration: {e}");
            ExitCode::from(1)
        }
    }
}
