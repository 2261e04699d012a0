//! Plugin instances: how a bounded store is built, how one call runs in it, and the pool of
//! instances prepared ahead of demand.
//!
//! An instance serves either one call (integration calls, load-time inspection) or one agent
//! run (every hook, tool and delivery call of that run, see [`crate::hooks::RunScope`]); it is
//! dropped afterwards and never handed to another run, so no guest state crosses runs.
//! Instantiation is the expensive part of a call, so the [`Prewarmer`] keeps a few instances of
//! each plugin that serves runs ready on a background thread: a run takes one, and when it ends
//! its instances are queued for teardown and the pools it drew below half are topped up, off
//! the hot path and between runs rather than beside them (see [`Retired`] for how back-to-back
//! runs avoid waking the thread once or twice each).
//!
//! The same thread hands the code of idle plugins back to the kernel: a plugin's compiled
//! code is mapped from the compile cache (see [`crate::cache`]) and the pages a call touches
//! stay resident in the process afterwards. Once a plugin's load-time calls and first prepared
//! instances are done, and afterwards whenever no instance of it was made and no call ran
//! for a whole [`crate::limits::IDLE_CODE_RELEASE_MS`], its pages are released
//! (`MADV_PAGEOUT`). So 100 installed plugins nobody calls cost their metadata and prepared
//! instances, not their code; the first call after an idle spell reads the pages it needs
//! again (from the page cache, or the disk if the kernel reclaimed them).

use crate::bindings::exports::nitejar::plugin::hooks::{
    Guest as HooksGuest, GuestIndices as HooksIndices,
};
use crate::bindings::nitejar::plugin::types::PluginError as WitPluginError;
use crate::capabilities::kv::KvAccess;
use crate::capabilities::log::LogState;
use crate::capabilities::network::{NetworkGuard, refuse_raw_sockets};
use crate::capabilities::secrets::SecretsAccess;
use crate::capabilities::{CallContext, CallScope};
use crate::engine;
use crate::failure::PluginFailure;
use crate::hooks::HookName;
use crate::limits::{DEFAULT_INSPECT_TIMEOUT_MS, MAX_GUEST_OUTPUT_BYTES, MAX_TRANSFER_BYTES};
use crate::output::OutputSize;
use crate::receipts::ReceiptSink;
use crate::runtime::{CallSpec, Finished, LoadedPlugin};
use crate::store::{Capabilities, GuestLimiter, HostState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre, ResourceTable};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

/// Bytes of guest stderr kept per instance (for panic messages in failure receipts).
const GUEST_STDERR_CAPTURE_BYTES: usize = 4 << 10;

/// An instantiated plugin in its own bounded store.
pub struct Warm {
    /// Only ever reached through `&mut Warm` (`Mutex::get_mut`, no locking); the mutex makes
    /// `Warm` shareable by reference, which a run held across awaits needs.
    store: std::sync::Mutex<Store<HostState>>,
    instance: Instance,
    stderr: MemoryOutputPipe,
    ctx: Arc<CallContext>,
    poisoned: bool,
    /// The hooks export's typed functions, looked up once per instance.
    hooks: Option<HooksGuest>,
    /// The plugin's instruction budget per call, when set (else the default of the call kind).
    fuel_per_call: Option<u64>,
    /// The plugin's [`LoadedPlugin::code_used`] flag.
    code_used: Arc<AtomicBool>,
}

impl Warm {
    /// The hooks export's typed functions (looked up on first use, or ahead by the prewarmer).
    pub(crate) fn hooks_guest(&mut self, idx: &HooksIndices) -> wasmtime::Result<HooksGuest> {
        if let Some(g) = &self.hooks {
            return Ok(g.clone());
        }
        let store = self.store.get_mut().unwrap_or_else(|e| e.into_inner());
        let g = idx.load(&mut *store, &self.instance)?;
        self.hooks = Some(g.clone());
        Ok(g)
    }

