//! CCL's compositional embedding head (`models/composition_classifier.py::CompositionClassifier`,
//! built by `main.py` with `normalization_sign=True`).
//!
//! One head per teacher. It composes the teacher embedding t with the student's video embedding v
//! as z = t + mlp([t/‖t‖ ; v/‖v‖]): the teacher embedding plus a learned linear residual that sees
//! both modalities. It then classifies z with `fc`. The residual has no activation, and t is added
//! un-normalised. Parameter names as in the official state_dict: `mlp.{weight,bias}` [D, 2D] / [D]
//! and `fc.{weight,bias}` [C, D] / [C].

use crate::nn::init::torch_linear_default;
use crate::nn::linear::Linear;
use crate::nn::norm::l2_normalize;
use candle_core::{bail, Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct CompositionClassifier {
    mlp: Linear,
    fc: Linear,
    dim: usize,
    num_classes: usize,
}

impl CompositionClassifier {
    /// A head for `dim`-d embeddings (CCL: 512) and `num_classes` classes, with PyTorch's default
    /// `nn.Linear` init for missing parameters.
    pub fn new(dim: usize, num_classes: usize, vb: VarBuilder) -> Result<Self> {
        let init = torch_linear_default(2 * dim);
        let mlp = Linear::new(2 * dim, dim, true, init, init, vb.pp("mlp"))?;
        let init = torch_linear_default(dim);
        let fc = Linear::new(dim, num_classes, true, init, init, vb.pp("fc"))?;
        Ok(Self {
            mlp,
            fc,
            dim,
            num_classes,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// `(logits_z [N, C], z [N, D])` for the teacher embedding `teacher` [N, D] and the video
    /// embedding `video` [N, D] (the teacher comes first in the concatenation, as in the official
    /// `forward(f1, f2)`).
    pub fn forward(&self, teacher: &Tensor, video: &Tensor) -> Result<(Tensor, Tensor)> {
        match teacher.dims() {
            [_, d] if *d == self.dim => {}
            s => bail!(
                "CompositionClassifier: teacher embedding must be [N, {}], got {s:?}",
                self.dim
            ),
        }
        if video.dims() != teacher.dims() {
            bail!(
                "CompositionClassifier: video embedding {:?} must match the teacher's {:?}",
                video.dims(),
                teacher.dims()
            )
        }
        let joint = Tensor::cat(&[l2_normalize(teacher)?, l2_normalize(video)?], 1)?;
        let z = (teacher + self.mlp.forward(&joint)?)?;
        let logits = self.fc.forward(&z)?;
        Ok((logits, z))
    }
}
