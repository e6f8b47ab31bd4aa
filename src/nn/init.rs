//! Parameter initialisers, drawn from avkd's seeded generator.
//!
//! Models ask for their parameters through candle's `VarBuilder` with an `Init` hint. candle's `Init`
//! has no truncated-normal or orthogonal variant, so [`trunc_normal`] and [`orthogonal`] encode them
//! in `Init::Kaiming` variants that avkd's models never use otherwise; [`sample`] decodes them.

use super::rng::SeededRng;
use candle_core::{Device, Result, Shape, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::Init;

/// timm's `trunc_normal_(std)`: normal(0, std) truncated to the absolute bounds [-2, 2].
pub fn trunc_normal(std: f64) -> Init {
    Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanIn,
        non_linearity: NonLinearity::ExplicitGain(std),
    }
}

/// PyTorch's `orthogonal_(gain)`.
pub fn orthogonal(gain: f64) -> Init {
    Init::Kaiming {
        dist: NormalOrUniform::Uniform,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::ExplicitGain(gain),
    }
}

/// PyTorch's `xavier_uniform_` for a weight of shape [fan_out, fan_in].
pub fn xavier_uniform(fan_in: usize, fan_out: usize) -> Init {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

/// The default init of PyTorch's `nn.Linear` (kaiming-uniform weight with a = sqrt(5), i.e.
/// U(±1/sqrt(fan_in)); the bias uses the same bound).
pub fn torch_linear_default(fan_in: usize) -> Init {
    let a = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

/// Draws a tensor for `init` from `rng`.
pub fn sample(rng: &mut SeededRng, shape: &Shape, init: Init, dev: &Device) -> Result<Tensor> {
    let n = shape.elem_count();
    let data = match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => rng.normal_vec(n, mean, stdev),
        Init::Uniform { lo, up } => rng.uniform_vec(n, lo, up),
        Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ExplicitGain(std),
        } => rng.trunc_normal_vec(n, 0.0, std, -2.0, 2.0),
        Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ExplicitGain(gain),
        } => orthogonal_values(rng, shape, gain)?,
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape) as f64;
            let std = non_linearity.gain() / fan.sqrt();
            match dist {
                NormalOrUniform::Normal => rng.normal_vec(n, 0.0, std),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    rng.uniform_vec(n, -bound, bound)
                }
            }
        }
    };
    Tensor::from_vec(data, shape.clone(), dev)
}

/// Orthogonal rows (or columns) as `torch.nn.init.orthogonal_`: QR of a normal matrix with the signs
/// of R's diagonal made positive (modified Gram-Schmidt gives exactly that), scaled by `gain`.
fn orthogonal_values(rng: &mut SeededRng, shape: &Shape, gain: f64) -> Result<Vec<f32>> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("orthogonal init needs at least 2 dimensions, got {shape:?}")
    }
    let rows = dims[0];
    let cols = shape.elem_count() / rows;
    let (long, short) = (rows.max(cols), rows.min(cols));
    // `short` orthonormal vectors of length `long`.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..long).map(|_| rng.normal_f64()).collect())
        .collect();
    for i in 0..short {
        let (done, rest) = q.split_at_mut(i);
        let qi = &mut rest[0];
        for qj in done.iter() {
            let dot: f64 = qi.iter().zip(qj).map(|(a, b)| a * b).sum();
            qi.iter_mut().zip(qj).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = q[i].iter().map(|v| v * v).sum::<f64>().sqrt();
        q[i].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // rows >= cols: column c of Q is q[c]; otherwise row r is q[r].
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_are_orthonormal() -> Result<()> {
        let mut rng = SeededRng::new(0);
        let t = sample(
            &mut rng,
            &Shape::from((5, 12)),
            orthogonal(1.0),
            &Device::Cpu,
        )?;
        let gram = t.matmul(&t.t()?)?.to_vec2::<f32>()?;
        for (i, row) in gram.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-5, "gram[{i}][{j}] = {v}");
            }
        }
        Ok(())
    }

    #[test]
    fn orthogonal_columns_when_tall() -> Result<()> {
        let mut rng = SeededRng::new(1);
        let t = sample(
            &mut rng,
            &Shape::from((12, 5)),
            orthogonal(2.0),
            &Device::Cpu,
        )?;
        let gram = (t.t()?.matmul(&t)? / 4.0)?.to_vec2::<f32>()?;
        for (i, row) in gram.iter().enumerate() {
            assert!((row[i] - 1.0).abs() < 1e-5);
        }
        Ok(())
    }
}
