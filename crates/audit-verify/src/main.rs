//! `audit-verify [--allow-partial] FILE...`: checks every audit-log chain in the files (one record
//! per line, as Envoy's access log or a syslog collector writes them; other lines are skipped).
//! The chain key comes from `AUDIT_CHAIN_KEY`. Exit status: 0 when every chain is intact, 1 at the
//! first break (named: file, line, chain, reason) or when a file holds no record at all, 2 for a usage error or an unreadable file.
//!
//! `--allow-partial` accepts chains that do not start at seq 1 (a rotated file): their first
//! record is taken as given and every link after it is checked. `-` reads standard input.

use std::io::Read;
use std::process::ExitCode;

use audit_log::chain::verify;

const USAGE: &str =
    "usage: audit-verify [--allow-partial] FILE... (the key in AUDIT_CHAIN_KEY; - reads stdin)";

fn read(path: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    let result = if path == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| format!("{path}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn main() -> ExitCode {
    let mut allow_partial = false;
    let mut files: Vec<String> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--allow-partial" => allow_partial = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with("--") => {
                eprintln!("audit-verify: unknown option {a}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let key = match std::env::var("AUDIT_CHAIN_KEY") {
        Ok(k) if !k.is_empty() => k,
        _ => {
            eprintln!("audit-verify: AUDIT_CHAIN_KEY is not set");
            return ExitCode::from(2);
        }
    };
    for file in &files {
        let text = match read(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("audit-verify: {e}");
                return ExitCode::from(2);
            }
        };
        match verify(text.lines(), key.as_bytes(), allow_partial) {
            Ok(summary) if summary.records == 0 => {
                // Every record removed looks like this too: never call it intact.
                eprintln!("audit-verify: {file}: no audit records found");
                return ExitCode::from(1);
            }
            Ok(summary) => {
                println!(
                    "{file}: intact: {} records in {} chain(s), {} other line(s)",
                    summary.records,
                    summary.chains.len(),
                    summary.ignored
                );
                for (chain, (first, last)) in &summary.chains {
                    println!("  chain {chain}: seq {first}..{last}");
                }
            }
            Err(b) => {
                eprintln!(
                    "audit-verify: {file}:{}: chain {}: {}",
                    b.line, b.chain, b.reason
                );
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
