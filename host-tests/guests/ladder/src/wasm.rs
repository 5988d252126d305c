//! Registers the ladder filter with shieldwall-core's adapter, with no optional callback: the
//! exports every shieldwall filter has.
shieldwall_core::export_filter!(crate::Ladder);
