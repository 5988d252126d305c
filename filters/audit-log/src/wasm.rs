//! Registers audit-log with the proxy-wasm adapter of shieldwall-core: the record is written in
//! `on_log`, after every filter of the chain has decided.
shieldwall_core::export_filter!(crate::filter::AuditLog, log);