    /// Whether a call trapped or timed out in this instance (it must not be called again).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Keeps the plugin's log lines off tracing until [`LogState::replay`] (see
    /// [`LogState::deferred`]).
    pub(crate) fn defer_logs(&mut self) {
        let store = self.store.get_mut().unwrap_or_else(|e| e.into_inner());
        store.data_mut().caps.log.deferred = true;
    }
}

/// What building a store needs; shared with the prewarm thread.
pub(crate) struct StoreFactory {
    pub(crate) memory_bytes: usize,
    pub(crate) kv: Option<Arc<dyn crate::capabilities::kv::KvStore>>,
    pub(crate) kv_quota: crate::capabilities::kv::KvQuota,
    pub(crate) receipts: ReceiptSink,
    pub(crate) handle: Option<tokio::runtime::Handle>,
}

impl StoreFactory {
    /// Builds a bounded store for `plugin` and instantiates it (start functions run under the
    /// inspection deadline).
    pub(crate) fn instantiate(&self, plugin: &LoadedPlugin) -> Result<Warm, PluginFailure> {
        self.instantiate_from(plugin, &plugin.pre, true)
    }

    /// [`Self::instantiate`] from `pre`: the plugin's, or its restricted form
    /// ([`crate::inline`]), which gets no preopened directories (`preopen` false): its file
    /// imports are traps, and opening them is file-system work an async worker must not do.
    pub(crate) fn instantiate_from(
        &self,
        plugin: &LoadedPlugin,
        pre: &InstancePre<HostState>,
        preopen: bool,
    ) -> Result<Warm, PluginFailure> {
        mark_used(&plugin.code_used);
        let ctx = Arc::new(CallContext::new(
            plugin.id.clone(),
            plugin.version.clone(),
            self.receipts.clone(),
        ));
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_CAPTURE_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone())
            .allow_tcp(true)
            .allow_udp(true)
            .socket_addr_check(refuse_raw_sockets(ctx.clone()))
            .allow_ip_name_lookup(false);
        if preopen {
            plugin
                .filesystem
                .apply(&mut wasi)
                .map_err(|e| PluginFailure::Instantiate {
                    detail: format!("preopening the plugin's directories failed: {e:#}"),
                })?;
        }
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(self.memory_bytes),
            caps: Capabilities {
                network: NetworkGuard {
                    policy: plugin.network.clone(),
                    ctx: ctx.clone(),
                    deadline: Instant::now() + Duration::from_millis(DEFAULT_INSPECT_TIMEOUT_MS),
                },
                secrets: SecretsAccess {
                    policy: plugin.secrets.clone(),
                },
                kv: KvAccess {
                    store: self.kv.clone(),
                    quota: self.kv_quota,
                    handle: self.handle.clone(),
                },
                log: LogState::default(),
                ctx: ctx.clone(),
            },
            // Instantiation runs under the inspection deadline; every call sets its own.
            deadline: Instant::now() + Duration::from_millis(DEFAULT_INSPECT_TIMEOUT_MS),
        };
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Bounds what one lift may copy into host memory, before the output cap is checked.
        store.set_hostcall_fuel(MAX_TRANSFER_BYTES);
        store.set_epoch_deadline(engine::deadline_ticks(DEFAULT_INSPECT_TIMEOUT_MS));
        store.epoch_deadline_trap();
        // Instantiation runs start functions: budgeted like a load call (an error here only
        // means budgets are off).
        let _ = store.set_fuel(plugin.fuel_budget("load"));
        match pre.instantiate(&mut store) {
            // The hooks export's typed functions are looked up when first called (by the
            // prewarm thread for a run's instance): an integration call's instance never needs
            // them, and looking them up was a tenth of a webhook's parse call.
            Ok(instance) => Ok(Warm {
                store: std::sync::Mutex::new(store),
                instance,
                stderr,
                ctx,
                poisoned: false,
                hooks: None,
                fuel_per_call: plugin.fuel_per_call,
                code_used: plugin.code_used.clone(),
            }),
            Err(e) => {
                let text = String::from_utf8_lossy(&stderr.contents()).into_owned();
                Err(PluginFailure::classify(
                    &e,
                    DEFAULT_INSPECT_TIMEOUT_MS,
                    &text,
                ))
            }
        }
    }
}

