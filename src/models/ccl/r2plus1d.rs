//! CCL's video student: the R(2+1)D of `models/r21d.py` (the VCOP / R2Plus1D-PyTorch lineage).
//!
//! Every 3-D convolution is factorised as `spatial_conv` (1×k×k, to M channels) → BatchNorm → ReLU →
//! `temporal_conv` (k×1×1), with M = ⌊kt·kh·kw·in·out / (kh·kw·in + kt·out)⌋. There is no stem
//! max-pool, the downsampling shortcut is itself a (2+1)D conv (with its inner BN and ReLU) followed
//! by BN, and "depth 18" builds ONE block per stage — what the official code builds and trains
//! (depth 34 = (3, 4, 6, 3)). Activations are kept frame-batched ([B·T, C, H, W]) throughout.

use crate::nn::batch_norm::BatchNorm;
use crate::nn::conv3d::{global_avg_pool_frames, spatial_conv, temporal_conv, to_frames};
use crate::nn::init::torch_linear_default;
use crate::nn::linear::Linear;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct R2Plus1dConfig {
    /// 18 (one block per stage, the official default) or 34 (3, 4, 6, 3).
    pub depth: usize,
    /// Channel widths of the stem/conv2 and of conv3..conv5 (official: 64, 128, 256, 512).
    pub widths: [usize; 4],
    pub in_channels: usize,
    pub num_classes: usize,
}

impl R2Plus1dConfig {
    pub fn official(depth: usize, num_classes: usize) -> Self {
        Self {
            depth,
            widths: [64, 128, 256, 512],
            in_channels: 3,
            num_classes,
        }
    }

    pub fn layer_sizes(&self) -> Result<[usize; 4]> {
        match self.depth {
            18 => Ok([1, 1, 1, 1]),
            34 => Ok([3, 4, 6, 3]),
            d => {
                candle_core::bail!("R(2+1)D depth {d} is not one of the official depths 18 and 34")
            }
        }
    }
}

/// The intermediate width of a (2+1)D factorisation.
pub fn intermediate_width(k: [usize; 3], input: usize, output: usize) -> usize {
    let [kt, kh, kw] = k;
    (kt * kh * kw * input * output) / (kh * kw * input + kt * output)
}

/// PyTorch's default conv init: U(±1/sqrt(fan_in)).
fn conv_weight(shape: (usize, usize, usize, usize, usize), vb: VarBuilder) -> Result<Tensor> {
    let fan_in = shape.1 * shape.2 * shape.3 * shape.4;
    vb.get_with_hints(shape, "weight", torch_linear_default(fan_in))
}

#[derive(Debug, Clone)]
struct SpatioTemporalConv {
    spatial: Tensor,
    bn: BatchNorm,
    temporal: Tensor,
    stride: [usize; 2],
    padding: [usize; 2],
}

impl SpatioTemporalConv {
    /// Kernel k×k×k (cubic, as the official blocks use), stride (st, s, s), padding (p, p, p) or as given.
    fn new(
        input: usize,
        output: usize,
        k: [usize; 3],
        stride: [usize; 2],
        padding: [usize; 2],
        vb: VarBuilder,
    ) -> Result<Self> {
        let m = intermediate_width(k, input, output);
        Ok(Self {
            spatial: conv_weight((m, input, 1, k[1], k[2]), vb.pp("spatial_conv"))?,
            bn: BatchNorm::default_config(m, vb.pp("bn"))?,
            temporal: conv_weight((output, m, k[0], 1, 1), vb.pp("temporal_conv"))?,
            stride,
            padding,
        })
    }

    /// stride = [temporal, spatial], padding = [temporal, spatial].
    fn forward_t(&self, x: &Tensor, t: usize, train: bool) -> Result<(Tensor, usize)> {
        let x = spatial_conv(x, &self.spatial, self.stride[1], self.padding[1])?;
        let x = self.bn.forward_t(&x, train)?.relu()?;
        temporal_conv(&x, t, &self.temporal, self.stride[0], self.padding[0])
    }
}

#[derive(Debug, Clone)]
struct ResBlock {
    conv1: SpatioTemporalConv,
    bn1: BatchNorm,
    conv2: SpatioTemporalConv,
    bn2: BatchNorm,
    downsample: Option<(SpatioTemporalConv, BatchNorm)>,
}

