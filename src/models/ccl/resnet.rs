//! CCL's image teacher: torchvision's ResNet (BasicBlock; ResNet-34 = (3, 4, 6, 3)), used frozen in
//! eval mode with the classifier removed, giving a 512-d feature per frame. Tensor names are
//! torchvision's (`conv1`, `bn1`, `layerN.M.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}`, `fc`).

use crate::nn::batch_norm::BatchNorm;
use crate::nn::conv2d::conv2d;
use crate::nn::init::torch_linear_default;
use crate::nn::linear::Linear;
use crate::nn::pool::max_pool;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Blocks per stage: ResNet-18 (2,2,2,2), ResNet-34 (3,4,6,3).
    pub layers: [usize; 4],
    /// Channels of the stem and of the four stages (torchvision: 64, 64, 128, 256, 512 — the stem and
    /// stage 1 share `widths[0]`).
    pub widths: [usize; 4],
    /// Classes of the `fc` layer; `None` builds the CCL teacher (no classifier).
    pub num_classes: Option<usize>,
}

impl ResNetConfig {
    /// The CCL image teacher: ResNet-34 without its classifier.
    pub fn resnet34_teacher() -> Self {
        Self {
            layers: [3, 4, 6, 3],
            widths: [64, 128, 256, 512],
            num_classes: None,
        }
    }
}

fn conv_weight(out: usize, input: usize, k: usize, vb: VarBuilder) -> Result<Tensor> {
    vb.get_with_hints(
        (out, input, k, k),
        "weight",
        torch_linear_default(input * k * k),
    )
}

#[derive(Debug, Clone)]
struct BasicBlock {
    conv1: Tensor,
    bn1: BatchNorm,
    conv2: Tensor,
    bn2: BatchNorm,
    downsample: Option<(Tensor, BatchNorm)>,
    stride: usize,
}

impl BasicBlock {
    fn new(input: usize, output: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let downsample = if stride != 1 || input != output {
            Some((
                conv_weight(output, input, 1, vb.pp("downsample").pp(0))?,
                BatchNorm::default_config(output, vb.pp("downsample").pp(1))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: conv_weight(output, input, 3, vb.pp("conv1"))?,
            bn1: BatchNorm::default_config(output, vb.pp("bn1"))?,
            conv2: conv_weight(output, output, 3, vb.pp("conv2"))?,
            bn2: BatchNorm::default_config(output, vb.pp("bn2"))?,
            downsample,
            stride,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self
            .bn1
            .forward_t(&conv2d(x, &self.conv1, self.stride, 1)?, train)?
            .relu()?;
        let y = self.bn2.forward_t(&conv2d(&y, &self.conv2, 1, 1)?, train)?;
        let shortcut = match &self.downsample {
            Some((w, bn)) => bn.forward_t(&conv2d(x, w, self.stride, 0)?, train)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

#[derive(Debug, Clone)]
pub struct ResNet {
    conv1: Tensor,
    bn1: BatchNorm,
    layers: Vec<Vec<BasicBlock>>,
    fc: Option<Linear>,
    feature_dim: usize,
}

impl ResNet {
    pub fn new(cfg: &ResNetConfig, vb: VarBuilder) -> Result<Self> {
        let conv1 = conv_weight(cfg.widths[0], 3, 7, vb.pp("conv1"))?;
        let bn1 = BatchNorm::default_config(cfg.widths[0], vb.pp("bn1"))?;
        let mut layers = Vec::with_capacity(4);
        let mut input = cfg.widths[0];
        for (i, (&n, &width)) in cfg.layers.iter().zip(&cfg.widths).enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let vb = vb.pp(format!("layer{}", i + 1));
            let blocks = (0..n)
                .map(|j| {
                    BasicBlock::new(
                        if j == 0 { input } else { width },
                        width,
                        if j == 0 { stride } else { 1 },
                        vb.pp(j),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            layers.push(blocks);
            input = width;
        }
        let fc = match cfg.num_classes {
            Some(c) => Some(Linear::new(
                input,
                c,
                true,
                torch_linear_default(input),
                torch_linear_default(input),
                vb.pp("fc"),
            )?),
            None => None,
        };
        Ok(Self {
            conv1,
            bn1,
            layers,
            fc,
            feature_dim: input,
        })
    }

    /// The layer4 feature map of images [B, 3, H, W] (eval mode unless `train`).
    pub fn feature_map_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self
            .bn1
            .forward_t(&conv2d(x, &self.conv1, 2, 3)?, train)?
            .relu()?;
        let mut y = max_pool(&y, &[3, 3], &[2, 2], &[1, 1])?;
        for blocks in &self.layers {
            for block in blocks {
                y = block.forward_t(&y, train)?;
            }
        }
        Ok(y)
    }

    /// The teacher feature [B, C]: global average of the layer4 map (eval mode).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.feature_map_t(x, false)?
            .flatten_from(2)?
            .mean(D::Minus1)
    }

    /// The width of [`ResNet::features`] (512 for ResNet-34).
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    pub fn has_classifier(&self) -> bool {
        self.fc.is_some()
    }

    /// Class logits, when the model has its `fc` layer.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        match &self.fc {
            Some(fc) => fc.forward(&self.features(x)?),
            None => {
                candle_core::bail!("this ResNet was built without a classifier (num_classes: None)")
            }
        }
    }
}
