//! Log lines that peers can cause, limited: a hostile peer sending bad
//! data must not be able to flood the node's log (or its disk).
//!
//! Each call site gets [`LINES_PER_MINUTE`] lines a minute; past that its
//! lines are counted, not written, and the next line written says how
//! many were left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines one call site writes a minute at most.
pub const LINES_PER_MINUTE: u32 = 10;

/// One call site's allowance.
pub struct LogLimit(Mutex<Option<(Instant, u32, u64)>>);

impl LogLimit {
    /// A fresh allowance (for a `static`).
    pub const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// `Some(left out so far)` if a line may be written now (and resets
    /// the count of lines left out), `None` if it must be left out.
    pub fn allow(&self) -> Option<u64> {
        let Ok(mut state) = self.0.lock() else {
            return None;
        };
        let now = Instant::now();
        let (start, written, skipped) = state.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *written = 0;
        }
        if *written < LINES_PER_MINUTE {
            *written += 1;
            Some(std::mem::take(skipped))
        } else {
            *skipped += 1;
            None
        }
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// `tracing::warn!`, at most [`LINES_PER_MINUTE`] a minute from this call
/// site; the first line after a gap says how many were left out.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::loglimit::LogLimit = $crate::loglimit::LogLimit::new();
        if let Some(skipped) = LIMIT.allow() {
            if skipped > 0 {
                tracing::warn!(skipped, "(similar lines left out: {skipped})");
            }
            tracing::warn!($($arg)+);
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_allowance_and_counted() {
        let limit = LogLimit::new();
        let written = (0..1000).filter(|_| limit.allow().is_some()).count();
        assert_eq!(written, LINES_PER_MINUTE as usize);
        let skipped = limit.0.lock().unwrap().unwrap().2;
        assert_eq!(skipped, 1000 - LINES_PER_MINUTE as u64);
    }
}