/// Runs one call in `warm` under the spec's deadline; classifies failures and measures output.
/// A trap, timeout or limit hit poisons the instance.
pub(crate) fn invoke<R: OutputSize>(
    warm: &mut Warm,
    spec: &CallSpec<'_>,
    f: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<Result<R, WitPluginError>>,
) -> Finished<R> {
    let start = Instant::now();
    if warm.poisoned {
        return Finished {
            result: Err(PluginFailure::Instantiate {
                detail: "the instance failed earlier in this run".into(),
            }),
            duration: start.elapsed(),
            logs: LogState::default(),
            fuel_used: None,
        };
    }
    mark_used(&warm.code_used);
    let store = warm.store.get_mut().unwrap_or_else(|e| e.into_inner());
    warm.ctx.set_scope(CallScope {
        work_item_id: spec.correlation.work_item_id.clone(),
        job_id: spec.correlation.job_id.clone(),
        hook_name: spec.hook.map(HookName::as_str),
    });
    let deadline = start + Duration::from_millis(spec.timeout_ms);
    store.data_mut().caps.network.deadline = deadline;
    store.data_mut().deadline = deadline;
    store.set_epoch_deadline(engine::deadline_ticks(spec.timeout_ms));
    let budget = warm
        .fuel_per_call
        .unwrap_or_else(|| crate::limits::default_fuel(spec.kind));
    let metered = store.set_fuel(budget).is_ok();
    let cap = output_cap(spec.input_bytes);
    store.set_hostcall_fuel(transfer_limit(cap));
    let outcome = f(store, &warm.instance);
    let mut fuel_used = metered
        .then(|| store.get_fuel().ok())
        .flatten()
        .map(|left| budget.saturating_sub(left));
    let result = match outcome {
        Err(e) => {
            warm.poisoned = true;
            let text = String::from_utf8_lossy(&warm.stderr.contents()).into_owned();
            match PluginFailure::classify(&e, spec.timeout_ms, &text) {
                // With fuel on, wasmtime delivers an epoch interrupt through the fuel check
                // (the remaining fuel reads zero): past the deadline it is the deadline that
                // stopped the call, and the count is not the guest's.
                PluginFailure::FuelExhausted { .. } | PluginFailure::Timeout { .. }
                    if start.elapsed() >= Duration::from_millis(spec.timeout_ms) =>
                {
                    fuel_used = None;
                    Err(PluginFailure::Timeout {
                        timeout_ms: spec.timeout_ms,
                    })
                }
                PluginFailure::FuelExhausted { .. } => Err(PluginFailure::FuelExhausted { budget }),
                PluginFailure::TransferTooLarge { .. } => Err(PluginFailure::TransferTooLarge {
                    limit: transfer_limit(cap),
                }),
                // The instance exists: what failed is a value crossing the boundary (a bad
                // discriminant, a pointer out of bounds, a string that is not UTF-8 in what
                // the plugin returned, or its allocator's answer while the host passed the
                // arguments). The plugin's fault, not instantiation's.
                PluginFailure::Instantiate { detail } => {
                    Err(PluginFailure::InvalidOutput { detail })
                }
                other => Err(other),
            }
        }
        // A plugin's own error text reaches receipts, logs and the operator's screens: escaped
        // and bounded here, once.
        Ok(Err(pe)) => Err(PluginFailure::PluginError {
            code: crate::capabilities::log::sanitize(&pe.code, 64),
            message: crate::capabilities::log::sanitize(&pe.message, 1024),
            retryable: pe.retryable,
        }),
        Ok(Ok(value)) => {
            let bytes = value.output_bytes();
            if bytes > cap {
                Err(PluginFailure::OutputTooLarge { bytes, limit: cap })
            } else {
                Ok(value)
            }
        }
    };
    let logs = std::mem::take(&mut store.data_mut().caps.log);
    Finished {
        result,
        duration: start.elapsed(),
        logs,
        fuel_used,
    }
}

