//! proxy_log and proxy_get_log_level.

use super::{read_str, status, write_u32, Ctx};
use crate::vm::{HostCtx, LogLevel};
use wasmtime::Linker;

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx, level: i32, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let Some(msg) = read_str(&mut c, ptr, len)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let Some(level) = LogLevel::from_abi(level) else {
                return Ok(status::BAD_ARGUMENT);
            };
            c.data_mut().push_log(level, msg);
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Ctx, ptr: i32| -> wasmtime::Result<i32> {
            let level = c.data().envoy.borrow().log_level as u32;
            if !write_u32(&mut c, ptr, level)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    Ok(())
}
