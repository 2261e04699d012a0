//! Host calls a guest can block in end at the call's deadline.
//!
//! The epoch deadline interrupts running wasm only. A guest that waits inside the host (a
//! `wasi:clocks` sleep through `wasi:io/poll`, an HTTP body that stalls after its headers, a
//! blocking write) would otherwise keep its thread past any limit. Every `wasi:io` operation
//! that can wait is replaced here by the same operation raced against the call's deadline
//! ([`HostState::deadline`]): when the deadline passes first, the call traps with
//! [`DeadlineHit`], which is classified as a timeout like an epoch interrupt, so the receipt says
//! when it was stopped and the thread is free at once.

use crate::store::HostState;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    Host as _, HostInputStream as _, HostOutputStream as _, StreamError as WitStreamError,
};
use wasmtime_wasi_io::streams::StreamError;

/// The interfaces replaced (the version the host links; older guest imports resolve to it).
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// The call's deadline passed while the guest waited in a host call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call's deadline passed while the plugin waited in a host call")]
pub struct DeadlineHit;

/// Runs `f` (a host wait) until it finishes or the call's deadline passes.
fn bounded<T>(
    deadline: std::time::Instant,
    f: impl std::future::Future<Output = T>,
) -> wasmtime::Result<T> {
    wasmtime_wasi::runtime::in_tokio(async move {
        tokio::time::timeout_at(deadline.into(), f)
            .await
            .map_err(|_| wasmtime::Error::new(DeadlineHit))
    })
}

/// A stream result as the guest sees it: a trap, or the WIT result with the error converted.
fn stream<T>(
    table: &mut wasmtime::component::ResourceTable,
    r: Result<T, StreamError>,
) -> wasmtime::Result<(Result<T, WitStreamError>,)> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(table.convert_stream_error(e)?),)),
    }
}

type Ctx<'a> = StoreContextMut<'a, HostState>;

/// Replaces every waiting `wasi:io` operation with its deadline-bounded form.
pub fn link_bounded_waits(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut s: Ctx<'_>, (ps,): (Vec<Resource<DynPollable>>,)| {
            let st = s.data_mut();
            let ready = bounded(st.deadline, st.table.poll(ps))??;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut s: Ctx<'_>, (p,): (Resource<DynPollable>,)| {
            let st = s.data_mut();
            bounded(st.deadline, st.table.block(p))??;
            Ok(())
        },
    )?;
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap(
        "[method]input-stream.blocking-read",
        |mut s: Ctx<'_>, (st_, len): (Resource<DynInputStream>, u64)| {
            let st = s.data_mut();
            let r = bounded(st.deadline, st.table.blocking_read(st_, len))?;
            stream(&mut st.table, r)
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut s: Ctx<'_>, (st_, len): (Resource<DynInputStream>, u64)| {
            let st = s.data_mut();
            let r = bounded(st.deadline, st.table.blocking_skip(st_, len))?;
            stream(&mut st.table, r)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut s: Ctx<'_>, (st_, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let st = s.data_mut();
            let r = bounded(st.deadline, st.table.blocking_write_and_flush(st_, bytes))?;
            stream(&mut st.table, r)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut s: Ctx<'_>, (st_, len): (Resource<DynOutputStream>, u64)| {
            let st = s.data_mut();
            let r = bounded(
                st.deadline,
                st.table.blocking_write_zeroes_and_flush(st_, len),
            )?;
            stream(&mut st.table, r)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut s: Ctx<'_>, (st_,): (Resource<DynOutputStream>,)| {
            let st = s.data_mut();
            let r = bounded(st.deadline, st.table.blocking_flush(st_))?;
            stream(&mut st.table, r)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut s: Ctx<'_>,
         (dst, src, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let st = s.data_mut();
            let r = bounded(st.deadline, st.table.blocking_splice(dst, src, len))?;
            stream(&mut st.table, r)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