/// Notes that a plugin's code ran (written only when it changes: every run calls every hook
/// plugin, and the flag's cache line is shared by the threads that do).
fn mark_used(flag: &AtomicBool) {
    if !flag.load(Ordering::Relaxed) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// The most bytes a call may return: [`MAX_GUEST_OUTPUT_BYTES`] more than it was given.
fn output_cap(input_bytes: usize) -> usize {
    MAX_GUEST_OUTPUT_BYTES.saturating_add(input_bytes)
}

/// What one lift may copy for a call whose output cap is `cap` (see [`MAX_TRANSFER_BYTES`]:
/// twice the cap, so a value just under it always lifts).
fn transfer_limit(cap: usize) -> usize {
    cap.saturating_mul(MAX_TRANSFER_BYTES / MAX_GUEST_OUTPUT_BYTES)
}

/// Work for the prewarm thread.
enum Chore {
    /// Top up this plugin's pool.
    Refill(Weak<LoadedPlugin>),
    /// Tear down the instances waiting in the retired queue (sent only to a parked thread).
    Retire,
    /// Keep top-ups waiting until the matching [`Chore::Resume`] (see [`PrewarmHold`]).
    Hold,
    /// Do the top-ups that waited since the matching [`Chore::Hold`], in the order asked.
    Resume,
    /// Answer once every chore sent before this one is done (or waits under a hold).
    Flush(mpsc::Sender<()>),
}

/// While it lives, the prewarm thread prepares no instances and hands back no code: top-ups
/// asked for meanwhile wait, in order, and are done when it is dropped. A boot holds it while
/// it loads its plugins, so the two cores go to putting plugins in service first (see
/// [`crate::runtime::PluginRuntime::hold_prewarm`]). Retiring finished instances goes on.
#[must_use = "dropping the hold resumes the prewarm thread at once"]
pub struct PrewarmHold {
    tx: mpsc::Sender<Chore>,
}

impl Drop for PrewarmHold {
    fn drop(&mut self) {
        let _ = self.tx.send(Chore::Resume);
    }
}

/// Keeps instances of each run-serving plugin ready (one at first, more as runs ask: up to
/// [`crate::limits::PREWARMED_INSTANCES`]), built on a
/// background thread, and tears down the instances of finished runs there too, so neither
/// instantiation nor teardown is on a run's path; hands idle plugins' code back to the kernel
/// (see the module docs). Holds plugins weakly: a disabled or replaced version's pool dies
/// with it.
pub(crate) struct Prewarmer {
    tx: mpsc::Sender<Chore>,
    /// Instances of finished runs waiting for the prewarm thread to tear them down.
    retired: Arc<Retired>,
    /// Every plugin loaded (to give prepared instances back when the pool is full, and to
    /// release idle code).
    known: Arc<std::sync::Mutex<Vec<Known>>>,
    /// Keeps the thread off the core of the runs that wake it (see [`Steer`]).
    steer: Arc<Steer>,
}

/// Keeps the prewarm thread off the core of the thread that wakes it while runs come back to
/// back (Linux).
///
/// A woken thread tends to be placed on its waker's core, and there it preempts the waker: back
/// to back, a run that asked for a top-up waited on its own core for the whole top-up (several
/// instantiations) while the other core ran background work. So when wake-ups come within
/// [`BUSY_WITHIN`] of each other, the waker first takes its own core out of the prewarm
/// thread's allowed cores (when another is allowed); once they come further apart, every core
/// is allowed again (an instance prepared on the core that will run it starts with warm
/// caches, which is what paced runs want). A system call only when that changes; best effort:
/// an affinity the system refuses changes nothing.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Steer {
    /// The prewarm thread's id (0 until it started).
    tid: std::sync::atomic::AtomicI32,
    /// The core it is kept off now (-1: none).
    avoided: std::sync::atomic::AtomicI32,
    /// When the last wake-up was asked for, in nanoseconds since `epoch`.
    last: std::sync::atomic::AtomicU64,
    epoch: Instant,
}

