//! Answers from a log writer's thread, handed to the runtime with one wake-up per batch.
//!
//! The WAL's writer completes a batch's writes one after another, from its own thread. Sent
//! straight to each request's oneshot, every completion is a wake-up from outside the
//! runtime: a push onto tokio's shared queue under its lock, and often a parked worker
//! unparked (a futex call and a context switch) to run a task that will only write an
//! answer. The [`Completer`] instead collects the completions in a queue and wakes one task
//! on the runtime when the queue turns non-empty; that task hands them to their requests
//! from inside the runtime, where a wake-up is a push onto the worker's own run queue. A
//! batch of 20 writes then costs the runtime one wake-up from outside instead of 20.
//!
//! Order is kept (the queue is first in, first out) and nothing is dropped: a completion
//! queued after the task took the queue finds it empty and wakes the task again
//! ([`Notify`] keeps a wake-up that arrives while the task is busy).

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{Notify, oneshot};

/// A completion waiting to be handed over: the request's end of the channel, and its value.
type Pending<T> = (oneshot::Sender<T>, T);

/// See the module docs. Cheap to share: the queue and the task live as long as the server.
#[derive(Debug)]
pub struct Completer<T> {
    shared: Arc<Shared<T>>,
    task: OnceLock<()>,
}

#[derive(Debug)]
struct Shared<T> {
    queue: Mutex<Vec<Pending<T>>>,
    notify: Notify,
}

impl<T: Send + 'static> Default for Completer<T> {
    fn default() -> Self {
        Completer {
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                notify: Notify::new(),
            }),
            task: OnceLock::new(),
        }
    }
}

impl<T: Send + 'static> Completer<T> {
    /// A function that completes `tx` with its argument through this completer, for a
    /// writer's thread to call. The first call of `sender` starts the completer's task, so
    /// it must be made on the runtime.
    pub fn sender(&self, tx: oneshot::Sender<T>) -> impl FnOnce(T) + Send + 'static {
        self.task.get_or_init(|| {
            let shared = Arc::clone(&self.shared);
            // Runs until the runtime shuts down, which is when the server stops.
            tokio::spawn(async move {
                loop {
                    shared.notify.notified().await;
                    let batch = std::mem::take(&mut *lock(&shared.queue));
                    for (tx, value) in batch {
                        // The request may have gone (its client left); the write stands.
                        let _ = tx.send(value);
                    }
                }
            });
        });
        let shared = Arc::clone(&self.shared);
        move |value| {
            let mut queue = lock(&shared.queue);
            let first = queue.is_empty();
            queue.push((tx, value));
            drop(queue);
            if first {
                shared.notify.notify_one();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while the lock was held left a Vec, which is still a Vec.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_completion_from_another_thread_arrives_in_order() {
        let completer = Completer::<u32>::default();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..1000)
            .map(|_| {
                let (tx, rx) = oneshot::channel();
                (completer.sender(tx), rx)
            })
            .unzip();
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiting: Vec<_> = receivers
            .into_iter()
            .map(|rx| {
                let order = Arc::clone(&order);
                tokio::spawn(async move {
                    let v = rx.await.expect("every completion arrives");
                    lock(&order).push(v);
                    v
                })
            })
            .collect();
        // A writer thread completing them in batches of 1..=37, as the log writer does.
        std::thread::spawn(move || {
            let mut senders = senders.into_iter().enumerate();
            let mut n = 0;
            loop {
                n = n % 37 + 1;
                let batch: Vec<_> = senders.by_ref().take(n).collect();
                if batch.is_empty() {
                    break;
                }
                for (i, send) in batch {
                    send(i as u32);
                }
                std::thread::yield_now();
            }
        });
        for (i, w) in waiting.into_iter().enumerate() {
            assert_eq!(w.await.unwrap(), i as u32);
        }
        assert_eq!(lock(&order).len(), 1000);
    }
}
