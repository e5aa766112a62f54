//! A fixed pool of worker threads, created with a session when `Options::threads > 1`, that
//! runs the parts of one kernel call in parallel (the caller runs parts too).
//!
//! Dispatching allocates nothing: the job is a borrowed closure handed to the workers
//! through a mutex-protected slot, workers sleep on a condition variable (a futex on
//! Linux), and [`ThreadPool::run`] returns only once every part has finished, which is what keeps
//! the borrow valid. The split into parts is the caller's, fixed by the work (e.g. output
//! channel panels), never by which thread runs what, so results do not depend on timing.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::affinity::{self, CpuMask};

/// Most threads (and parts of one call) a pool supports.
pub const MAX_THREADS: usize = 64;

/// How long an idle worker (or a caller waiting for the last parts) polls before sleeping on
/// a condition variable: a futex sleep and wake costs tens of microseconds, about a small
/// layer's run time, and a network runs its split layers back to back.
const SPIN: Duration = Duration::from_micros(100);

/// Polls `done` until it holds or [`SPIN`] has passed; whether it held.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN {
            return done();
        }
    }
}

/// A borrowed job with its lifetime erased, published to the workers by [`ThreadPool::run`].
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync`, so calling it from several threads at once is allowed; it
// is dereferenced only for a part claimed while `ThreadPool::run` (which holds the borrow) is
// blocked waiting for that part to finish.
unsafe impl Send for Job {}

/// The dispatch state, under one mutex.
struct State {
    /// The current job, between publication and the last part's completion.
    job: Option<Job>,
    /// Parts of the current job.
    parts: usize,
    /// Next part to claim.
    next: usize,
    /// Parts claimed and not yet finished.
    running: usize,
    /// The first panic of the current job's parts, rethrown by the caller.
    panic: Option<Box<dyn Any + Send>>,
    /// Workers that have started (their start-up, which allocates, is over).
    started: usize,
    /// The pool is being dropped.
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped (under the lock) whenever a job is published or the pool shuts down: idle
    /// workers spin on it for [`SPIN`] before sleeping on `work`.
    epoch: AtomicU64,
    /// `State::running`, mirrored for the caller to spin on before sleeping on `done`.
    busy: AtomicUsize,
    /// Signalled when a job is published (or on shutdown).
    work: Condvar,
    /// Signalled when the last part of a job finishes.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Parts run outside the lock and their panics are caught: poisoning cannot leave
        // the state inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims and runs parts of the current job until none is left; returns the guard.
    fn work<'s>(&'s self, mut st: MutexGuard<'s, State>) -> MutexGuard<'s, State> {
        while let Some(job) = st.job.filter(|_| st.next < st.parts) {
            let part = st.next;
            st.next += 1;
            st.running += 1;
            self.busy.store(st.running, Ordering::Release);
            drop(st);
            // SAFETY: the part was claimed while the job was published, so `ThreadPool::run` is
            // still waiting for it (`running > 0`) and the closure it borrows is alive.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)(part) }));
            st = self.lock();
            st.running -= 1;
            self.busy.store(st.running, Ordering::Release);
            if let Err(payload) = result {
                st.panic.get_or_insert(payload);
            }
            if st.next >= st.parts && st.running == 0 {
                self.done.notify_all();
            }
        }
        st
    }
}

/// Worker threads for splitting kernel calls; see the module doc.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of `threads` threads in all: the caller plus `threads - 1` workers (`threads`
    /// is clamped to `1..=MAX_THREADS`). If the OS refuses a thread, the pool keeps the
    /// workers it has ([`ThreadPool::threads`] tells).
    pub fn new(threads: usize) -> ThreadPool {
        Self::pinned(threads, None)
    }

    /// [`ThreadPool::new`] with every worker pinned to the CPUs of `mask` it may use (see
    /// [`crate::affinity::pin`]; unpinned where that changes nothing or fails).
    pub fn pinned(threads: usize, mask: Option<CpuMask>) -> ThreadPool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                parts: 0,
                next: 0,
                running: 0,
                panic: None,
                started: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            epoch: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::new(),
        };
        for i in 1..threads.clamp(1, MAX_THREADS) {
            let shared = Arc::clone(&pool.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("prunus-worker-{i}"))
                .spawn(move || {
                    // Workers are ours for their whole life: the pin is never undone.
                    let pinned = mask.as_ref().and_then(affinity::pin);
                    std::mem::forget(pinned);
                    worker(&shared)
                });
            match spawned {
                Ok(handle) => pool.workers.push(handle),
                Err(_) => break,
            }
        }
        // Wait for every worker to be up, so that nothing of thread start-up (which
        // allocates) happens later, during a run.
        let mut st = pool.shared.lock();
        while st.started < pool.workers.len() {
            st = pool
                .shared
                .done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(st);
        pool
    }

    /// Threads that run parts, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0)`, ..., `f(parts - 1)` on the pool's threads and the caller, in any order
    /// and concurrently; returns when all have finished. A panic in a part is rethrown here
    /// after every part has finished.
    pub fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || parts <= 1 {
            (0..parts).for_each(f);
            return;
        }
        // SAFETY: only the lifetime changes (same fat-pointer layout). The erased pointer is
        // dereferenced only for parts claimed before this call observes, below, that every
        // part has finished; then it is removed from the shared state before returning.
        let job = Job(unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(f)
        });
        let mut st = self.shared.lock();
        debug_assert!(
            st.job.is_none(),
            "ThreadPool::run: a job is already running"
        );
        st.job = Some(job);
        st.parts = parts;
        st.next = 0;
        st.running = 0;
        self.shared.epoch.fetch_add(1, Ordering::Release);
        self.shared.work.notify_all();
        st = self.shared.work(st);
        if st.running > 0 {
            drop(st);
            spin_until(|| self.shared.busy.load(Ordering::Acquire) == 0);
            st = self.shared.lock();
        }
        while st.running > 0 {
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.job = None;
        let panic = st.panic.take();
        drop(st);
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }

    /// Splits `out` into consecutive chunks of `chunk` values (the last may be shorter) and
    /// runs `f(i, chunk_i)` for each on the pool, as [`ThreadPool::run`]. At most
    /// [`MAX_THREADS`] chunks.
    pub fn for_each_chunk(
        &self,
        out: &mut [f32],
        chunk: usize,
        f: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        let parts = out.len().div_ceil(chunk.max(1));
        assert!(
            parts <= MAX_THREADS,
            "ThreadPool::for_each_chunk: {parts} chunks"
        );
        // Each chunk goes to exactly one part, through its own (uncontended) mutex.
        let mut slots: [Mutex<Option<&mut [f32]>>; MAX_THREADS] =
            [const { Mutex::new(None) }; MAX_THREADS];
        for (slot, c) in slots.iter_mut().zip(out.chunks_mut(chunk.max(1))) {
            *slot.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(c);
        }
        self.run(parts, &|i| {
            let taken = slots[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(c) = taken {
                f(i, c);
            }
        });
    }
}

