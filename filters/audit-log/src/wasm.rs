//! Registers audit-log with the proxy-wasm adapter of shieldwall-core: the record is written in
//! `on_log`, after every filter of the chain has decided; the HTTP sink's sender works on the
//! tick and receives its batches' answers (neither runs without `sinks.http`).
shieldwall_core::export_filter!(crate::filter::AuditLog, log, http_call_response);