/// Wake-ups this close together mean runs come back to back (see [`Steer`]).
const BUSY_WITHIN: Duration = Duration::from_millis(2);

impl Steer {
    fn new() -> Steer {
        Steer {
            tid: std::sync::atomic::AtomicI32::new(0),
            avoided: std::sync::atomic::AtomicI32::new(-1),
            last: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Called on the thread to steer, once.
    fn register_current_thread(&self) {
        #[cfg(target_os = "linux")]
        // SAFETY: `gettid` takes no arguments.
        self.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    }

    /// Called by a waker before it wakes the thread.
    fn before_wake(&self) {
        #[cfg(target_os = "linux")]
        {
            let tid = self.tid.load(Ordering::Relaxed);
            if tid <= 0 {
                return;
            }
            let now = self.epoch.elapsed().as_nanos() as u64;
            let last = self.last.swap(now, Ordering::Relaxed);
            let busy = last > 0 && now.saturating_sub(last) < BUSY_WITHIN.as_nanos() as u64;
            // SAFETY: `sched_getcpu` takes no arguments.
            let cpu = if busy {
                unsafe { libc::sched_getcpu() }
            } else {
                -1
            };
            if self.avoided.load(Ordering::Relaxed) == cpu {
                return;
            }
            // SAFETY: `set` is a plain bitmask owned here, read and written only through the
            // libc calls and macros made for it, with its own size.
            unsafe {
                let size = std::mem::size_of::<libc::cpu_set_t>();
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                if libc::sched_getaffinity(0, size, &mut set) != 0 {
                    return;
                }
                if cpu >= 0 {
                    libc::CPU_CLR(cpu as usize, &mut set);
                    if libc::CPU_COUNT(&set) == 0 {
                        return;
                    }
                }
                if libc::sched_setaffinity(tid, size, &set) == 0 {
                    self.avoided.store(cpu, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A plugin the prewarm thread looks after.
struct Known {
    plugin: Weak<LoadedPlugin>,
    /// Its code was handed back and has not run since.
    released: bool,
}

/// Above this many instances waiting for teardown, a finished run tears its own down (so a
/// backlog can never exhaust the instance pool).
const MAX_RETIRING: usize = 32;

/// How long the prewarm thread, after a chore, keeps looking at the retired queue on its own
/// (every this often) before it parks: while runs keep coming, their instances are torn down
/// in batches at these looks and at top-ups, without waking the thread once per run.
const RETIRE_LINGER: Duration = Duration::from_millis(5);

/// The instances of finished runs, waiting to be torn down on the prewarm thread.
///
/// A finished run only queues its instances: the thread tears them down whenever it wakes
/// (a top-up, a look every [`RETIRE_LINGER`] while busy). Only a parked thread (nothing done
/// for a whole linger) is woken for them, so back-to-back runs cost no wake-up each. No
/// instance waits unseen: the thread sets `parked` before its last look at the queue, and a
/// run that queues after that look finds `parked` set and wakes it (both `SeqCst`).
#[derive(Default)]
struct Retired {
    queue: std::sync::Mutex<Vec<Warm>>,
    /// Instances queued and not torn down yet (bounded by [`MAX_RETIRING`]).
    count: AtomicUsize,
    /// The thread is (about to be) blocked with no look at the queue planned.
    parked: AtomicBool,
}

impl Retired {
    /// Tears down everything queued; how many.
    fn tear_down(&self) -> usize {
        let instances = match self.queue.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => return 0,
        };
        let n = instances.len();
        drop(instances);
        self.count.fetch_sub(n, Ordering::Relaxed);
        n
    }
}

impl Prewarmer {
    /// Starts the prewarm thread; it ends when the runtime (the sender) is dropped. It looks
    /// for idle code every `idle` (never on its own when `None`).
    pub(crate) fn start(factory: Arc<StoreFactory>, idle: Option<Duration>) -> Prewarmer {
        let (tx, rx) = mpsc::channel::<Chore>();
        let retired = Arc::new(Retired::default());
        let queue = retired.clone();
        let known = Arc::new(std::sync::Mutex::new(Vec::<Known>::new()));
        let list = known.clone();
        let steer = Arc::new(Steer::new());
        let steered = steer.clone();
        std::thread::Builder::new()
            .name("nitejar-prewarm".into())
            .spawn(move || {
                steered.register_current_thread();
                let mut next_look = idle.map(|idle| Instant::now() + idle);
                // Holds in force, and the top-ups asked for meanwhile.
                let mut holds = 0usize;
                let mut waiting: Vec<Weak<LoadedPlugin>> = Vec::new();
                // The next look at the retired queue, while lingering after a chore.
                let mut linger: Option<Instant> = None;
                loop {
                    if linger.is_none() {
                        // Parking: the last look at the queue comes after the flag is set. A
                        // run counted but perhaps not queued yet keeps the thread lingering.
                        queue.parked.store(true, Ordering::SeqCst);
                        if queue.count.load(Ordering::SeqCst) > 0 {
                            queue.parked.store(false, Ordering::SeqCst);
                            linger = Some(Instant::now() + RETIRE_LINGER);
                        }
                    }
                    let wake = match (linger, next_look) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let chore = match wake {
                        Some(at) => {
                            match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                                Ok(chore) => Some(chore),
                                Err(mpsc::RecvTimeoutError::Timeout) => None,
                                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                            }
                        }
                        None => match rx.recv() {
                            Ok(chore) => Some(chore),
                            Err(mpsc::RecvError) => break,
                        },
                    };
                    queue.parked.store(false, Ordering::SeqCst);
                    // Whatever woke it, finished runs' instances go first (they free pool
                    // slots the top-ups may need).
                    let tore_down = queue.tear_down();
                    linger = if chore.is_some() || tore_down > 0 {
                        Some(Instant::now() + RETIRE_LINGER)
                    } else if linger.is_some_and(|at| Instant::now() < at) {
                        linger
                    } else {
                        None
                    };
                    // Looked at on time even while chores keep coming (one busy plugin must
                    // not keep the others' idle code resident).
                    if let (Some(at), Some(idle)) = (next_look, idle)
                        && Instant::now() >= at
                    {
                        release_idle(&list);
                        next_look = Some(Instant::now() + idle);
                    }
                    match chore {
                        None | Some(Chore::Retire) => {}
                        Some(Chore::Refill(weak)) if holds > 0 => waiting.push(weak),
                        Some(Chore::Refill(weak)) => refill(&factory, &list, weak),
                        Some(Chore::Hold) => holds += 1,
                        Some(Chore::Flush(done)) => {
                            let _ = done.send(());
                        }
                        Some(Chore::Resume) => {
                            holds = holds.saturating_sub(1);
                            if holds == 0 {
                                for weak in std::mem::take(&mut waiting) {
                                    refill(&factory, &list, weak);
                                }
                            }
                        }
                    }
                }
            })
            .expect("spawning the prewarm thread");
        Prewarmer {
            tx,
            retired,
            known,
            steer,
        }
    }

    /// Tears down every prepared instance, and the finished runs' instances still waiting for
    /// the prewarm thread (the instance pool is full and a run needs room); how many there
    /// were.
    pub(crate) fn release_prepared(&self) -> usize {
        let mut released = self.retired.tear_down();
        let plugins: Vec<Arc<LoadedPlugin>> = match self.known.lock() {
            Ok(known) => known.iter().filter_map(|k| k.plugin.upgrade()).collect(),
            Err(_) => return released,
        };
        for plugin in plugins {
            while let Some(warm) = plugin.pool_take() {
                drop(warm);
                released += 1;
            }
        }
        released
    }

    /// Looks at every plugin now, as the prewarm thread does each
    /// [`crate::limits::IDLE_CODE_RELEASE_MS`].
    pub(crate) fn release_idle(&self) {
        release_idle(&self.known);
    }

    /// Asks for `plugin`'s pool to be topped up (the first time: also for its code to be
    /// released once that is done).
    pub(crate) fn request(&self, plugin: &Arc<LoadedPlugin>) {
        self.steer.before_wake();
        let _ = self.tx.send(Chore::Refill(Arc::downgrade(plugin)));
    }

    /// Instances handed over for teardown and not torn down yet.
    pub(crate) fn retiring(&self) -> usize {
        self.retired.count.load(Ordering::SeqCst)
    }

    /// Blocks until every chore asked for before this call is done (top-ups under a hold
    /// still wait for it).
    pub(crate) fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Chore::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Holds top-ups (and the first hand-back of code) until the returned hold is dropped.
    pub(crate) fn hold(&self) -> PrewarmHold {
        let _ = self.tx.send(Chore::Hold);
        PrewarmHold {
            tx: self.tx.clone(),
        }
    }

    /// Hands finished instances to the background thread to be torn down (see [`Retired`]:
    /// queued, and the thread woken for them only when it is parked), and asks for the pools
    /// of `refill` to be topped up (that wakes it).
    pub(crate) fn retire(&self, instances: Vec<Warm>, refill: Vec<Arc<LoadedPlugin>>) {
        let n = instances.len();
        if self.retired.count.fetch_add(n, Ordering::SeqCst) + n > MAX_RETIRING {
            self.retired.count.fetch_sub(n, Ordering::Relaxed);
            drop(instances);
        } else {
            match self.retired.queue.lock() {
                Ok(mut q) => q.extend(instances),
                Err(_) => {
                    self.retired.count.fetch_sub(n, Ordering::Relaxed);
                    drop(instances);
                }
            }
        }
        let woken = !refill.is_empty();
        // One wake-up for the run's top-ups, however many plugins it drew down: steered once,
        // so a paced run that used several plugins does not look back to back to [`Steer`].
        if woken {
            self.steer.before_wake();
        }
        for plugin in &refill {
            let _ = self.tx.send(Chore::Refill(Arc::downgrade(plugin)));
        }
        // Top-ups wake the thread (it tears the queue down first); without them a parked
        // thread is woken for the queue, one that is lingering finds it on its own.
        if self.retired.parked.swap(false, Ordering::SeqCst)
            && !woken
            && self.tx.send(Chore::Retire).is_err()
        {
            // The thread is gone (the runtime is being dropped): tear down here.
            self.retired.tear_down();
        }
    }
}

/// Tops up `weak`'s pool; a plugin seen for the first time is remembered, and its code
/// released once its first instances are made (its load-time calls are over by then).
fn refill(factory: &StoreFactory, list: &std::sync::Mutex<Vec<Known>>, weak: Weak<LoadedPlugin>) {
    let Some(plugin) = weak.upgrade() else {
        return;
    };
    let first = match list.lock() {
        Ok(mut known) if !known.iter().any(|k| Weak::ptr_eq(&k.plugin, &weak)) => {
            known.retain(|k| k.plugin.strong_count() > 0);
            known.push(Known {
                plugin: weak,
                released: false,
            });
            true
        }
        _ => false,
    };
    if plugin.serves_runs() {
        while plugin.pool_len() < plugin.prewarm_target() {
            match factory.instantiate(&plugin) {
                Ok(mut warm) => {
                    // Looked up here, off the run's path; a failure shows at the first call.
                    if let Some(idx) = plugin.exports.hooks.as_ref() {
                        let _ = warm.hooks_guest(idx);
                    }
                    plugin.pool_put(warm)
                }
                // The pool is full: runs come first; this is retried on the next request.
                Err(PluginFailure::Busy) => break,
                Err(e) => {
                    tracing::warn!(
                        plugin_id = %plugin.id(),
                        "preparing an instance ahead of demand failed: {e}"
                    );
                    break;
                }
            }
        }
    }
    if first {
        // Counted as idle from here: the next look releases it again unless it ran.
        plugin.code_used.store(false, Ordering::Relaxed);
        crate::cache::release_image(plugin.pre.component(), &plugin.image_file);
    }
}

/// Releases the code of every plugin whose code did not run since the last look, once per
/// idle spell; forgets plugins dropped since. The pages are handed back after the list's lock
/// is let go (a run that finds the pool full takes it to give back prepared instances).
fn release_idle(list: &std::sync::Mutex<Vec<Known>>) {
    let idle: Vec<Arc<LoadedPlugin>> = {
        let Ok(mut known) = list.lock() else {
            return;
        };
        known.retain(|k| k.plugin.strong_count() > 0);
        let mut idle = Vec::new();
        for k in known.iter_mut() {
            let Some(plugin) = k.plugin.upgrade() else {
                continue;
            };
            if plugin.code_used.swap(false, Ordering::Relaxed) {
                k.released = false;
            } else if !k.released {
                k.released = true;
                idle.push(plugin);
            }
        }
        idle
    };
    for plugin in idle {
        crate::cache::release_image(plugin.pre.component(), &plugin.image_file);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod steer_tests {
    use super::*;

    /// The cores `tid` may run on.
    fn affinity(tid: i32) -> libc::cpu_set_t {
        // SAFETY: a plain bitmask of its own size, written by the call.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            set
        }
    }

    /// Wake-ups back to back keep the thread off the waker's core; once they slow down, every
    /// core is allowed again.
    #[test]
    fn a_busy_wakers_core_is_avoided_and_allowed_again_when_wakes_slow_down() {
        // SAFETY: reading a bitmask made by `affinity`.
        let all = unsafe { libc::CPU_COUNT(&affinity(0)) };
        if all < 2 {
            return; // one core: nothing to steer to
        }
        let steer = Arc::new(Steer::new());
        let (stop, stopped) = mpsc::channel::<()>();
        let on_thread = steer.clone();
        let thread = std::thread::spawn(move || {
            on_thread.register_current_thread();
            let _ = stopped.recv();
        });
        while steer.tid.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        let tid = steer.tid.load(Ordering::Relaxed);
        // Back to back (two wake-ups well within BUSY_WITHIN; tried again if this thread was
        // descheduled between them).
        let mut avoided = -1;
        for _ in 0..100 {
            steer.before_wake();
            steer.before_wake();
            avoided = steer.avoided.load(Ordering::Relaxed);
            if avoided >= 0 {
                break;
            }
        }
        assert!(avoided >= 0, "the waker's core was never avoided");
        let set = affinity(tid);
        // SAFETY: reading a bitmask made by `affinity`.
        unsafe {
            assert!(!libc::CPU_ISSET(avoided as usize, &set));
            assert_eq!(libc::CPU_COUNT(&set), all - 1);
        }
        // Slower than BUSY_WITHIN: every core again.
        std::thread::sleep(BUSY_WITHIN * 2);
        steer.before_wake();
        assert_eq!(steer.avoided.load(Ordering::Relaxed), -1);
        // SAFETY: reading a bitmask made by `affinity`.
        assert_eq!(unsafe { libc::CPU_COUNT(&affinity(tid)) }, all);
        drop(stop);
        thread.join().unwrap();
    }
}
