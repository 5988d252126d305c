//! Host state that does not depend on wasm: one instance per simulated Envoy, shared by every
//! worker and every VM, like Envoy's process-wide singletons.

pub mod clock;
pub mod metrics;
pub mod queues;
pub mod shared_data;
pub mod upstreams;
