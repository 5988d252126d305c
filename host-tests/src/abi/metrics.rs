//! Metrics: ids carry the type in their low two bits, as Envoy's `Wasm` numbers them; values
//! live in the Envoy-wide store by name.

use super::{read_str, status, write_u32, write_u64, Ctx};
use crate::state::metrics::MetricKind;
use crate::vm::HostCtx;
use wasmtime::Linker;

const TYPE_MASK: u32 = 0x3;

fn lookup(c: &Ctx, id: u32) -> Option<(MetricKind, String)> {
    let name = c.data().metric_ids.get(&id)?.clone();
    MetricKind::from_abi(id & TYPE_MASK).map(|k| (k, name))
}

pub(crate) fn add(l: &mut Linker<HostCtx>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx, t: i32, np: i32, nl: i32, id_ptr: i32| -> wasmtime::Result<i32> {
            let Some(kind) = MetricKind::from_abi(t as u32) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let Some(name) = read_str(&mut c, np, nl)? else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let h = c.data_mut();
            h.next_metric_seq += 1;
            let id = (h.next_metric_seq << 2) | t as u32;
            h.metric_ids.insert(id, name.clone());
            h.envoy.borrow_mut().metrics.define(kind, &name);
            if !write_u32(&mut c, id_ptr, id)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Ctx, id: i32, offset: i64| -> wasmtime::Result<i32> {
            let Some((kind, name)) = lookup(&c, id as u32) else {
                return Ok(if (id as u32 & TYPE_MASK) == 2 {
                    status::BAD_ARGUMENT
                } else {
                    status::NOT_FOUND
                });
            };
            let mut e = c.data().envoy.borrow_mut();
            let Some(m) = e.metrics.by_name.get_mut(&name) else {
                return Ok(status::NOT_FOUND);
            };
            Ok(match kind {
                // Envoy refuses to move a counter by zero or less.
                MetricKind::Counter if offset > 0 => {
                    m.value = m.value.wrapping_add(offset as u64);
                    status::OK
                }
                MetricKind::Counter => status::BAD_ARGUMENT,
                MetricKind::Gauge => {
                    m.value = m.value.wrapping_add(offset as u64);
                    status::OK
                }
                MetricKind::Histogram => status::BAD_ARGUMENT,
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Ctx, id: i32, value: i64| -> wasmtime::Result<i32> {
            let Some((kind, name)) = lookup(&c, id as u32) else {
                return Ok(status::NOT_FOUND);
            };
            let mut e = c.data().envoy.borrow_mut();
            let Some(m) = e.metrics.by_name.get_mut(&name) else {
                return Ok(status::NOT_FOUND);
            };
            match kind {
                MetricKind::Counter => m.value = m.value.wrapping_add(value as u64),
                MetricKind::Gauge => m.value = value as u64,
                MetricKind::Histogram => m.samples.push(value as u64),
            }
            Ok(status::OK)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Ctx, id: i32, ptr: i32| -> wasmtime::Result<i32> {
            let Some((kind, name)) = lookup(&c, id as u32) else {
                return Ok(status::NOT_FOUND);
            };
            if kind == MetricKind::Histogram {
                return Ok(status::BAD_ARGUMENT);
            }
            let v = c
                .data()
                .envoy
                .borrow()
                .metrics
                .by_name
                .get(&name)
                .map_or(0, |m| m.value);
            if !write_u64(&mut c, ptr, v)? {
                return Ok(status::INVALID_MEMORY_ACCESS);
            }
            Ok(status::OK)
        },
    )?;
    Ok(())
}
