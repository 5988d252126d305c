//! proxy_get_shared_data / proxy_set_shared_data, keyed by the VM's vm_id.

use super::{read, read_str, return_bytes, status, write_u32, Ctx};
use crate::vm::HostCtx;
use wasmtime::Linker;

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx,
         kp: i32,
         kl: i32,
         ptr_ptr: i32,
         size_ptr: i32,
         cas_ptr: i32|
         -> wasmtime::Result<i32> {
            let Some(key) = read_str(&mut c, kp, kl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let vm_id = c.data().plugin.vm_id.clone();
            let found = c.data().envoy.borrow().shared_data.get(&vm_id, &key);
            let Some((value, cas)) = found else {
                return Ok(status::NOT_FOUND);
            };
            let st = return_bytes(&mut c, &value, ptr_ptr, size_ptr)?;
            if st != status::OK {
                return Ok(st);
            }
            if !write_u32(&mut c, cas_ptr, cas)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> wasmtime::Result<i32> {
            let (Some(key), Some(value)) = (read_str(&mut c, kp, kl)?, read(&mut c, vp, vl)?)
            else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let vm_id = c.data().plugin.vm_id.clone();
            let r = c
                .data()
                .envoy
                .borrow_mut()
                .shared_data
                .set(&vm_id, &key, &value, cas as u32);
            Ok(match r {
                Ok(()) => status::OK,
                Err(_) => status::CAS_MISMATCH,
            })
        },
    )?;
    Ok(())
}
