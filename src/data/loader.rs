//! A parallel, prefetching, deterministic batch loader.
//!
//! An epoch is a fixed order of sample indices (a seeded permutation, or the identity), cut into
//! batches. Items are produced by a user `load(index, &mut rng)` on `workers` threads; each item's
//! generator is derived from (seed, epoch, index) alone, and items are put back in order before a
//! batch is returned, so the batches are the same whatever the number of workers or the timing.
//! Workers only start items of the next `prefetch_batches` batches, so memory stays bounded, and
//! dropping the iterator stops and joins them.

use crate::nn::rng::SeededRng;
use candle_core::Result;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// What to do with a sample whose `load` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadSample {
    /// The batch holding it is returned as an error.
    #[default]
    Fail,
    /// It is left out of its batch and recorded in [`EpochIter::skipped`].
    Skip,
}

impl BadSample {
    /// `Skip` when `skip` (a `--skip-bad` flag), else `Fail`.
    pub fn skip_if(skip: bool) -> Self {
        if skip {
            Self::Skip
        } else {
            Self::Fail
        }
    }
}

/// How batches are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch (0 is taken as 1).
    pub batch_size: usize,
    /// Loading threads; 0 loads inline in the caller's thread.
    pub workers: usize,
    /// Batches being loaded or waiting, at most (at least 1).
    pub prefetch_batches: usize,
    pub shuffle: bool,
    /// Leaves out the last batch when it is short.
    pub drop_last: bool,
    pub seed: u64,
    pub bad_sample: BadSample,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 1,
            workers: 0,
            prefetch_batches: 2,
            shuffle: false,
            drop_last: false,
            seed: 0,
            bad_sample: BadSample::Fail,
        }
    }
}

/// Produces the item of one sample index.
pub type LoadFn<T> = Arc<dyn Fn(usize, &mut SeededRng) -> Result<T> + Send + Sync>;

/// One batch: its number in the epoch, the sample indices it holds and their items, in order.
#[derive(Debug)]
pub struct Batch<T> {
    pub batch: usize,
    /// The sample indices of `items` (with [`BadSample::Skip`], those that loaded).
    pub indices: Vec<usize>,
    pub items: Vec<T>,
}

/// The samples left out with [`BadSample::Skip`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    pub count: usize,
    /// The first [`Skipped::KEPT`] (sample index, error message) pairs.
    pub first: Vec<(usize, String)>,
}

impl Skipped {
    /// How many errors are kept in full.
    pub const KEPT: usize = 10;

    fn record(&mut self, index: usize, err: &candle_core::Error) {
        self.count += 1;
        if self.first.len() < Self::KEPT {
            self.first.push((index, err.to_string()));
        }
    }

    /// One line for a log, e.g. "3 unreadable samples skipped: …".
    pub fn summary(&self) -> String {
        let mut s = format!("{} unreadable samples skipped", self.count);
        if self.count > 0 {
            let listed: Vec<String> = self
                .first
                .iter()
                .map(|(i, e)| format!("#{i} ({e})"))
                .collect();
            s.push_str(": ");
            s.push_str(&listed.join("; "));
            if self.count > self.first.len() {
                s.push_str(&format!("; and {} more", self.count - self.first.len()));
            }
        }
        s
    }
}

/// Batches over `len` samples.
pub struct Loader<T: Send + 'static> {
    len: usize,
    cfg: LoaderConfig,
    load: LoadFn<T>,
}

impl<T: Send + 'static> Loader<T> {
    /// `load(index, &mut rng)` produces one item; rng is derived from (seed, epoch, index) so
    /// results never depend on thread count or timing.
    pub fn new(len: usize, cfg: LoaderConfig, load: LoadFn<T>) -> Self {
        Self { len, cfg, load }
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Samples per epoch.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let bs = self.cfg.batch_size.max(1);
        if self.cfg.drop_last {
            self.len / bs
        } else {
            self.len.div_ceil(bs)
        }
    }

    fn epoch_rng(&self, epoch: usize) -> SeededRng {
        SeededRng::new(self.cfg.seed).derive(epoch as u64)
    }

    /// The epoch's sample order: a permutation drawn from `SeededRng(seed).derive(epoch)`, or the
    /// identity without shuffling.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        if self.cfg.shuffle {
            self.epoch_rng(epoch).permutation(self.len)
        } else {
            (0..self.len).collect()
        }
    }

    /// Batches of epoch `epoch` in order, from batch `start_batch` (for an exact resume).
    pub fn epoch(&self, epoch: usize, start_batch: usize) -> EpochIter<T> {
        let bs = self.cfg.batch_size.max(1);
        let num_batches = self.num_batches();
        let start_batch = start_batch.min(num_batches);
        let order = self.order(epoch);
        let batches: Vec<Vec<usize>> = (start_batch..num_batches)
            .map(|b| order[b * bs..((b + 1) * bs).min(self.len)].to_vec())
            .collect();
        let jobs: Vec<(usize, usize)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, idx)| idx.iter().map(move |&i| (b, i)))
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_job: 0,
                next_batch: 0,
                done: HashMap::new(),
                stop: false,
            }),
            changed: Condvar::new(),
            jobs,
            item_rng: self.epoch_rng(epoch),
            load: self.load.clone(),
            prefetch: self.cfg.prefetch_batches.max(1),
        });
        let workers = (0..self.cfg.workers)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || shared.work())
            })
            .collect();
        EpochIter {
            shared,
            workers,
            batches,
            first_batch: start_batch,
            pos: 0,
            job_pos: 0,
            bad_sample: self.cfg.bad_sample,
            skipped: Skipped::default(),
        }
    }
}

