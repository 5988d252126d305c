//! The test clock: every VM reads it, `Envoy::advance` moves it.

/// 2025-01-01T00:00:00Z, so tokens and timestamps in tests look realistic.
pub const DEFAULT_START_NANOS: u64 = 1_735_689_600_000_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now_nanos: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            now_nanos: DEFAULT_START_NANOS,
        }
    }
}
