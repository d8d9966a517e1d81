//! Threads kept for the next job of their kind. A request's connection and an ended container's
//! release each used to get a thread of their own: the stack's mmap, the clone and the new
//! thread's first schedule cost 0.1-0.3 ms on the path of every `run --rm` (issue 14's exit
//! path). A worker that finished a job waits [`IDLE_FOR`] for the next one; a job that finds no
//! waiting worker starts a new thread, so a job that blocks (a `logs -f`, a slow netlink call)
//! never holds up another.
use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// How long a worker with nothing to do is kept.
const IDLE_FOR: Duration = Duration::from_secs(10);

pub type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Workers {
    name: &'static str,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// Workers waiting on `wake` right now.
    waiting: usize,
    queue: VecDeque<Job>,
}

impl Workers {
    pub const fn new(name: &'static str) -> Workers {
        Workers { name, state: Mutex::new(State { waiting: 0, queue: VecDeque::new() }), wake: Condvar::new() }
    }

    /// Runs `job` on a waiting worker, else on a new thread; gives it back when no thread can
    /// start (the caller decides what to do then).
    pub fn run(&'static self, job: Job) -> Result<(), (Job, std::io::Error)> {
        {
            let mut state = self.state.lock();
            // More waiting workers than queued jobs: one of them takes this one.
            if state.waiting > state.queue.len() {
                state.queue.push_back(job);
                self.wake.notify_one();
                return Ok(());
            }
        }
        // Shared with the thread, so a thread that cannot start gives the job back.
        let slot = std::sync::Arc::new(Mutex::new(Some(job)));
        let taken = slot.clone();
        let spawned = std::thread::Builder::new().name(self.name.into()).spawn(move || {
            if let Some(job) = taken.lock().take() {
                run_caught(self.name, job);
            }
            self.serve();
        });
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => match slot.lock().take() {
                Some(job) => Err((job, e)),
                None => Ok(()),
            },
        }
    }

    /// A worker's life after its first job: the queue's jobs, until IDLE_FOR passes with none.
    fn serve(&self) {
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                run_caught(self.name, job);
                state = self.state.lock();
                continue;
            }
            state.waiting += 1;
            let timed_out = self.wake.wait_for(&mut state, IDLE_FOR).timed_out();
            state.waiting -= 1;
            // A job queued meanwhile is taken above even after a timeout: `run` counted on us.
            if timed_out && state.queue.is_empty() {
                return;
            }
        }
    }
}

/// A job that panics ends itself, not the worker (each used to be a thread of its own).
fn run_caught(name: &str, job: Job) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        crate::warn!("a {name} job panicked; its worker goes on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn a_waiting_worker_takes_the_next_job_and_a_busy_one_gets_a_new_thread() {
        static POOL: Workers = Workers::new("test-worker");
        let (tx, rx) = mpsc::channel();
        let tx1 = tx.clone();
        POOL.run(Box::new(move || tx1.send(std::thread::current().id()).unwrap())).map_err(|(_, e)| e).unwrap();
        let first = rx.recv().unwrap();
        // Give the worker time to start waiting.
        while POOL.state.lock().waiting == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let tx2 = tx.clone();
        POOL.run(Box::new(move || tx2.send(std::thread::current().id()).unwrap())).map_err(|(_, e)| e).unwrap();
        assert_eq!(rx.recv().unwrap(), first, "the waiting worker ran the second job");
        // A job that blocks, and one more while it does: the second must not wait for the first.
        let (unblock_tx, unblock_rx) = mpsc::channel::<()>();
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        POOL.run(Box::new(move || unblock_rx.recv().unwrap())).map_err(|(_, e)| e).unwrap();
        let ran2 = ran.clone();
        let tx3 = tx.clone();
        POOL.run(Box::new(move || {
            ran2.fetch_add(1, Ordering::SeqCst);
            tx3.send(std::thread::current().id()).unwrap()
        }))
        .map_err(|(_, e)| e)
        .unwrap();
        rx.recv_timeout(Duration::from_secs(5)).expect("the second job ran while the first blocked");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        unblock_tx.send(()).unwrap();
    }

    #[test]
    fn a_panicking_job_leaves_its_worker_serving() {
        static POOL: Workers = Workers::new("test-panic");
        POOL.run(Box::new(|| panic!("on purpose"))).map_err(|(_, e)| e).unwrap();
        while POOL.state.lock().waiting == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (tx, rx) = mpsc::channel();
        POOL.run(Box::new(move || tx.send(()).unwrap())).map_err(|(_, e)| e).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
