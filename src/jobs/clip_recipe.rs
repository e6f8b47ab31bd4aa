//! The clip recipe of a model: the paper's sampling, transforms and normalisation for a video
//! model, from its preprocessor configuration. It joins `models` (the configuration) and `data`
//! (the recipe), which know nothing of each other.

use crate::data::clip_dataset::ClipRecipe;
use crate::data::clip_sampling::{CclTest, ClipSampling};
use crate::data::transforms::{Normalization, TestAugment, TrainAugment};
use crate::models::config::PreprocessorConfig;
use candle_core::Result;

/// The paper's recipe for a model, from its preprocessor configuration: XKD models sample at a
/// fixed rate (`fps` set: 32 frames at 8 fps, RandAugment, 3 clips x 3 crops at test), CCL's
/// R(2+1)D takes consecutive frames (`fps` unset: 16 frames, every 16-frame window at test).
/// `crop` overrides the crop size (XKD fine-tunes at 224 from a 112 student);
/// `test_clips` overrides the number of test clips (XKD); `fps` is the rate of frame folders that
/// state none (see [`ClipRecipe::fps`]).
pub fn recipe_for_model(
    pre: &PreprocessorConfig,
    crop: Option<usize>,
    test_clips: Option<usize>,
    fps: Option<f64>,
) -> Result<ClipRecipe> {
    if let Some(f) = fps.filter(|f| !(f.is_finite() && *f > 0.0)) {
        candle_core::bail!("--fps must be a positive frame rate, found {f}")
    }
    let frames = pre.num_frames.ok_or_else(|| {
        candle_core::Error::Msg(
            "the model's preprocessor_config.json has no `num_frames`: not a video model".into(),
        )
    })?;
    let size = crop.or(pre.crop_size).unwrap_or(112);
    let (mean, std) = match (pre.mean, pre.std) {
        (Some(m), Some(s)) => (m, s),
        _ => candle_core::bail!("the model's preprocessor_config.json has no `mean`/`std`"),
    };
    let norm = Normalization {
        mean: mean.map(|v| v as f32),
        std: std.map(|v| v as f32),
    };
    let (sampling, train, test) = match pre.fps {
        Some(fps) => (
            ClipSampling::Xkd {
                frames,
                fps,
                clips: test_clips.unwrap_or(3),
            },
            TrainAugment::xkd_finetune(size),
            TestAugment::xkd(size),
        ),
        None => (
            ClipSampling::Ccl {
                frames,
                clips: CclTest::Sliding { stride: frames },
            },
            TrainAugment::ccl(size),
            TestAugment::ccl(size),
        ),
    };
    Ok(ClipRecipe {
        sampling,
        train,
        test,
        norm,
        fps,
    })
}