/// What the workers and the iterator share.
struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    /// (batch position in this iterator, sample index), in output order.
    jobs: Vec<(usize, usize)>,
    item_rng: SeededRng,
    load: LoadFn<T>,
    prefetch: usize,
}

struct State<T> {
    /// The first job no worker has taken.
    next_job: usize,
    /// The batch the iterator waits for next.
    next_batch: usize,
    /// Finished items by job number.
    done: HashMap<usize, Result<T>>,
    stop: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A worker never panics while holding the lock (loads are caught), so poisoning is only
        // possible after a bug elsewhere; the state is still consistent then.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads one sample with its own generator; a panic in `load` becomes an error.
    fn load_one(&self, index: usize) -> Result<T> {
        // Stream 0 is the epoch generator's own (the permutation), so items start at 1.
        let mut rng = self.item_rng.derive(index as u64 + 1);
        match catch_unwind(AssertUnwindSafe(|| (self.load)(index, &mut rng))) {
            Ok(r) => r,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(msg(format!("loading sample {index} panicked: {what}")))
            }
        }
    }

    /// A worker: takes the next job inside the prefetch window, loads it, stores the result.
    fn work(&self) {
        loop {
            let job = {
                let mut st = self.lock();
                loop {
                    if st.stop || st.next_job >= self.jobs.len() {
                        return;
                    }
                    if self.jobs[st.next_job].0 < st.next_batch + self.prefetch {
                        break;
                    }
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                st.next_job += 1;
                st.next_job - 1
            };
            let result = self.load_one(self.jobs[job].1);
            let mut st = self.lock();
            st.done.insert(job, result);
            self.changed.notify_all();
        }
    }
}

/// The batches of one epoch. Dropping it stops and joins the workers.
pub struct EpochIter<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    workers: Vec<JoinHandle<()>>,
    /// Sample indices of each remaining batch.
    batches: Vec<Vec<usize>>,
    first_batch: usize,
    /// The next batch to return (position in `batches`).
    pos: usize,
    /// Its first job.
    job_pos: usize,
    bad_sample: BadSample,
    skipped: Skipped,
}

impl<T: Send + 'static> EpochIter<T> {
    /// Samples left out so far with [`BadSample::Skip`].
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// Batches still to come.
    pub fn remaining(&self) -> usize {
        self.batches.len() - self.pos
    }

    /// The items of the next batch, loaded inline or collected from the workers, in order.
    fn collect_items(&mut self, n: usize) -> Vec<Result<T>> {
        let jobs = self.job_pos..self.job_pos + n;
        if self.workers.is_empty() {
            return jobs
                .map(|j| self.shared.load_one(self.shared.jobs[j].1))
                .collect();
        }
        let shared = self.shared.clone();
        let mut st = shared.lock();
        while !jobs.clone().all(|j| st.done.contains_key(&j)) {
            st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let items = jobs.filter_map(|j| st.done.remove(&j)).collect();
        // Frees a slot in the prefetch window.
        st.next_batch = self.pos + 1;
        shared.changed.notify_all();
        items
    }
}

impl<T: Send + 'static> Iterator for EpochIter<T> {
    type Item = Result<Batch<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        let indices = self.batches.get(self.pos)?.clone();
        let results = self.collect_items(indices.len());
        let batch = self.first_batch + self.pos;
        self.pos += 1;
        self.job_pos += indices.len();
        let mut kept = Vec::with_capacity(indices.len());
        let mut items = Vec::with_capacity(indices.len());
        for (index, result) in indices.into_iter().zip(results) {
            match result {
                Ok(item) => {
                    kept.push(index);
                    items.push(item);
                }
                Err(e) => match self.bad_sample {
                    BadSample::Fail => {
                        return Some(Err(msg(format!(
                            "batch {batch}: sample {index} failed to load: {e}"
                        ))))
                    }
                    BadSample::Skip => self.skipped.record(index, &e),
                },
            }
        }
        Some(Ok(Batch {
            batch,
            indices: kept,
            items,
        }))
    }
}

impl<T: Send + 'static> Drop for EpochIter<T> {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.stop = true;
            self.shared.changed.notify_all();
        }
        for w in self.workers.drain(..) {
            // Loads are caught, so a worker cannot have panicked.
            let _ = w.join();
        }
    }
}
