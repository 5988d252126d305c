//! The WASI (preview 1) imports a Rust `wasm32-wasip1` cdylib pulls in, answered the way
//! Envoy's host does: stdout/stderr go to the plugin's log, time comes from the test clock,
//! there are no arguments and no files; the environment is the plugin's (`Plugin::env`, Envoy's
//! `vm_config.environment_variables`).

use super::{read, write, write_u32, write_u64, Ctx};
use crate::vm::{HostCtx, LogLevel};
use wasmtime::format_err as anyhow;
use wasmtime::Linker;

const M: &str = "wasi_snapshot_preview1";
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;
const ENOTCAPABLE: i32 = 76;

/// The plugin's environment as WASI hands it over: `NAME=value\0` each.
fn environ(c: &Ctx) -> Vec<Vec<u8>> {
    c.data()
        .plugin
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        M,
        "fd_write",
        |mut c: Ctx, fd: i32, iovs: i32, n: i32, written_ptr: i32| -> wasmtime::Result<i32> {
            if fd != 1 && fd != 2 {
                return Ok(EBADF);
            }
            let mut data = Vec::new();
            for i in 0..n {
                let Some(iov) = read(&mut c, iovs + i * 8, 8)? else {
                    return Ok(EINVAL);
                };
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                let Some(b) = read(&mut c, ptr, len)? else {
                    return Ok(EINVAL);
                };
                data.extend_from_slice(&b);
            }
            let level = if fd == 1 {
                LogLevel::Info
            } else {
                LogLevel::Error
            };
            c.data_mut().write_stdio(fd as usize, level, &data);
            write_u32(&mut c, written_ptr, data.len() as u32)?;
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(
        M,
        "fd_read",
        |_c: Ctx, _fd: i32, _iovs: i32, _n: i32, _r: i32| -> wasmtime::Result<i32> { Ok(EBADF) },
    )?;
    l.func_wrap(
        M,
        "fd_close",
        |_c: Ctx, _fd: i32| -> wasmtime::Result<i32> { Ok(EBADF) },
    )?;
    l.func_wrap(
        M,
        "fd_seek",
        |_c: Ctx, _fd: i32, _off: i64, _w: i32, _r: i32| -> wasmtime::Result<i32> { Ok(EBADF) },
    )?;
    l.func_wrap(M, "fd_sync", |_c: Ctx, _fd: i32| -> wasmtime::Result<i32> {
        Ok(EBADF)
    })?;
    l.func_wrap(
        M,
        "fd_filestat_get",
        |_c: Ctx, _fd: i32, _p: i32| -> wasmtime::Result<i32> { Ok(EBADF) },
    )?;
    l.func_wrap(
        M,
        "fd_fdstat_get",
        |mut c: Ctx, fd: i32, p: i32| -> wasmtime::Result<i32> {
            if !(0..=2).contains(&fd) {
                return Ok(EBADF);
            }
            // A character device with no rights beyond writing: enough for std's stdio.
            let mut stat = [0u8; 24];
            stat[0] = 2;
            write(&mut c, p, &stat)?;
            Ok(SUCCESS)
        },
    )?;
    // No preopened directories: std stops looking at the first EBADF.
    l.func_wrap(
        M,
        "fd_prestat_get",
        |_c: Ctx, _fd: i32, _p: i32| -> wasmtime::Result<i32> { Ok(EBADF) },
    )?;
    l.func_wrap(
        M,
        "fd_prestat_dir_name",
        |_c: Ctx, _fd: i32, _p: i32, _l: i32| -> wasmtime::Result<i32> { Ok(EBADF) },
    )?;
    l.func_wrap(
        M,
        "path_open",
        |_c: Ctx,
         _fd: i32,
         _df: i32,
         _p: i32,
         _pl: i32,
         _of: i32,
         _rb: i64,
         _ri: i64,
         _ff: i32,
         _r: i32|
         -> wasmtime::Result<i32> { Ok(ENOTCAPABLE) },
    )?;
    l.func_wrap(
        M,
        "args_sizes_get",
        |mut c: Ctx, count: i32, size: i32| -> wasmtime::Result<i32> {
            write_u32(&mut c, count, 0)?;
            write_u32(&mut c, size, 0)?;
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(
        M,
        "args_get",
        |_c: Ctx, _a: i32, _b: i32| -> wasmtime::Result<i32> { Ok(SUCCESS) },
    )?;
    l.func_wrap(
        M,
        "environ_sizes_get",
        |mut c: Ctx, count: i32, size: i32| -> wasmtime::Result<i32> {
            let entries = environ(&c);
            let bytes: usize = entries.iter().map(Vec::len).sum();
            write_u32(&mut c, count, entries.len() as u32)?;
            write_u32(&mut c, size, bytes as u32)?;
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(
        M,
        "environ_get",
        |mut c: Ctx, pointers: i32, buffer: i32| -> wasmtime::Result<i32> {
            let mut at = buffer;
            for (i, entry) in environ(&c).iter().enumerate() {
                write_u32(&mut c, pointers + 4 * i as i32, at as u32)?;
                write(&mut c, at, entry)?;
                at += entry.len() as i32;
            }
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(
        M,
        "clock_time_get",
        |mut c: Ctx, _id: i32, _precision: i64, p: i32| -> wasmtime::Result<i32> {
            let now = c.data().envoy.borrow().clock.now_nanos;
            write_u64(&mut c, p, now)?;
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(
        M,
        "clock_res_get",
        |mut c: Ctx, _id: i32, p: i32| -> wasmtime::Result<i32> {
            write_u64(&mut c, p, 1)?;
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(
        M,
        "random_get",
        |mut c: Ctx, p: i32, len: i32| -> wasmtime::Result<i32> {
            // Deterministic bytes: runs are reproducible, and guests must not rely on more.
            let bytes: Vec<u8> = {
                let h = c.data_mut();
                (0..len.max(0))
                    .map(|_| {
                        h.rng = h
                            .rng
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (h.rng >> 33) as u8
                    })
                    .collect()
            };
            write(&mut c, p, &bytes)?;
            Ok(SUCCESS)
        },
    )?;
    l.func_wrap(M, "sched_yield", |_c: Ctx| -> wasmtime::Result<i32> {
        Ok(SUCCESS)
    })?;
    l.func_wrap(
        M,
        "poll_oneoff",
        |_c: Ctx, _i: i32, _o: i32, _n: i32, _r: i32| -> wasmtime::Result<i32> { Ok(ENOSYS) },
    )?;
    l.func_wrap(
        M,
        "proc_exit",
        |_c: Ctx, code: i32| -> wasmtime::Result<()> { Err(anyhow!("proc_exit({code})")) },
    )?;
    Ok(())
}
