//! `nn.Linear`, applied to inputs of any rank as one 2-D matrix product x · Wᵀ (leading dimensions are
//! flattened): the fastest gemm shape, and with [`matmul_nt`](super::matmul::matmul_nt) the weight
//! gradient comes out in the weight's own layout.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// A linear layer whose weight [out, in] and bias [out] are drawn with the given inits.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        weight_init: Init,
        bias_init: Init,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", weight_init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", bias_init)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = match dims.last() {
            Some(&d) if d == self.weight.dim(1)? => d,
            _ => candle_core::bail!(
                "linear layer over {} features got input of shape {dims:?}",
                self.weight.dim(1)?
            ),
        };
        let rows = x.elem_count() / in_dim.max(1);
        let y = super::matmul::matmul_nt(&x.reshape((rows, in_dim))?, &self.weight)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims[..dims.len() - 1].to_vec();
        out_dims.push(self.weight.dim(0)?);
        y.reshape(out_dims)
    }
}
