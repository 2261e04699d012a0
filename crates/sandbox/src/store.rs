//! Per-call store state: WASI context, capabilities, and the resource limiter.
//!
//! A [`HostState`] (and its store) is built for every instance and dropped with it: one per
//! integration or load-time call, one per plugin per agent run (see [`crate::instance`]), so no
//! guest state crosses runs.

use crate::capabilities::CallContext;
use crate::capabilities::kv::KvAccess;
use crate::capabilities::log::LogState;
use crate::capabilities::network::NetworkGuard;
use crate::capabilities::secrets::SecretsAccess;
use crate::limits::{
    MAX_GUEST_INSTANCES, MAX_GUEST_MEMORIES, MAX_GUEST_TABLE_ELEMENTS, MAX_GUEST_TABLES,
};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The capabilities of one call.
pub struct Capabilities {
    /// Who is calling (receipts, denials).
    pub ctx: Arc<CallContext>,
    /// Outbound HTTP policy (the `WasiHttpHooks`).
    pub network: NetworkGuard,
    /// Secret access.
    pub secrets: SecretsAccess,
    /// Key-value storage.
    pub kv: KvAccess,
    /// Log lines of this call.
    pub log: LogState,
}

/// The `T` of `Store<T>` for plugin calls.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) caps: Capabilities,
    /// When the current call must end; host waits end here too
    /// ([`crate::capabilities::blocking`]).
    pub(crate) deadline: std::time::Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.caps.network,
        }
    }
}

impl crate::bindings::nitejar::plugin::types::Host for HostState {}

/// A resource limit the guest hit; carried as the trap's error so failures are classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitHit {
    /// Linear memory would exceed the limit.
    #[error("memory limit of {limit} bytes exceeded (asked for {desired})")]
    Memory {
        /// Requested size.
        desired: usize,
        /// The limit.
        limit: usize,
    },
    /// A table would exceed the element limit.
    #[error("table limit of {limit} elements exceeded (asked for {desired})")]
    Table {
        /// Requested elements.
        desired: usize,
        /// The limit.
        limit: usize,
    },
}

/// Memory and table limits of one store; growth past them traps with a [`LimitHit`].
pub struct GuestLimiter {
    memory_bytes: usize,
}

impl GuestLimiter {
    /// A limiter allowing `memory_bytes` of linear memory.
    pub fn new(memory_bytes: usize) -> Self {
        GuestLimiter { memory_bytes }
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(LimitHit::Memory {
                desired,
                limit: self.memory_bytes,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_GUEST_TABLE_ELEMENTS {
            return Err(LimitHit::Table {
                desired,
                limit: MAX_GUEST_TABLE_ELEMENTS,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_GUEST_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_GUEST_TABLES
    }

    fn memories(&self) -> usize {
        MAX_GUEST_MEMORIES
    }
}
