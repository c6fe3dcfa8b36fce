//! Fewer malloc arenas for `safe node run`.
//!
//! glibc's malloc gives threads arenas of their own, up to eight per core,
//! and memory freed in one arena is not reused by another. A node's work
//! moves between tokio's workers and its blocking pool, so freed request
//! and chunk buffers are spread over many arenas: under `scripts/load.sh`
//! (100 clients, 5 minutes) with glibc's default (16 arenas on 2 cores)
//! each node ended at 65–73 MiB, still rising 1–2 MiB every 30 s; with two
//! arenas the same run ended at 48–55 MiB, rising about 1 MiB every 30 s,
//! with the same latencies (docs/BENCHMARKS.md, Load).
//!
//! Even so, RSS kept rising while the live heap did not: over a 30-minute
//! run with a fixed set of data (`SAFE_LOAD_DISTINCT=2000 scripts/load.sh
//! 100 1800`), glibc's `malloc_stats` showed 90.8 MB in use at 13 minutes
//! and 89.2 MB at 22, while the memory it held from the system grew from
//! 112.7 to 120.8 MB: freed pages inside the heaps, which glibc gives back
//! only when asked. A `malloc_trim(0)` then took the node from 136.6 to
//! 114.5 MB. So a node also trims every [`TRIM_EVERY`].
//!
//! `MALLOC_ARENA_MAX` in the environment, when set, is left to decide.
//! `safe testnet up` keeps glibc's default: its many nodes share one
//! process, and their upload speed with two arenas has not been measured.

/// Arenas a node process uses.
pub(crate) const NODE_ARENAS: i32 = 2;
/// How often a node gives freed heap pages back to the system.
pub(crate) const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Limits malloc to [`NODE_ARENAS`] arenas, unless `MALLOC_ARENA_MAX` is
/// set, and starts a thread that trims the heap every [`TRIM_EVERY`]. Call
/// before any other thread is started.
pub(crate) fn limit_for_nodes() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets one of glibc's allocator parameters,
        // and is called before this process starts any other thread.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, NODE_ARENAS) };
        if ok != 1 {
            tracing::debug!("malloc kept its default arenas");
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let trim = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_EVERY);
                    // SAFETY: `malloc_trim` only returns free memory to the
                    // system; it takes the allocator's own locks.
                    unsafe { libc::malloc_trim(0) };
                }
            });
        if let Err(e) = trim {
            tracing::debug!("no malloc trimming: {e}");
        }
    }
}
