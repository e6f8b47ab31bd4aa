//! Pre-training batches from a dataset on disk: the parallel, deterministic loader makes each
//! sample's official views ([`load_av_views`]); videos XKD's rule leaves out (no audio stream, or
//! a stream shorter than 1.1 s) are taken out of their batch, counted and listed, never dropped
//! silently.

use super::job::PretrainBatch;
use crate::data::av_views::{load_av_views, AvSampleError, AvViews};
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::mel::LogMel;
use crate::data::pretrain_views::PretrainViews;
use crate::train::job::TrainData;
use candle_core::{Device, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The videos left out so far, with why.
pub type FilteredVideos = Arc<Mutex<BTreeMap<PathBuf, String>>>;

type Item = std::result::Result<AvViews, AvSampleError>;

/// The batches of a pre-training dataset.
pub struct AvDatasetBatches {
    loader: Loader<Item>,
    device: Device,
    filtered: FilteredVideos,
}

impl AvDatasetBatches {
    /// `videos` are relative to `root`; `fps` is the rate of frame folders without `meta.json`.
    pub fn new(
        root: PathBuf,
        videos: Vec<PathBuf>,
        views: PretrainViews,
        fps: Option<f64>,
        cfg: LoaderConfig,
        device: Device,
    ) -> Result<Self> {
        let logmel = Arc::new(LogMel::new(crate::data::mel::LogMelConfig::xkd())?);
        let videos = Arc::new(videos);
        let len = videos.len();
        let load = Arc::new(
            move |i: usize, rng: &mut crate::nn::rng::SeededRng| -> Result<Item> {
                match load_av_views(&root, &videos[i], &views, &logmel, fps, rng) {
                    Ok(v) => Ok(Ok(v)),
                    Err(e) if e.is_filtered() => Ok(Err(e)),
                    Err(e) => Err(candle_core::Error::Msg(e.to_string())),
                }
            },
        );
        Ok(Self {
            loader: Loader::new(len, cfg, load),
            device,
            filtered: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// The videos left out so far (shared: it fills as epochs run).
    pub fn filtered(&self) -> FilteredVideos {
        self.filtered.clone()
    }
}

impl TrainData for AvDatasetBatches {
    type Batch = PretrainBatch;

    fn num_batches(&self) -> usize {
        self.loader.num_batches()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<PretrainBatch>> + '_>> {
        let dev = self.device.clone();
        let filtered = self.filtered.clone();
        Ok(Box::new(self.loader.epoch(epoch, start).map(
            move |batch| {
                let batch = batch?;
                let mut kept = Vec::with_capacity(batch.items.len());
                for item in batch.items {
                    match item {
                        Ok(views) => kept.push(views),
                        Err(e) => {
                            let mut f = filtered.lock().unwrap_or_else(|p| p.into_inner());
                            if f.insert(e.video().to_path_buf(), e.to_string()).is_none() {
                                tracing::warn!(
                                    "left out (XKD keeps videos with both streams): {e}"
                                );
                            }
                        }
                    }
                }
                if kept.is_empty() {
                    candle_core::bail!(
                    "batch {} of epoch {epoch}: every video lacks a usable audio or video stream",
                    batch.batch
                )
                }
                let (frames, specs) = AvViews::stack(&kept, &dev)?;
                Ok(PretrainBatch {
                    frames,
                    specs,
                    masking_noise: None,
                })
            },
        )))
    }
}