impl ResBlock {
    fn new(input: usize, output: usize, downsample: bool, vb: VarBuilder) -> Result<Self> {
        let s = if downsample { 2 } else { 1 };
        let k = [3, 3, 3];
        let downsample = if downsample {
            Some((
                SpatioTemporalConv::new(
                    input,
                    output,
                    [1, 1, 1],
                    [2, 2],
                    [0, 0],
                    vb.pp("downsampleconv"),
                )?,
                BatchNorm::default_config(output, vb.pp("downsamplebn"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: SpatioTemporalConv::new(input, output, k, [s, s], [1, 1], vb.pp("conv1"))?,
            bn1: BatchNorm::default_config(output, vb.pp("bn1"))?,
            conv2: SpatioTemporalConv::new(output, output, k, [1, 1], [1, 1], vb.pp("conv2"))?,
            bn2: BatchNorm::default_config(output, vb.pp("bn2"))?,
            downsample,
        })
    }

    fn forward_t(&self, x: &Tensor, t: usize, train: bool) -> Result<(Tensor, usize)> {
        let (r, t1) = self.conv1.forward_t(x, t, train)?;
        let r = self.bn1.forward_t(&r, train)?.relu()?;
        let (r, t2) = self.conv2.forward_t(&r, t1, train)?;
        let r = self.bn2.forward_t(&r, train)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward_t(x, t, train)?.0, train)?,
            None => x.clone(),
        };
        Ok(((shortcut + r)?.relu()?, t2))
    }
}

#[derive(Debug, Clone)]
pub struct R2Plus1d {
    conv1: SpatioTemporalConv,
    bn1: BatchNorm,
    stages: Vec<Vec<ResBlock>>,
    linear: Linear,
    cfg: R2Plus1dConfig,
}

/// The outputs of the official `forward` with `use_features=True`.
#[derive(Debug, Clone)]
pub struct R2Plus1dOutput {
    pub logits: Tensor,
    /// The pooled 512-d (widths[3]) feature, before the classifier.
    pub feature: Tensor,
}

impl R2Plus1d {
    pub fn new(cfg: &R2Plus1dConfig, vb: VarBuilder) -> Result<Self> {
        let [w1, w2, w3, w4] = cfg.widths;
        let sizes = cfg.layer_sizes()?;
        let conv1 = SpatioTemporalConv::new(
            cfg.in_channels,
            w1,
            [3, 7, 7],
            [1, 2],
            [1, 3],
            vb.pp("conv1"),
        )?;
        let bn1 = BatchNorm::default_config(w1, vb.pp("bn1"))?;
        let mut stages = Vec::with_capacity(4);
        for (i, (input, output)) in [(w1, w1), (w1, w2), (w2, w3), (w3, w4)]
            .into_iter()
            .enumerate()
        {
            let layer = vb.pp(format!("conv{}", i + 2));
            let mut blocks = vec![ResBlock::new(input, output, i > 0, layer.pp("block1"))?];
            for j in 0..sizes[i] - 1 {
                blocks.push(ResBlock::new(
                    output,
                    output,
                    false,
                    layer.pp("blocks").pp(j),
                )?);
            }
            stages.push(blocks);
        }
        let linear = Linear::new(
            w4,
            cfg.num_classes,
            true,
            torch_linear_default(w4),
            torch_linear_default(w4),
            vb.pp("linear"),
        )?;
        Ok(Self {
            conv1,
            bn1,
            stages,
            linear,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &R2Plus1dConfig {
        &self.cfg
    }

    /// The output of every stage as the official modules give it, frame-batched with its frames per
    /// clip: `conv1` (the stem's (2+1)D conv, before `bn1`), then `conv2` .. `conv5`.
    pub fn stages_t(&self, x: &Tensor, train: bool) -> Result<Vec<(Tensor, usize)>> {
        let (_, c, _, _, _) = x.dims5()?;
        if c != self.cfg.in_channels {
            candle_core::bail!(
                "R(2+1)D expects clips [B, {}, T, H, W], got {:?}",
                self.cfg.in_channels,
                x.dims()
            )
        }
        let (frames, t) = to_frames(x)?;
        let (stem, t) = self.conv1.forward_t(&frames, t, train)?;
        let mut y = self.bn1.forward_t(&stem, train)?.relu()?;
        let mut t = t;
        let mut outs = vec![(stem, t)];
        for blocks in &self.stages {
            for block in blocks {
                (y, t) = block.forward_t(&y, t, train)?;
            }
            outs.push((y.clone(), t));
        }
        Ok(outs)
    }

    /// `train`: BatchNorm uses (and updates) batch statistics.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<R2Plus1dOutput> {
        let (y, t) = self
            .stages_t(x, train)?
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("R(2+1)D has no stages".into()))?;
        let feature = global_avg_pool_frames(&y, t)?;
        Ok(R2Plus1dOutput {
            logits: self.linear.forward(&feature)?,
            feature,
        })
    }
}
