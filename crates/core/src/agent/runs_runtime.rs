//! Where the run workers run: a runtime of their own whose threads the OS schedules after the
//! webhook ingress's.
//!
//! A webhook is answered once its work item is stored; the run comes after, from the queue.
//! When both want every core (a burst of webhooks with a backlog of runs), the runs should
//! wait, not the answers: a platform retries or gives up on a slow webhook, and a run a few
//! seconds later loses nothing. On one runtime the two share the cores evenly, so enough run
//! workers to keep pace with a steady 1,500 webhooks/s (32) cut a burst's ingest by about a
//! quarter. Here the runs' threads (workers and their blocking calls: the plugins' wasm) have a
//! lower priority (`NITEJAR_RUN_NICE`, [`crate::limits::RUN_NICE`] by default): they get
//! whatever the ingress leaves, which is most of the machine outside bursts. On systems
//! without per-thread priorities the runtime is the same, only not lowered.

/// The run workers' runtime (see the module docs); shut down, without waiting for the runs
/// (they are re-queued at the next boot), when dropped.
pub struct RunsRuntime {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunsRuntime {
    /// A runtime with one worker thread per core, named `nitejar-runs`, scheduled `lower` nice
    /// steps after the caller's thread.
    pub fn start(lower: u8) -> std::io::Result<RunsRuntime> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Relative to the caller's (the process's) priority, set the same on every thread: a
        // thread inherits its creator's, so adding to the inherited one would add twice.
        let nice = (this_threads_nice() + i32::from(lower)).min(19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("nitejar-runs")
            .on_thread_start(move || set_this_threads_nice(nice))
            .enable_all()
            .build()?;
        Ok(RunsRuntime {
            runtime: Some(runtime),
        })
    }

    /// Spawns onto the runs' runtime.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until dropped")
            .handle()
    }
}

impl Drop for RunsRuntime {
    fn drop(&mut self) {
        // Not `drop`: that blocks, and panics inside another runtime's task.
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

/// The calling thread's nice value (0 where there is none).
fn this_threads_nice() -> i32 {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` and `getpriority` take plain integers and touch no memory of ours.
    unsafe {
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Sets the calling thread's nice value (Linux: it is per thread). A failure only leaves the
/// priority as it was.
fn set_this_threads_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` and `setpriority` take plain integers and touch no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs' threads run at the lower priority; the caller's is unchanged.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn run_threads_are_scheduled_after_the_ingress() {
        let before = this_threads_nice();
        let runs = RunsRuntime::start(7).unwrap();
        let theirs = runs
            .handle()
            .spawn(async { this_threads_nice() })
            .await
            .unwrap();
        let blocking = runs
            .handle()
            .spawn_blocking(this_threads_nice)
            .await
            .unwrap();
        assert_eq!(theirs, (before + 7).min(19));
        assert_eq!(blocking, theirs, "the runs' blocking calls too");
        assert_eq!(this_threads_nice(), before);
        drop(runs);
    }
}
