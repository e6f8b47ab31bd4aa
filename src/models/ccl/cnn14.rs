//! CCL's audio teacher: PANNs `Cnn14_emb512` (qiuqiangkong/audioset_tagging_cnn at d2f4b8c,
//! `pytorch/models.py`) with its log-mel front end, so avkd can compute the audio-teacher features
//! that the CCL repository only ships precomputed (`embedding` = ReLU(fc1(·)), 512 values).
//!
//! Evaluation mode only: the teacher is frozen, so SpecAugment, mixup, dropout and batch-statistics
//! BatchNorm (PANNs' training-mode behaviour) are not implemented. Parameter names are those of the
//! PANNs state_dict (the weights sit under the checkpoint's key `model`; `num_batches_tracked` is
//! dropped); `checkpoint::panns` reads them from a PANNs checkpoint file.

use super::audio_frontend::LogMelFrontend;
use crate::nn::batch_norm::BatchNorm;
use crate::nn::conv2d::conv2d;
use crate::nn::init::xavier_uniform;
use crate::nn::linear::Linear;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// Number of 2×2 average pools (blocks 1–5): time and mel axes must have at least 2^5 entries.
const POOLS: u32 = 5;

/// The `Cnn14_emb512` constructor arguments, plus the channel widths and embedding size (fixed to
/// [64, …, 2048] and 512 in PANNs; configurable so reduced models can be tested).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cnn14Config {
    pub sample_rate: usize,
    /// STFT size and window length (n_fft).
    pub window_size: usize,
    pub hop_size: usize,
    pub mel_bins: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub classes_num: usize,
    /// Output channels of conv_block1..6.
    pub widths: [usize; 6],
    /// Width of fc1, i.e. of the embedding.
    pub emb_dim: usize,
}

impl Cnn14Config {
    /// PANNs' AudioSet model as CCL's teacher uses it (inference.py defaults).
    pub fn panns() -> Self {
        Self {
            sample_rate: 32000,
            window_size: 1024,
            hop_size: 320,
            mel_bins: 64,
            fmin: 50.0,
            fmax: 14000.0,
            classes_num: 527,
            widths: [64, 128, 256, 512, 1024, 2048],
            emb_dim: 512,
        }
    }

    /// Frames of the log-mel spectrogram of `len` samples (centred STFT), 0 when too short to pad.
    pub fn num_frames(&self, len: usize) -> usize {
        let pad = self.window_size / 2;
        if self.hop_size == 0 || len <= pad || len + 2 * pad < self.window_size {
            return 0;
        }
        (len + 2 * pad - self.window_size) / self.hop_size + 1
    }

    /// The shortest waveform the network accepts: reflect padding needs more than n_fft/2 samples
    /// and the five 2×2 pools need at least 32 frames (PyTorch fails below that too).
    pub fn min_samples(&self) -> usize {
        let pad = self.window_size / 2;
        let need = (((1 << POOLS) - 1) * self.hop_size + self.window_size).saturating_sub(2 * pad);
        need.max(pad + 1)
    }

    fn validate(&self) -> Result<()> {
        let min_mel = 1 << POOLS;
        if self.window_size < 2 || self.hop_size == 0 || self.sample_rate == 0 {
            candle_core::bail!(
                "Cnn14Config: window_size {} must be >= 2, hop_size {} and sample_rate {} positive",
                self.window_size,
                self.hop_size,
                self.sample_rate
            )
        }
        if self.mel_bins < min_mel {
            candle_core::bail!(
                "Cnn14Config: mel_bins {} < {min_mel} (five 2x2 pools halve the mel axis)",
                self.mel_bins
            )
        }
        if !(self.fmin >= 0.0 && self.fmin < self.fmax) {
            candle_core::bail!(
                "Cnn14Config: need 0 <= fmin < fmax, got fmin {} fmax {}",
                self.fmin,
                self.fmax
            )
        }
        if self.widths.contains(&0) || self.emb_dim == 0 || self.classes_num == 0 {
            candle_core::bail!(
                "Cnn14Config: widths {:?}, emb_dim {} and classes_num {} must be positive",
                self.widths,
                self.emb_dim,
                self.classes_num
            )
        }
        Ok(())
    }
}

/// PANNs `ConvBlock`: (conv 3×3 pad 1, no bias → BN → ReLU) × 2, then average pooling.
#[derive(Debug, Clone)]
struct ConvBlock {
    conv1: Tensor,
    bn1: BatchNorm,
    conv2: Tensor,
    bn2: BatchNorm,
}

impl ConvBlock {
    /// PANNs `init_layer` (xavier-uniform, fan = channels·9) and `init_bn` (1, 0).
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let conv = |c_in: usize, name: &str| {
            vb.pp(name).get_with_hints(
                (c_out, c_in, 3, 3),
                "weight",
                xavier_uniform(c_in * 9, c_out * 9),
            )
        };
        Ok(Self {
            conv1: conv(c_in, "conv1")?,
            bn1: BatchNorm::default_config(c_out, vb.pp("bn1"))?,
            conv2: conv(c_out, "conv2")?,
            bn2: BatchNorm::default_config(c_out, vb.pp("bn2"))?,
        })
    }

    /// `pool` is the square average-pool size (2 for blocks 1–5, 1 for block 6).
    fn forward(&self, x: &Tensor, pool: usize) -> Result<Tensor> {
        let x = self.bn1.forward_t(&conv2d(x, &self.conv1, 1, 1)?, false)?;
        let x = x.relu()?;
        let x = self.bn2.forward_t(&conv2d(&x, &self.conv2, 1, 1)?, false)?;
        let x = x.relu()?;
        if pool == 1 {
            Ok(x)
        } else {
            x.avg_pool2d((pool, pool))
        }
    }
}

