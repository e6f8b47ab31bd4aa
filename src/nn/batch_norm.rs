//! BatchNorm over the channel axis (dim 1) of inputs of any rank (BatchNorm1d/2d/3d), as PyTorch.
//!
//! Training mode normalises with the batch statistics (biased variance) and updates the running
//! statistics with momentum 0.1 and the *unbiased* variance; evaluation mode uses the running
//! statistics. The running statistics live in the parameter store as `running_mean`/`running_var`
//! (so they are saved with the model) but are never trained: [`is_running_stat`] tells optimisers to
//! leave them out. PyTorch's `num_batches_tracked` is not kept (dropped on import).

use super::batch_norm_train::{batch_norm_train, batch_statistics};
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct BatchNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    running_mean: Tensor,
    running_var: Tensor,
    num_features: usize,
    eps: f64,
    momentum: f64,
}

/// Whether a parameter name is a BatchNorm running statistic (not trainable).
pub fn is_running_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

impl BatchNorm {
    /// `nn.BatchNorm{1,2,3}d(num_features, eps, momentum)` with affine weight (1) and bias (0).
    pub fn new(num_features: usize, eps: f64, momentum: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: Some(vb.get_with_hints(num_features, "weight", Init::Const(1.))?),
            bias: Some(vb.get_with_hints(num_features, "bias", Init::Const(0.))?),
            running_mean: vb.get_with_hints(num_features, "running_mean", Init::Const(0.))?,
            running_var: vb.get_with_hints(num_features, "running_var", Init::Const(1.))?,
            num_features,
            eps,
            momentum,
        })
    }

    /// PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn default_config(num_features: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(num_features, 1e-5, 0.1, vb)
    }

    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    /// Shape [1, C, 1, ...] to broadcast a per-channel vector against an input of rank `rank`.
    fn per_channel(&self, v: &Tensor, rank: usize) -> Result<Tensor> {
        let mut shape = vec![1; rank];
        shape[1] = self.num_features;
        v.reshape(shape)
    }

    /// `train`: normalise with the batch statistics and update the running ones.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims();
        if dims.len() < 2 || dims[1] != self.num_features {
            candle_core::bail!(
                "batch norm over {} channels got input of shape {dims:?}",
                self.num_features
            )
        }
        let rank = dims.len();
        if train {
            if let Some(y) = self.fused_train(x)? {
                return Ok(y);
            }
        }
        let (mean, var) = if train {
            // [B, C, rest] -> statistics over B and rest.
            let (b, c) = (dims[0], dims[1]);
            let n = x.elem_count() / c;
            if n < 2 {
                candle_core::bail!("batch norm in training mode needs more than one value per channel, got input of shape {dims:?}")
            }
            let flat = x.reshape((b, c, n / b))?;
            let mean = (flat.sum(D::Minus1)?.sum(0)? / n as f64)?;
            let centred = flat.broadcast_sub(&mean.reshape((1, c, 1))?)?;
            let var = (centred.sqr()?.sum(D::Minus1)?.sum(0)? / n as f64)?;
            self.update_running(&mean, &var, n)?;
            (mean, var)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        };
        let inv_std = (var + self.eps)?.sqrt()?.recip()?;
        let mut scale = inv_std;
        if let Some(w) = &self.weight {
            scale = (scale * w)?;
        }
        let mut shift = (mean.neg()? * &scale)?;
        if let Some(b) = &self.bias {
            shift = (shift + b)?;
        }
        x.broadcast_mul(&self.per_channel(&scale, rank)?)?
            .broadcast_add(&self.per_channel(&shift, rank)?)
    }

    /// Training mode through the fused CPU op ([`super::batch_norm_train`]), which keeps one
    /// full-size tensor for backward instead of four; `None` where it does not apply (other
    /// devices and dtypes, no affine parameters).
    fn fused_train(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let fused =
            matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
        let (Some(w), Some(b)) = (&self.weight, &self.bias) else {
            return Ok(None);
        };
        if !fused || w.dtype() != x.dtype() {
            return Ok(None);
        }
        let n = x.elem_count() / self.num_features;
        if n < 2 {
            candle_core::bail!("batch norm in training mode needs more than one value per channel, got input of shape {:?}", x.dims())
        }
        let stats = batch_statistics(&x.detach())?;
        self.update_running(&stats.get(0)?, &stats.get(1)?, n)?;
        let affine = Tensor::stack(&[w, b], 0)?;
        batch_norm_train(x, &affine, &stats, self.eps).map(Some)
    }

    /// running = (1 - momentum) running + momentum batch, with the unbiased batch variance.
    fn update_running(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = (var.detach() * (n as f64 / (n as f64 - 1.0)))?;
        for (running, batch) in [
            (&self.running_mean, mean.detach()),
            (&self.running_var, unbiased),
        ] {
            let updated = ((running.detach() * (1.0 - m))? + (batch * m)?)?;
            match Var::from_tensor(running) {
                // `Var::from_tensor` returns the same variable when `running` is one.
                Ok(var) if var.as_tensor().id() == running.id() => var.set(&updated)?,
                _ => candle_core::bail!("batch norm running statistics must be variables to be updated in training mode"),
            }
        }
        Ok(())
    }
}
