//! How the processes of a run agree: the seam where data parallelism plugs into the engine.
//!
//! The engine calls [`Collective::reduce_gradients`] after every backward pass and before clipping,
//! so clipping and the optimizer step see the gradients of the whole world. A single process
//! ([`SingleProcess`]) is a world of one: its gradients already are the world's.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

/// The processes training one model together.
pub trait Collective {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn world_size(&self) -> usize;
    /// Replaces every gradient of `vars` in `grads` by its mean over the world.
    fn reduce_gradients(&self, vars: &[Var], grads: &mut GradStore) -> Result<()>;
    /// Only rank 0 writes checkpoints, metrics and curves.
    fn is_main(&self) -> bool {
        self.rank() == 0
    }
}

/// One process alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn reduce_gradients(&self, _vars: &[Var], _grads: &mut GradStore) -> Result<()> {
        Ok(())
    }
}
