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
//! `MALLOC_ARENA_MAX` in the environment, when set, is left to decide.
//! `safe testnet up` keeps glibc's default: its many nodes share one
//! process, and their upload speed with two arenas has not been measured.

/// Arenas a node process uses.
pub(crate) const NODE_ARENAS: i32 = 2;

/// Limits malloc to [`NODE_ARENAS`] arenas, unless `MALLOC_ARENA_MAX` is
/// set. Call before any thread is started.
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
}