/// What CCL uses (`embedding`) and PANNs' tagging output.
#[derive(Debug, Clone)]
pub struct Cnn14Output {
    /// ReLU(fc1(·)) [B, emb_dim]: the audio-teacher feature.
    pub embedding: Tensor,
    /// sigmoid(fc_audioset(embedding)) [B, classes_num].
    pub clipwise_output: Tensor,
}

/// Intermediate tensors, for checking against the reference implementation.
#[derive(Debug, Clone)]
pub struct Cnn14Stages {
    /// Log-mel in dB before bn0 [B, 1, frames, mel_bins].
    pub logmel: Tensor,
    /// conv_block6 output [B, widths[5], T', F'].
    pub conv_block6: Tensor,
    /// fc1 output before the ReLU [B, emb_dim].
    pub fc1_prerelu: Tensor,
    pub output: Cnn14Output,
}

#[derive(Debug, Clone)]
pub struct Cnn14Emb512 {
    frontend: LogMelFrontend,
    bn0: BatchNorm,
    blocks: Vec<ConvBlock>,
    fc1: Linear,
    fc_audioset: Linear,
    cfg: Cnn14Config,
}

impl Cnn14Emb512 {
    pub fn new(cfg: &Cnn14Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let frontend = LogMelFrontend::new(cfg, vb.clone())?;
        let bn0 = BatchNorm::default_config(cfg.mel_bins, vb.pp("bn0"))?;
        let mut blocks = Vec::with_capacity(6);
        let mut c_in = 1;
        for (i, &c_out) in cfg.widths.iter().enumerate() {
            blocks.push(ConvBlock::new(
                c_in,
                c_out,
                vb.pp(format!("conv_block{}", i + 1)),
            )?);
            c_in = c_out;
        }
        let linear = |d_in: usize, d_out: usize, name: &str| {
            Linear::new(
                d_in,
                d_out,
                true,
                xavier_uniform(d_in, d_out),
                Init::Const(0.),
                vb.pp(name),
            )
        };
        Ok(Self {
            frontend,
            bn0,
            blocks,
            fc1: linear(cfg.widths[5], cfg.emb_dim, "fc1")?,
            fc_audioset: linear(cfg.emb_dim, cfg.classes_num, "fc_audioset")?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Cnn14Config {
        &self.cfg
    }

    pub fn frontend(&self) -> &LogMelFrontend {
        &self.frontend
    }

    /// Checks a waveform [B, L] against the configuration before any work is done.
    fn check_waveform(&self, wav: &Tensor) -> Result<()> {
        let len = match wav.dims() {
            &[_, len] => len,
            d => candle_core::bail!(
                "Cnn14Emb512: waveform must be [batch, samples], got shape {d:?}"
            ),
        };
        let min = self.cfg.min_samples();
        if len < min {
            candle_core::bail!(
                "Cnn14Emb512: waveform of shape {:?} has {len} samples, fewer than the {min} needed (32 frames of hop {}, window {})",
                wav.dims(),
                self.cfg.hop_size,
                self.cfg.window_size
            )
        }
        Ok(())
    }

    /// Log-mel spectrogram in dB [B, 1, frames, mel_bins] (before bn0).
    pub fn logmel(&self, wav: &Tensor) -> Result<Tensor> {
        self.check_waveform(wav)?;
        self.frontend.forward(wav)
    }

    /// The network after the front end: log-mel [B, 1, T, mel_bins] -> every later stage.
    pub fn forward_logmel(&self, logmel: &Tensor) -> Result<Cnn14Stages> {
        let (_, c, t, m) = logmel.dims4()?;
        let min = 1 << POOLS;
        if c != 1 || m != self.cfg.mel_bins || t < min {
            candle_core::bail!(
                "Cnn14Emb512: log-mel must be [batch, 1, >= {min} frames, {}], got shape {:?}",
                self.cfg.mel_bins,
                logmel.dims()
            )
        }
        // bn0 normalises each mel bin: mel becomes the channel axis and back.
        let x = self
            .bn0
            .forward_t(&logmel.transpose(1, 3)?, false)?
            .transpose(1, 3)?
            .contiguous()?;
        let mut x = x;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, if i < 5 { 2 } else { 1 })?;
        }
        let conv_block6 = x;
        // Mean over frequency, then max + mean over time.
        let x = conv_block6.mean(3)?;
        let x = (x.max(D::Minus1)? + x.mean(D::Minus1)?)?;
        let fc1_prerelu = self.fc1.forward(&x)?;
        let embedding = fc1_prerelu.relu()?;
        let clipwise_output = candle_nn::ops::sigmoid(&self.fc_audioset.forward(&embedding)?)?;
        Ok(Cnn14Stages {
            logmel: logmel.clone(),
            conv_block6,
            fc1_prerelu,
            output: Cnn14Output {
                embedding,
                clipwise_output,
            },
        })
    }

    /// Every stage from a waveform [B, L] (eval mode).
    pub fn forward_stages(&self, wav: &Tensor) -> Result<Cnn14Stages> {
        self.forward_logmel(&self.logmel(wav)?)
    }

    /// Waveform [B, L] at `sample_rate` -> embedding and clip-wise output (eval mode).
    pub fn forward(&self, wav: &Tensor) -> Result<Cnn14Output> {
        Ok(self.forward_stages(wav)?.output)
    }
}
