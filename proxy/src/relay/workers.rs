//! Session worker threads: single-threaded event loops, several per process.
//!
//! Sessions are independent, so each runs entirely on one thread with a
//! single-threaded tokio runtime; the accept loop hands new sockets round
//! robin. Compared with a work-stealing runtime this avoids waking a second
//! thread for every I/O event, which on a proxy whose cost is mostly system
//! calls and wake-ups is a measurable share of the CPU per transaction
//! (see benches/RESULTS.md).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// A session to run on a worker, as a future built on that worker's thread.
pub type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Handles to the worker threads.
pub struct Workers {
    /// One queue per worker thread.
    queues: Vec<mpsc::UnboundedSender<Job>>,
    /// Round-robin position.
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` worker threads (0: one per core).
    /// They stop when the `Workers` is dropped.
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let count = match count {
            // One loop per core: the processes a loop wakes (database
            // backends, clients) are queued on the loop's core, so a single
            // loop leaves the other cores idle (see ARCHITECTURE.md).
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut queues = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("switchyard-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(job) = rx.recv().await {
                            tokio::spawn(job());
                        }
                    });
                    // The queue closes when the proxy is torn down; sessions
                    // still on this thread end with the runtime.
                })?;
            queues.push(tx);
        }
        Ok(Workers {
            queues,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs a job on the next worker.
    pub fn dispatch(&self, job: Job) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        if self.queues[index].send(job).is_err() {
            tracing::error!(index, "session worker thread has stopped");
        }
    }
}
