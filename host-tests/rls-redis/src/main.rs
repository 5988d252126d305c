//! `rls-redis --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT --config FILE [--prefix P]`

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use rls_redis::{Config, Limiter, DEFAULT_PREFIX};

const USAGE: &str =
    "usage: rls-redis --listen ADDR:PORT --redis redis://HOST:PORT --config FILE [--prefix PREFIX]";

struct Args {
    listen: SocketAddr,
    redis: String,
    config: String,
    prefix: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut redis = None;
    let mut config = None;
    let mut prefix = DEFAULT_PREFIX.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag}: missing value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--redis" => redis = Some(value()?),
            "--config" => config = Some(value()?),
            "--prefix" => prefix = value()?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or(format!("--listen is required\n{USAGE}"))?,
        redis: redis.ok_or(format!("--redis is required\n{USAGE}"))?,
        config: config.ok_or(format!("--config is required\n{USAGE}"))?,
        prefix,
    })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let text =
        std::fs::read_to_string(&args.config).map_err(|e| format!("{}: {e}", args.config))?;
    let config = Config::from_json(&text).map_err(|e| format!("{}: {e}", args.config))?;
    let limiter = Limiter::new(config, &args.redis, &args.prefix)
        .map_err(|e| format!("--redis {}: {e}", args.redis))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("rls-redis: serving {} on {addr}", rls_redis::proto::SERVICE);
        rls_redis::serve(listener, Arc::new(limiter), std::future::pending())
            .await
            .map_err(|e| e.to_string())
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rls-redis: {e}");
            ExitCode::FAILURE
        }
    }
}
