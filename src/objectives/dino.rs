//! Cross-modal DINO loss with teacher centring (`DINOLossX` of XKD).
//!
//! It is DINO's loss adapted to cross-modal distillation: the teacher of one modality supervises the
//! student of the other, so the official code no longer skips the pairs where the teacher and the
//! student see "the same view" — every (teacher view, student view) pair contributes.

use crate::nn::softmax::{log_softmax_last_dim, softmax_last_dim};
use candle_core::{bail, DType, Device, Result, Tensor};

/// DINO cross-entropy between sharpened, centred teacher probabilities and student log-probabilities,
/// with the running teacher centre that prevents collapse onto one dimension.
#[derive(Debug, Clone)]
pub struct DinoLoss {
    /// Running mean of the teacher outputs [1, out_dim]; never carries gradients.
    center: Tensor,
    /// EMA momentum of the centre (0.9 in XKD).
    momentum: f64,
}

impl DinoLoss {
    /// A loss with a zero centre [1, out_dim] in f32, as a freshly built `DINOLossX`.
    pub fn new(out_dim: usize, momentum: f64, device: &Device) -> Result<Self> {
        let center = Tensor::zeros((1, out_dim), DType::F32, device)?;
        Ok(Self { center, momentum })
    }

    /// A loss that starts from a given centre [1, out_dim] (e.g. restored from a checkpoint buffer).
    pub fn from_center(center: Tensor, momentum: f64) -> Result<Self> {
        check_center(&center)?;
        Ok(Self {
            center: center.detach(),
            momentum,
        })
    }

    /// The current centre [1, out_dim].
    pub fn center(&self) -> &Tensor {
        &self.center
    }

    /// Replaces the centre; the shape must stay [1, out_dim].
    pub fn set_center(&mut self, center: Tensor) -> Result<()> {
        check_center(&center)?;
        if center.dims() != self.center.dims() {
            bail!(
                "dino: new center {:?} does not match the current center {:?}",
                center.dims(),
                self.center.dims()
            );
        }
        self.center = center.detach();
        Ok(())
    }

    /// The EMA momentum of the centre.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// Loss over all (teacher view, student view) pairs, then the centre update with `teacher`.
    ///
    /// `student` is [num_student_views·B, out_dim] and `teacher` [num_teacher_views·B, out_dim], with
    /// the views stacked along dim 0. The teacher side is detached: only the student gets gradients.
    /// The loss uses the centre from before this call, as the official code does.
    pub fn forward(
        &mut self,
        student: &Tensor,
        teacher: &Tensor,
        student_temp: f64,
        teacher_temp: f64,
        num_student_views: usize,
        num_teacher_views: usize,
    ) -> Result<Tensor> {
        let out_dim = self.center.dim(1)?;
        let (ns, ds) = match student.dims() {
            [n, d] => (*n, *d),
            s => bail!("dino: student output must be [views*B, out_dim], got shape {s:?}"),
        };
        let (nt, dt) = match teacher.dims() {
            [n, d] => (*n, *d),
            s => bail!("dino: teacher output must be [views*B, out_dim], got shape {s:?}"),
        };
        if ds != out_dim || dt != out_dim {
            bail!(
                "dino: student {:?} and teacher {:?} must have out_dim {out_dim} (center {:?})",
                student.dims(),
                teacher.dims(),
                self.center.dims()
            );
        }
        let bs = views_batch("student", ns, num_student_views)?;
        let bt = views_batch("teacher", nt, num_teacher_views)?;
        if bs != bt {
            bail!(
                "dino: per-view batch differs: student {:?} in {num_student_views} views gives {bs}, \
                 teacher {:?} in {num_teacher_views} views gives {bt}",
                student.dims(),
                teacher.dims()
            );
        }
        if student_temp <= 0.0 || teacher_temp <= 0.0 {
            bail!("dino: temperatures must be positive, got student {student_temp}, teacher {teacher_temp}");
        }

        let student_out = (student / student_temp)?;
        let teacher = teacher.detach();
        let center = self.center.to_dtype(teacher.dtype())?;
        let teacher_prob =
            softmax_last_dim(&(teacher.broadcast_sub(&center)? / teacher_temp)?)?.detach();

        let mut total: Option<Tensor> = None;
        for iq in 0..num_teacher_views {
            let q = teacher_prob.narrow(0, iq * bt, bt)?;
            for v in 0..num_student_views {
                let s = student_out.narrow(0, v * bs, bs)?;
                let log_p = log_softmax_last_dim(&s)?;
                let term = (q.neg()? * log_p)?.sum(1)?.mean_all()?;
                total = Some(match total {
                    Some(t) => (t + term)?,
                    None => term,
                });
            }
        }
        let n_terms = (num_teacher_views * num_student_views) as f64;
        let loss = match total {
            Some(t) => (t / n_terms)?,
            None => bail!("dino: no views"),
        };

        self.update_center(&teacher)?;
        Ok(loss)
    }

    /// EMA update of the centre with the batch mean of `teacher` [N, out_dim] (single process: the
    /// official code all-reduces the sum over processes when distributed), without gradients.
    pub fn update_center(&mut self, teacher: &Tensor) -> Result<()> {
        let out_dim = self.center.dim(1)?;
        match teacher.dims() {
            [n, d] if *n > 0 && *d == out_dim => {}
            s => bail!(
                "dino: teacher output must be [N>0, {out_dim}] for the center update, got {s:?}"
            ),
        }
        let n = teacher.dim(0)? as f64;
        let batch_center = (teacher.detach().sum_keepdim(0)? / n)?.to_dtype(self.center.dtype())?;
        let center = ((&self.center * self.momentum)? + (batch_center * (1.0 - self.momentum))?)?;
        self.center = center.detach();
        Ok(())
    }
}

fn check_center(center: &Tensor) -> Result<()> {
    match center.dims() {
        [1, d] if *d > 0 => Ok(()),
        s => bail!("dino: center must be [1, out_dim], got shape {s:?}"),
    }
}

/// Per-view batch size of `n` rows split into `views` equal chunks along dim 0.
fn views_batch(what: &str, n: usize, views: usize) -> Result<usize> {
    if views == 0 || n == 0 || !n.is_multiple_of(views) {
        bail!("dino: {what} batch of {n} rows does not split into {views} equal views");
    }
    Ok(n / views)
}
