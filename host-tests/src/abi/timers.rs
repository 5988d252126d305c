//! The clock and the root context's tick.

use super::{status, write_u64, Ctx};
use crate::vm::HostCtx;
use wasmtime::Linker;

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx, ptr: i32| -> wasmtime::Result<i32> {
            let now = c.data().envoy.borrow().clock.now_nanos;
            if !write_u64(&mut c, ptr, now)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    // One tick per root context (we run one plugin per VM, so one per VM); 0 stops it. The
    // first tick comes one period after the call, as Envoy arms its timer.
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx, period: i32| -> wasmtime::Result<i32> {
            let now = c.data().envoy.borrow().clock.now_nanos;
            let h = c.data_mut();
            let period = period as u32;
            h.tick_period_ms = period;
            h.next_tick = (period > 0).then(|| now + period as u64 * 1_000_000);
            Ok(status::OK)
        },
    )?;
    Ok(())
}
