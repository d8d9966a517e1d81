//! A few things of one kind made before any start asks for them, by a thread of their own at
//! SCHED_IDLE (it runs only on a CPU with nothing else to do); a start takes one, and the thread
//! makes another a moment later. When none is ready, the start makes its own as it always did.
//! Used for empty files (`fresh_files`) and cgroups (`cgroups_ahead`).
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

pub struct MadeAhead<T> {
    ready: Mutex<Vec<T>>,
    /// Held while things are being made; true once the supervisor stops (none is made after).
    work: Mutex<bool>,
    /// Wakes the thread that makes more (a send fails if it could not start: callers make theirs).
    wanted: Mutex<Sender<()>>,
    kept: usize,
}

impl<T: Send + 'static> MadeAhead<T> {
    /// Starts the thread `name` that keeps `kept` ready, each made by `make` (None: none now).
    pub fn start(name: &str, kept: usize, mut make: impl FnMut() -> Option<T> + Send + 'static) -> Arc<MadeAhead<T>> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let pool = Arc::new(MadeAhead {
            ready: Mutex::new(Vec::new()),
            work: Mutex::new(false),
            wanted: Mutex::new(tx),
            kept,
        });
        let weak: Weak<MadeAhead<T>> = Arc::downgrade(&pool);
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
            super::overlay_ahead::run_when_idle();
            while rx.recv().is_ok() {
                // As for a spare overlay: not while the start that took one is still ending.
                std::thread::sleep(super::overlay_ahead::MAKE_AFTER);
                match weak.upgrade() {
                    Some(pool) => pool.fill(&mut make),
                    None => return,
                }
            }
        });
        match spawned {
            Ok(_) => {
                let _ = pool.wanted.lock().send(());
            }
            Err(e) => crate::warn!("no {name} thread ({e}): starts make their own"),
        }
        pool
    }

    /// One made ahead, if one is ready (another is made after).
    pub fn take(&self) -> Option<T> {
        let taken = self.ready.lock().pop();
        let _ = self.wanted.lock().send(());
        taken
    }

    /// One taken and not used, still good.
    pub fn put_back(&self, thing: T) {
        self.ready.lock().push(thing);
    }

    /// Stops making them (waiting for one being made); what was ready, for the caller to undo.
    pub fn clear(&self) -> Vec<T> {
        let mut stopped = self.work.lock();
        *stopped = true;
        std::mem::take(&mut *self.ready.lock())
    }

    fn fill(&self, make: &mut impl FnMut() -> Option<T>) {
        let stopped = self.work.lock();
        if *stopped {
            return;
        }
        while self.ready.lock().len() < self.kept {
            match make() {
                Some(thing) => self.ready.lock().push(thing),
                None => return,
            }
        }
    }
}