/// A worker: sleeps until a job is published, runs parts of it, until shutdown.
fn worker(shared: &Shared) {
    let mut st = shared.lock();
    st.started += 1;
    shared.done.notify_all();
    loop {
        if st.shutdown {
            return;
        }
        st = shared.work(st);
        if st.shutdown {
            return;
        }
        let seen = shared.epoch.load(Ordering::Acquire);
        drop(st);
        spin_until(|| shared.epoch.load(Ordering::Acquire) != seen);
        st = shared.lock();
        let idle = st.job.is_none_or(|_| st.next >= st.parts);
        if idle && !st.shutdown {
            st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.epoch.fetch_add(1, Ordering::Release);
        self.shared.work.notify_all();
        for w in self.workers.drain(..) {
            // A worker never panics (parts are caught); nothing to report if it did.
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[cfg(target_os = "linux")]
    #[test]
    fn pinned_workers_run_on_the_mask() {
        let allowed = affinity::allowed_cpus();
        let mask = CpuMask::of(&allowed[..1]);
        let pool = ThreadPool::pinned(3, Some(mask));
        let seen: Vec<Mutex<Option<CpuMask>>> = (0..64).map(|_| Mutex::new(None)).collect();
        pool.run(64, &|i| {
            // Parts that run on a worker see its mask; the caller is not pinned by the pool.
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("prunus-worker"))
            {
                *seen[i].lock().unwrap() = CpuMask::current();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        });
        let on_workers: Vec<CpuMask> = seen.iter().filter_map(|m| *m.lock().unwrap()).collect();
        assert!(!on_workers.is_empty(), "no part ran on a worker");
        assert!(on_workers.iter().all(|&m| m == mask));
        assert_eq!(CpuMask::current().map(|m| m.cpus()), Some(allowed));
    }

    #[test]
    fn every_part_runs_once_for_any_thread_count() {
        for threads in [1, 2, 3, 8] {
            let pool = ThreadPool::new(threads);
            assert_eq!(pool.threads(), threads);
            for parts in [0, 1, 2, 5, 64] {
                let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..20 {
                    pool.run(parts, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 20));
            }
        }
    }

    #[test]
    fn chunks_cover_the_output_exactly() {
        let pool = ThreadPool::new(3);
        let mut out = vec![0.0f32; 103];
        pool.for_each_chunk(&mut out, 10, &|i, c| {
            assert!(c.len() == 10 || (i == 10 && c.len() == 3));
            c.iter_mut().for_each(|v| *v += i as f32 + 1.0);
        });
        for (j, v) in out.iter().enumerate() {
            assert_eq!(*v, (j / 10) as f32 + 1.0);
        }
    }

    #[test]
    fn a_panicking_part_is_rethrown_and_the_pool_still_works() {
        let pool = ThreadPool::new(2);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.run(4, &|i| assert_ne!(i, 2, "part 2 fails"));
        }));
        assert!(caught.is_err());
        let count = AtomicUsize::new(0);
        pool.run(4, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }
}
