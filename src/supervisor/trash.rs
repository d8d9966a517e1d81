//! Deleting ended containers' layers off the path of any answer: a thread of its own removes
//! what it is sent (a supervisor that dies first leaves it in `<root>/trash/`, which the next one
//! empties at its start).
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Below the supervisor's root: layers of ended `--rm` containers being deleted or kept for reuse.
pub const TRASH_DIR: &str = "trash";

/// Deletes `dir` on the trash thread; at once, here, if that thread could not be started.
pub fn delete_later(dir: PathBuf) {
    static TRASH: OnceLock<Option<Mutex<Sender<PathBuf>>>> = OnceLock::new();
    let worker = TRASH.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new().name("trash".into()).spawn(move || {
            for dir in rx {
                delete(dir);
            }
        });
        spawned.ok().map(|_| Mutex::new(tx))
    });
    match worker {
        Some(tx) => {
            if let Err(std::sync::mpsc::SendError(dir)) = tx.lock().send(dir) {
                delete(dir);
            }
        }
        None => delete(dir),
    }
}

fn delete(dir: PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        crate::warn!("removing {}: {e}", dir.display());
    }
}
