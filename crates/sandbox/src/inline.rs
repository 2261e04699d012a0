//! Webhook parse calls on the caller's thread, when they cannot wait.
//!
//! A webhook's `parse-webhook` call takes tens of microseconds, but handing it to a blocking
//! thread and back costs two cross-thread wake-ups, and on a busy machine each waits for a core:
//! that is most of a webhook's tail latency. The call can run on the async worker that took the
//! request only if it can never block that worker, so it first runs in a *restricted* instance:
//!
//! - the instance is linked against a linker that provides only what cannot wait or act outside
//!   the store: `nitejar:plugin/log` (held for the call's receipt, and sent to the host's log
//!   only when the attempt stands: [`crate::capabilities::log::LogState::deferred`]),
//!   `wasi:random` and the clocks' `now` and `resolution`. Every other import (keys and values,
//!   secrets, files, streams, polls, sleeps, HTTP, sockets, the environment) is defined as a
//!   trap, so the attempt stops *before* the plugin reaches anything that could block or leave
//!   an effect;
//! - it runs under a short deadline ([`crate::limits::INLINE_BUDGET_MS`]), so a slow plugin
//!   holds the worker for at most that long;
//! - at most [`inline_room`] attempts run at once, so one async worker always stays free.
//!
//! An attempt that returns (a result or the plugin's own error) is the call: it gets the same
//! receipt as any call. One that stops for any other reason (a trapped import, the short
//! deadline, fuel, memory, a trap) leaves nothing behind, and the call runs again from the start
//! on a blocking thread with the full deadline and every capability, as it would have without
//! this path. The plugin's version then stays on that path (it has shown it needs it), except
//! that running out of time moves it only at the [`crate::limits::INLINE_STRIKES`]th time (a
//! thread waiting for a core on a loaded machine runs out of time too). A full instance pool is
//! the host's, never a strike. The attempt could only compute, read the clocks and buffer log
//! lines, none of which the second run can see, so the plugin observes one call.

use crate::store::HostState;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Engine, StoreContextMut};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};
use wasmtime_wasi::random::WasiRandomView;

type Ctx<'a> = StoreContextMut<'a, HostState>;

/// Attempts that may run on async workers at once: one fewer than the cores (at least one), so
/// a worker is always left for requests.
pub fn inline_room() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// The restricted instance of `component` (see the module docs).
pub(crate) fn prepare(
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<InstancePre<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    crate::bindings::nitejar::plugin::log::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    // Defined under the exact name (with the version) each import has: the trap stubs below
    // are defined per exact name too, so a stub would otherwise stand in front of a definition
    // made for another 0.2.x version.
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for name in &imports {
        let unversioned = name.split('@').next().unwrap_or(name);
        match unversioned {
            "wasi:random/random" => {
                let mut i = linker.instance(name)?;
                i.func_wrap("get-random-bytes", |mut s: Ctx<'_>, (len,): (u64,)| {
                    Ok((random::Host::get_random_bytes(
                        WasiRandomView::random(s.data_mut()),
                        len,
                    )?,))
                })?;
                i.func_wrap("get-random-u64", |mut s: Ctx<'_>, (): ()| {
                    Ok((random::Host::get_random_u64(WasiRandomView::random(
                        s.data_mut(),
                    ))?,))
                })?;
            }
            "wasi:random/insecure" => {
                let mut i = linker.instance(name)?;
                i.func_wrap(
                    "get-insecure-random-bytes",
                    |mut s: Ctx<'_>, (len,): (u64,)| {
                        Ok((insecure::Host::get_insecure_random_bytes(
                            WasiRandomView::random(s.data_mut()),
                            len,
                        )?,))
                    },
                )?;
                i.func_wrap("get-insecure-random-u64", |mut s: Ctx<'_>, (): ()| {
                    Ok((insecure::Host::get_insecure_random_u64(
                        WasiRandomView::random(s.data_mut()),
                    )?,))
                })?;
            }
            "wasi:random/insecure-seed" => {
                let mut i = linker.instance(name)?;
                i.func_wrap("insecure-seed", |mut s: Ctx<'_>, (): ()| {
                    Ok((insecure_seed::Host::insecure_seed(WasiRandomView::random(
                        s.data_mut(),
                    ))?,))
                })?;
            }
            "wasi:clocks/wall-clock" => {
                let mut i = linker.instance(name)?;
                i.func_wrap("now", |mut s: Ctx<'_>, (): ()| {
                    Ok((wall_clock::Host::now(&mut WasiClocksView::clocks(
                        s.data_mut(),
                    ))?,))
                })?;
                i.func_wrap("resolution", |mut s: Ctx<'_>, (): ()| {
                    Ok((wall_clock::Host::resolution(&mut WasiClocksView::clocks(
                        s.data_mut(),
                    ))?,))
                })?;
            }
            "wasi:clocks/monotonic-clock" => {
                // `subscribe-*` make pollables, which only a wait can use: trapped below.
                let mut i = linker.instance(name)?;
                i.func_wrap("now", |mut s: Ctx<'_>, (): ()| {
                    Ok((monotonic_clock::Host::now(&mut WasiClocksView::clocks(
                        s.data_mut(),
                    ))?,))
                })?;
                i.func_wrap("resolution", |mut s: Ctx<'_>, (): ()| {
                    Ok((monotonic_clock::Host::resolution(
                        &mut WasiClocksView::clocks(s.data_mut()),
                    )?,))
                })?;
            }
            _ => {}
        }
    }
    linker.define_unknown_imports_as_traps(component)?;
    linker.instantiate_pre(component)
}
