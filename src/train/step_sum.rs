//! What one optimizer step sums over its micro-batches: the gradients (each micro-batch's divided
//! by their number, so the sum is their mean) and the logged values (averaged, left on the device).

use super::job::{Gradients, StepOutput};
use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Result, Tensor, Var};

/// The running sums of one optimizer step.
pub struct StepSum {
    micro_batches: usize,
    grads: Option<GradStore>,
    logged: Vec<(&'static str, Tensor)>,
    pub samples: usize,
}

/// A finished step's gradients and logged means.
pub struct StepMeans {
    pub grads: GradStore,
    pub names: Vec<&'static str>,
    pub values: Vec<Tensor>,
    pub samples: usize,
}

impl StepSum {
    pub fn new(micro_batches: usize) -> Self {
        Self {
            micro_batches,
            grads: None,
            logged: Vec::new(),
            samples: 0,
        }
    }

    /// Adds one micro-batch's output; `vars` are every parameter any optimizer steps.
    pub fn add(&mut self, out: StepOutput, vars: &[Var]) -> Result<()> {
        self.samples += out.samples;
        for (name, value) in out.logged {
            let value = value.detach().flatten_all()?.to_dtype(DType::F32)?;
            match self.logged.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => *sum = (&*sum + value)?,
                None => self.logged.push((name, value)),
            }
        }
        let g = micro_batch_gradients(out.gradients, vars, self.micro_batches)?;
        match &mut self.grads {
            Some(acc) => add_grads(acc, g, vars),
            None => {
                self.grads = Some(g);
                Ok(())
            }
        }
    }

    /// The summed gradients and the mean of every logged value.
    pub fn finish(self) -> Result<StepMeans> {
        let Some(grads) = self.grads else {
            bail!("internal: an optimizer step without micro-batches")
        };
        let scale = 1.0 / self.micro_batches as f64;
        let mut names = Vec::with_capacity(self.logged.len());
        let mut values = Vec::with_capacity(self.logged.len());
        for (name, sum) in self.logged {
            names.push(name);
            values.push(sum.affine(scale, 0.0)?);
        }
        Ok(StepMeans {
            grads,
            names,
            values,
            samples: self.samples,
        })
    }
}

/// Adds the gradients of `vars` in `more` into `acc`.
fn add_grads(acc: &mut GradStore, more: GradStore, vars: &[Var]) -> Result<()> {
    for var in vars {
        if let Some(g) = more.get(var) {
            let sum = match acc.get(var) {
                Some(a) => (a + g)?,
                None => g.clone(),
            };
            acc.insert(var, sum);
        }
    }
    Ok(())
}

/// The gradients of one micro-batch, divided by the number of micro-batches in the step. This is
/// the one place a training step differentiates, where loss scaling for f16 belongs.
fn micro_batch_gradients(gradients: Gradients, vars: &[Var], micro: usize) -> Result<GradStore> {
    let scale = 1.0 / micro as f64;
    match gradients {
        Gradients::Loss(loss) => loss.affine(scale, 0.0)?.backward(),
        Gradients::Routed(mut grads) => {
            if micro > 1 {
                for var in vars {
                    if let Some(g) = grads.get(var) {
                        let scaled = g.affine(scale, 0.0)?;
                        grads.insert(var, scaled);
                    }
                }
            }
            Ok(grads)
        }
    }
}
