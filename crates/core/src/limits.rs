//! Every default limit of the host, in one place, with its unit in the name.
//!
//! Operators can override the ones exposed in [`crate::config::Config`]; the rest are
//! deliberate constants.
//!
//! The sandbox's bounds on a guest are defined in `nitejar_sandbox::limits` and re-exported here.

pub use nitejar_sandbox::limits::*;

/// Per-hook-handler timeout (spec §12.4), enforced by the store's epoch deadline.
pub const DEFAULT_HOOK_TIMEOUT_MS: u64 = 1_500;

/// Budget for one hook event's whole handler chain (spec §12.4).
pub const DEFAULT_HOOK_CHAIN_BUDGET_MS: u64 = 8_000;

/// Deadline for integration calls (parse-webhook, post-response, ...).
pub const DEFAULT_INTEGRATION_TIMEOUT_MS: u64 = 10_000;

/// Largest webhook body accepted (spec: request bodies size-limited); over it: 413.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1 << 20;

/// Largest admin upload (plugin packages).
pub const MAX_UPLOAD_BYTES: usize = 50 << 20;

/// Largest unpacked plugin package (archive bombs stop here).
pub const MAX_PACKAGE_UNPACKED_BYTES: u64 = 100 << 20;

/// Most entries in a plugin package archive.
pub const MAX_PACKAGE_ENTRIES: usize = 2_000;

/// Largest decompressed `.tgz` stream (the unpacked files plus headers and padding); reading
/// stops here whatever the headers claim.
pub const MAX_PACKAGE_STREAM_BYTES: u64 = MAX_PACKAGE_UNPACKED_BYTES + (16 << 20);

/// Largest extended archive header (GNU long name, PAX record) read into memory.
pub const MAX_ARCHIVE_HEADER_BYTES: u64 = 64 << 10;

/// Longest path inside a package.
pub const MAX_PACKAGE_PATH_BYTES: usize = 1024;

/// Largest total size of the files a package keeps under `skills/`.
pub const MAX_PACKAGE_FILES_BYTES: u64 = 8 << 20;

/// Most receipts written in one transaction by the batch writer. Each commit rewrites the last,
/// partly filled page of the table and of each index, and wakes the writer task and the
/// checkpoint thread: at 270,000 receipts a second (`hook_chain` back to back), 2,048 rather
/// than 256 took the write thread from 19.4 to 16.7 µs a run and all threads from 72 to 68 µs
/// (three runs each). A batch that large holds the write thread about 3.5 ms (an urgent write
/// waits for it); at ordinary rates a batch is what 20 ms brought, far fewer.
pub const RECEIPT_BATCH_SIZE: usize = 2048;

/// Longest a receipt waits in the writer's buffer before its batch is written.
pub const RECEIPT_FLUSH_INTERVAL_MS: u64 = 20;

/// Model calls per run unless an agent says otherwise (part of the API contract).
pub use nitejar_api::runs::DEFAULT_MAX_TURNS;

/// Delivery attempts of one reply before the job fails.
pub const DELIVERY_ATTEMPTS: u32 = 3;

/// Where an integration's delivery guard keeps a reply's progress in the plugin's kv (the SDK's
/// `delivery::KEY_PREFIX`, followed by the job id); the host removes the entry once it has
/// recorded the reply's outcome.
pub const DELIVERY_GUARD_PREFIX: &str = "nitejar/delivery/";

/// Job attempts (a restart or crash counts as one) before a job is given up.
pub const JOB_ATTEMPTS: u32 = 3;

/// Tool call deadline for plugin tools.
pub const DEFAULT_TOOL_TIMEOUT_MS: u64 = 10_000;

/// Longest text the host accepts from the model per turn.
pub const MAX_MODEL_RESPONSE_BYTES: usize = 4 << 20;

/// Agent-run workers per process. A run spends most of its time waiting: for the group commit
/// that holds its writes (the reply's `posting` record, its end) and for plugin calls, so many
/// more workers than cores keep the cores busy and make the groups larger. On two cores, under
/// a steady 1,500 webhooks/s from an empty database, 8 finished about 1,050 runs/s (the backlog
/// grew), 16 about 1,430 and 32 kept pace. After a burst (110,000-320,000 work items stored,
/// larger indexes, so longer write waits) 32 fell behind with 13-16% of the CPU idle (about
/// 1,230-1,290 runs/s, peak backlog 11-14 s of arrivals); 64 did better in every comparison
/// (peak 0.1-6.8 s, about 1,320-1,510 runs/s) without slowing the burst, but does not always
/// keep pace either (see docs/performance-log.md, 2026-12-04). They run on the runs' own runtime,
/// scheduled after the ingress (see `agent::runs_runtime`), so more of them do not slow a
/// burst of webhooks.
pub const RUN_WORKERS: usize = 64;

/// How much lower the run workers' threads are scheduled than the ingress's, in Linux nice
/// steps (see `agent::runs_runtime`): at 10 a busy run thread gets about a tenth of what a busy
/// ingress thread gets of a contended core, and all of an idle one.
pub const RUN_NICE: u8 = 10;

/// The request workers' busy share (percent of a window, see `agent::ingress_load`) at which
/// the webhook ingress counts as saturated and most run workers start no new run until it
/// clears (`NITEJAR_RUN_YIELD_PERCENT`; 0 never yields). Under the steady 1,500 webhooks/s of
/// the load benchmark the request workers were busy 10-50% of each window; at concurrency 16,
/// about one window in six reached 80%; at 64, three in four.
pub const RUN_YIELD_PERCENT: u8 = 80;

/// Run workers that start runs whatever the ingress's load: under a burst that never ends the
/// runs still go on, one at a time.
pub const RUN_WORKERS_WHILE_INGRESS_BUSY: usize = 1;

/// Earlier messages of its conversation (same instance and session key) a run reads: each
/// with the reply delivered for it, newest kept when there are more.
pub const SESSION_HISTORY_TURNS: u32 = 20;

/// Most bytes of conversation history a run is given (messages and replies); the oldest
/// exchanges are dropped first to fit, as a chat user expects.
pub const SESSION_HISTORY_MAX_BYTES: usize = 32 << 10;

/// The command that starts a conversation afresh (Telegram `/clear`): later runs see nothing
/// before it.
pub const CLEAR_COMMAND: &str = "clear";

/// The reply to [`CLEAR_COMMAND`] (the model is not called for it).
pub const CLEAR_REPLY: &str = "New conversation: I no longer see the earlier messages.";

/// Largest admin skill content (also what an import brings over).
pub const MAX_SKILL_CONTENT_BYTES: usize = 256 << 10;

/// Most bytes of the system-prompt section listing a run's skills.
pub const MAX_SKILLS_PROMPT_BYTES: usize = 4096;

/// Longest work item title, in bytes (UTF-8): a longer parsed title is cut at a character
/// boundary, and a `work_item.pre_create` handler's longer title is refused.
pub const MAX_WORK_ITEM_TITLE_BYTES: usize = 512;

/// Longest session key or model name a hook handler may set, in bytes.
pub const MAX_HOOK_KEY_BYTES: usize = 512;

/// The `Retry-After` (seconds) of a 503 answered because the database is busy or full.
pub const DB_RETRY_AFTER_SECS: u32 = 5;

/// Below this much free space on the data directory's filesystem, `/readyz` says the host is
/// not ready: the database may still take a small write into space its log already holds, but
/// webhooks and runs would start failing.
pub const MIN_FREE_DISK_BYTES: u64 = 4 << 20;
