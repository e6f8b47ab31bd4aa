//! `nn.utils.weight_norm(nn.Linear(in, out, bias=False))`: the weight is g * v / ||v|| with the norm
//! taken per output row (PyTorch's default dim 0), stored as `weight_g` [out, 1] and `weight_v` [out, in].

use super::init;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct WeightNormLinear {
    weight_g: Tensor,
    weight_v: Tensor,
}

impl WeightNormLinear {
    /// `weight_v` gets PyTorch's default Linear init; `weight_g` starts at 1 (DINO's `fill_(1)`).
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let weight_v = vb.get_with_hints(
            (out_dim, in_dim),
            "weight_v",
            init::torch_linear_default(in_dim),
        )?;
        let weight_g = vb.get_with_hints((out_dim, 1), "weight_g", candle_nn::Init::Const(1.))?;
        Ok(Self { weight_g, weight_v })
    }

    /// g * v / ||v||, the weight actually applied.
    pub fn effective_weight(&self) -> Result<Tensor> {
        let norm = self.weight_v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
        self.weight_v
            .broadcast_mul(&self.weight_g.broadcast_div(&norm)?)
    }
}

impl Module for WeightNormLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.effective_weight()?.t()?)
    }
}
