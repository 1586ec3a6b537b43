//! A fixed set of threads that run password hashes, one at a time each, each with its own
//! argon2id memory (`Scratch`) that it keeps while work is queued and frees when idle.
//!
//! Why: argon2id needs 19 MiB per hash. Allocated per hash on tokio's blocking pool, glibc
//! kept a freed block in the arena of every thread that ever hashed (≈400 MB after a login
//! storm); returned to the system after each hash, every hash paid ~5 ms of fresh page
//! faults (logins at 67% of the hashing bound). Here the memory is reused from one hash to
//! the next during a burst and freed when the queue empties (the allocator, tuned in
//! main.rs, returns it to the system at once): at most N × 19 MiB while busy, nothing when
//! idle. N is
//! PASSWORD_HASH_CONCURRENCY (default: the cores), which also bounds how much CPU a login
//! burst takes from other requests.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use anyhow::Context;
use argon2::Block;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// A hasher thread's argon2 memory, allocated at its first use in a burst.
#[derive(Default)]
pub struct Scratch {
    blocks: Vec<Block>,
}

impl Scratch {
    /// `count` blocks (1 KiB each), reused when already there.
    pub fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            self.blocks = vec![Block::default(); count];
        }
        &mut self.blocks[..count]
    }

    fn release(&mut self) {
        self.blocks = Vec::new();
    }
}

pub struct HasherPool {
    /// Closed when the pool is dropped: the threads then finish their job and exit.
    jobs: Mutex<Sender<Job>>,
}

impl HasherPool {
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("hasher-{i}"))
                .spawn(move || work(&queue))
                .context("cannot start a password hasher thread")?;
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `work` on a hasher thread when one is free; waits without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            // A receiver that went away (the request was cancelled) needs no answer.
            let _ = done.send(work(scratch));
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| anyhow::anyhow!("password hasher closed"))?;
        answer.await.context("password hashing failed")?
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    let mut scratch = Scratch::default();
    loop {
        // The lock is held only while taking a job, never while running one.
        let next = {
            let queue = match queue.try_lock() {
                Ok(queue) => queue,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                // Another hasher holds the queue, most likely waiting for work: this one
                // would wait behind it, so it gives its memory back first.
                Err(TryLockError::WouldBlock) => {
                    scratch.release();
                    queue.lock().unwrap_or_else(PoisonError::into_inner)
                }
            };
            match queue.try_recv() {
                Ok(job) => Ok(job),
                Err(TryRecvError::Empty) => {
                    // Nothing queued: give the memory back before waiting.
                    scratch.release();
                    queue.recv().map_err(|_| ())
                }
                Err(TryRecvError::Disconnected) => Err(()),
            }
        };
        let Ok(job) = next else {
            return;
        };
        // A panicking hash answers its caller with an error (its sender is dropped) and
        // leaves the thread serving the next one.
        let _ = catch_unwind(AssertUnwindSafe(|| job(&mut scratch)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panicking_one() {
        let pool = HasherPool::new(1).unwrap();
        assert_eq!(pool.run(|_| Ok(2 + 2)).await.unwrap(), 4);
        let panicked = pool.run::<()>(|_| panic!("hash exploded")).await;
        assert!(panicked.is_err());
        assert_eq!(
            pool.run(|_| Ok("still serving")).await.unwrap(),
            "still serving"
        );
    }

    #[tokio::test]
    async fn at_most_n_jobs_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = Arc::new(HasherPool::new(2).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..8).map(|_| {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                pool.run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
