//! Shared queues: register/resolve/enqueue/dequeue. `on_queue_ready` is posted to the VM that
//! registered the queue and runs after the current callback, as Envoy posts it to that
//! worker's dispatcher.

use super::{read, read_str, return_bytes, status, write_u32, Ctx};
use crate::envoy::EventKind;
use crate::state::queues::{DequeueError, QueueOwner};
use crate::vm::HostCtx;
use wasmtime::Linker;

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Ctx, np: i32, nl: i32, id_ptr: i32| -> wasmtime::Result<i32> {
            let Some(name) = read_str(&mut c, np, nl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let h = c.data();
            let owner = QueueOwner {
                worker: h.worker,
                vm: h.vm_index,
                context_id: h.root_context_id,
            };
            let vm_id = h.plugin.vm_id.clone();
            let token = h.envoy.borrow_mut().queues.register(&vm_id, &name, owner);
            if !write_u32(&mut c, id_ptr, token)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Ctx, vp: i32, vl: i32, np: i32, nl: i32, id_ptr: i32| -> wasmtime::Result<i32> {
            let (Some(vm_id), Some(name)) = (read_str(&mut c, vp, vl)?, read_str(&mut c, np, nl)?)
            else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let token = c.data().envoy.borrow().queues.resolve(&vm_id, &name);
            let Some(token) = token else {
                return Ok(status::NOT_FOUND);
            };
            if !write_u32(&mut c, id_ptr, token)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Ctx, token: i32, vp: i32, vl: i32| -> wasmtime::Result<i32> {
            let Some(value) = read(&mut c, vp, vl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let envoy = c.data().envoy.clone();
            let mut e = envoy.borrow_mut();
            match e.queues.enqueue(token as u32, &value) {
                None => Ok(status::NOT_FOUND),
                Some(owner) => {
                    if let Some(o) = owner {
                        e.post(
                            o.worker,
                            o.vm,
                            0,
                            EventKind::QueueReady {
                                context_id: o.context_id,
                                queue: token as u32,
                            },
                        );
                    }
                    Ok(status::OK)
                }
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Ctx, token: i32, ptr_ptr: i32, size_ptr: i32| -> wasmtime::Result<i32> {
            let r = c.data().envoy.borrow_mut().queues.dequeue(token as u32);
            match r {
                Ok(v) => return_bytes(&mut c, &v, ptr_ptr, size_ptr),
                Err(DequeueError::NotFound) => Ok(status::NOT_FOUND),
                Err(DequeueError::Empty) => Ok(status::EMPTY),
            }
        },
    )?;
    Ok(())
}
