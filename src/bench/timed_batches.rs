//! The engine benches' data: the same batch over and over, noting when each is asked for, so the
//! time between two requests is one optimizer step of the job under test (loop, backward,
//! optimizer and all).

use super::Timing;
use crate::train::job::TrainData;
use candle_core::Result;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct TimedBatches<B> {
    batch: B,
    len: usize,
    requested: Arc<Mutex<Vec<Instant>>>,
}

impl<B: Clone + 'static> TimedBatches<B> {
    /// `len` batches per epoch of `batch`.
    pub fn new(batch: B, len: usize) -> Self {
        Self {
            batch,
            len,
            requested: Arc::default(),
        }
    }

    /// The median and minimum step time since the run began (the first step is the warm-up), the
    /// run having ended at `end`.
    pub fn timing(&self, name: String, end: Instant) -> Result<Timing> {
        let mut times = self
            .requested
            .lock()
            .map_err(|_| candle_core::Error::Msg("bench clock poisoned".into()))?
            .clone();
        times.push(end);
        // Step k lasts from its batch's request to the next one.
        let mut samples: Vec<f64> = times
            .windows(2)
            .skip(1)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        if samples.is_empty() {
            candle_core::bail!("{name}: no step was timed")
        }
        samples.sort_by(f64::total_cmp);
        Ok(Timing {
            name,
            median_s: samples[samples.len() / 2],
            min_s: samples[0],
            iters: samples.len(),
        })
    }
}

impl<B: Clone + 'static> TrainData for TimedBatches<B> {
    type Batch = B;

    fn num_batches(&self) -> usize {
        self.len
    }

    fn epoch(
        &mut self,
        _epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<B>> + '_>> {
        let (batch, requested) = (self.batch.clone(), self.requested.clone());
        Ok(Box::new((start..self.len).map(move |_| {
            requested
                .lock()
                .map_err(|_| candle_core::Error::Msg("bench clock poisoned".into()))?
                .push(Instant::now());
            Ok(batch.clone())
        })))
    }
}
