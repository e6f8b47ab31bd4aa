//! XKD's DINO projection head (`DINOHead`, preset '2048-gelu-3-256-8192-norm3'):
//! Linear -> LayerNorm -> GELU -> (Linear -> LayerNorm -> GELU) x (nlayers - 2) -> Linear, then
//! L2 normalisation, a weight-normed Linear without bias (`weight_g` frozen at 1) and a LayerNorm
//! without affine. The official head builds ONE LayerNorm and uses it after every hidden Linear, so its
//! checkpoints hold the same tensors under `mlp.1` and `mlp.4`; avkd stores it once, as `mlp.1`.

use super::config::DinoHeadConfig;
use crate::nn::init::trunc_normal;
use crate::nn::linear::Linear;
use crate::nn::norm::{l2_normalize, LayerNorm};
use crate::nn::weight_norm::WeightNormLinear;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct DinoHead {
    linears: Vec<Linear>,
    norm: Option<LayerNorm>,
    last_layer: WeightNormLinear,
    last_norm: LayerNorm,
}

impl DinoHead {
    pub fn new(cfg: &DinoHeadConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.nlayers == 0 {
            candle_core::bail!("DINO head needs at least one layer")
        }
        let mlp = vb.pp("mlp");
        let mut dims = vec![cfg.in_dim];
        dims.extend(std::iter::repeat_n(cfg.hidden_dim, cfg.nlayers - 1));
        dims.push(cfg.bottleneck_dim);
        // Sequential indices: Linear at 0, 3, 6, ... with the shared norm at 1 (and 4, ...).
        let linears = (0..cfg.nlayers)
            .map(|i| {
                Linear::new(
                    dims[i],
                    dims[i + 1],
                    true,
                    trunc_normal(0.02),
                    Init::Const(0.),
                    mlp.pp(3 * i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = if cfg.nlayers > 1 {
            Some(LayerNorm::new(
                cfg.hidden_dim,
                cfg.layer_norm_eps,
                mlp.pp(1),
            )?)
        } else {
            None
        };
        Ok(Self {
            linears,
            norm,
            last_layer: WeightNormLinear::new(
                cfg.bottleneck_dim,
                cfg.out_dim,
                vb.pp("last_layer"),
            )?,
            last_norm: LayerNorm::no_affine(cfg.out_dim, cfg.layer_norm_eps),
        })
    }

    /// The MLP output before L2 normalisation [B, bottleneck].
    pub fn bottleneck(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let last = self.linears.len() - 1;
        for (i, linear) in self.linears.iter().enumerate() {
            x = linear.forward(&x)?;
            // Every hidden layer (all but the last) is followed by the shared norm and GELU.
            if let (true, Some(norm)) = (i < last, &self.norm) {
                x = crate::nn::gelu::gelu_erf(&norm.forward(&x)?)?;
            }
        }
        Ok(x)
    }

    /// The weight-normed projection before the final norm [B, out_dim].
    pub fn project(&self, bottleneck: &Tensor) -> Result<Tensor> {
        self.last_layer.forward(&l2_normalize(bottleneck)?)
    }
}

impl Module for DinoHead {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.last_norm.forward(&self.project(&self.bottleneck(x)?)?)
    }
}
