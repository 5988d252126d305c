//! The echo upstream as a process, for the local gateway: `echo [--port N]` (default 8081).
//! Answers every request with 200 and a JSON body of what it received (see `shieldwall_e2e::echo`).

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

fn main() -> ExitCode {
    let mut port: u16 = 8081;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(p)) => match p.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("echo: --port: not a port: {p}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: echo [--port N]");
                return ExitCode::from(2);
            }
        }
    }
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo: bind 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("echo listening on 127.0.0.1:{port}");
    shieldwall_e2e::echo::serve(
        listener,
        &AtomicBool::new(false),
        &Arc::new(AtomicU64::new(0)),
    );
    ExitCode::SUCCESS
}
