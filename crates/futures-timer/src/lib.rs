//! `futures-timer`'s [`Delay`] on tokio's timer.
//!
//! libp2p (the swarm, request-response, Kademlia, identify, via
//! `futures-bounded`) times every stream, request and idle connection with
//! `futures_timer::Delay`. The crates.io `futures-timer` keeps its timers on
//! a helper thread, and creating or dropping a `Delay` wakes that thread:
//! about three timers per request, six wake-ups. On a 1 GiB upload over the
//! 10-node testnet that thread made 44 000 of the process's 98 000 context
//! switches, on a 2-core machine where the nodes are CPU-bound.
//!
//! This crate is patched in for the whole build (`[patch.crates-io]` in the
//! workspace manifest) with the same public API, `Delay::new`,
//! `Delay::reset` and `Future<Output = ()>`, backed by
//! [`tokio::time::Sleep`]: the runtime's timer wheel, polled by the worker
//! threads that are awake anyway, with no thread to wake. `.ci/run` checks
//! that the patch is the one in use (`cargo tree -i futures-timer` shows this
//! crate).
//!
//! The patch applies only inside this workspace. Cargo reads `[patch]` from
//! the manifest of the workspace being built and ignores it in dependencies,
//! and this crate is not published. A program of your own that depends on
//! `safe-client` (or `safe-network`) therefore gets the stock `futures-timer`
//! from crates.io, helper thread and all: its timers are just as correct, at
//! the cost of more context switches (the thread's 44 000 of the 98 000 on
//! the upload above). To get the patch, copy this crate and add the same
//! `[patch.crates-io]` entry to your own workspace manifest.
//!
//! Requirements and fallbacks:
//! - A `Delay` made inside a tokio runtime uses that runtime's timer, so the
//!   runtime must have time enabled (`enable_all` or `enable_time`; every
//!   runtime that runs libp2p in this workspace does), and it belongs to
//!   that runtime: it must not outlive it or move to another (libp2p's
//!   swarms here are built and driven on one runtime each).
//! - A `Delay` made outside any runtime picks the runtime up when first
//!   polled; polled outside one too, it sleeps on a thread of its own (a
//!   path nothing in this workspace takes).

#![deny(missing_docs)]

#[cfg(all(target_arch = "wasm32", feature = "wasm-bindgen"))]
compile_error!("this futures-timer runs on tokio only; it has no wasm timer");

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The furthest a deadline is put off: overflowing `Instant` is clamped to
/// this (tokio clamps further, to about two years).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A future that completes at a point in time.
pub struct Delay {
    deadline: Instant,
    state: State,
}

enum State {
    /// Not polled yet, and made outside a runtime.
    Unarmed,
    /// On a tokio runtime's timer.
    Tokio(Pin<Box<tokio::time::Sleep>>),
    /// On a thread of its own: made and polled outside any runtime.
    Thread(ThreadHandle),
}

/// What a fallback thread and its `Delay` share.
struct ThreadTimer {
    state: Mutex<ThreadState>,
    /// Signalled when the `Delay` is dropped, so the thread ends early.
    cancel: Condvar,
}

struct ThreadState {
    fired: bool,
    dropped: bool,
    waker: Option<Waker>,
}

fn deadline_after(dur: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(dur)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// A tokio sleep until `deadline`, if this thread is in a runtime.
fn tokio_sleep(deadline: Instant) -> Option<Pin<Box<tokio::time::Sleep>>> {
    tokio::runtime::Handle::try_current()
        .ok()
        .map(|_| Box::pin(tokio::time::sleep_until(deadline.into())))
}

impl State {
    /// On the current runtime's timer, or unarmed outside a runtime.
    fn at(deadline: Instant) -> State {
        match tokio_sleep(deadline) {
            Some(sleep) => State::Tokio(sleep),
            None => State::Unarmed,
        }
    }
}

impl Delay {
    /// A future that completes `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        let deadline = deadline_after(dur);
        Delay {
            deadline,
            state: State::at(deadline),
        }
    }

    /// Moves the deadline to `dur` from now, whether or not this future has
    /// completed.
    pub fn reset(&mut self, dur: Duration) {
        self.deadline = deadline_after(dur);
        match &mut self.state {
            State::Tokio(sleep) => sleep.as_mut().reset(self.deadline.into()),
            // Replacing a thread timer ends its thread.
            _ => self.state = State::at(self.deadline),
        }
    }

    /// Starts a thread that wakes `waker` at the deadline, or ends when
    /// this `Delay` is dropped.
    fn arm_thread(&self, waker: Waker) -> ThreadHandle {
        let shared = Arc::new(ThreadTimer {
            state: Mutex::new(ThreadState {
                fired: false,
                dropped: false,
                waker: Some(waker),
            }),
            cancel: Condvar::new(),
        });
        let theirs = shared.clone();
        let deadline = self.deadline;
        std::thread::spawn(move || {
            let Ok(mut state) = theirs.state.lock() else {
                return;
            };
            loop {
                if state.dropped {
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = match theirs.cancel.wait_timeout(state, left) {
                    Ok((state, _)) => state,
                    Err(_) => return,
                };
            }
            state.fired = true;
            let waker = state.waker.take();
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
        });
        ThreadHandle(shared)
    }
}

/// A `Delay`'s side of a fallback thread; dropping it ends the thread.
struct ThreadHandle(Arc<ThreadTimer>);

impl Drop for ThreadHandle {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.dropped = true;
        }
        self.0.cancel.notify_one();
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let State::Unarmed = this.state {
            if Instant::now() >= this.deadline {
                return Poll::Ready(());
            }
            this.state = match tokio_sleep(this.deadline) {
                Some(sleep) => State::Tokio(sleep),
                None => State::Thread(this.arm_thread(cx.waker().clone())),
            };
        }
        match &mut this.state {
            State::Tokio(sleep) => sleep.as_mut().poll(cx),
            State::Thread(ThreadHandle(shared)) => match shared.state.lock() {
                Ok(t) if t.fired => Poll::Ready(()),
                Ok(mut t) => {
                    t.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                // The thread only sets two fields; a poisoned lock means it
                // died, which it cannot do before the deadline has passed.
                Err(_) => Poll::Ready(()),
            },
            State::Unarmed => Poll::Pending,
        }
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay")
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_after_its_duration_on_tokio() {
        let start = Instant::now();
        Delay::new(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn reset_moves_the_deadline() {
        let start = Instant::now();
        let mut d = Delay::new(Duration::from_secs(3600));
        d.reset(Duration::from_millis(20));
        (&mut d).await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(start.elapsed() < Duration::from_secs(3600));
        // Reset after completing: pending again until the new deadline.
        d.reset(Duration::from_millis(20));
        let again = Instant::now();
        d.await;
        assert!(again.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn made_outside_a_runtime_fires_inside_one() {
        let d = Delay::new(Duration::from_millis(20));
        let start = Instant::now();
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(d);
        assert!(start.elapsed() >= Duration::from_millis(10));
    }

    #[test]
    fn outside_any_runtime_a_thread_wakes_it() {
        let start = Instant::now();
        futures_lite_block_on(Delay::new(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn an_overflowing_duration_is_clamped_not_a_panic() {
        let d = Delay::new(Duration::MAX);
        assert!(d.deadline > Instant::now());
    }

    /// A minimal executor with no runtime: parks the thread until woken.
    fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
        use std::task::Wake;
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = Box::pin(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
