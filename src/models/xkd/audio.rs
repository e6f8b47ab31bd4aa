//! XKD's audio encoder (`AudioViT`): 4 (frequency) x 16 (time) patches of a log-mel spectrogram,
//! frequency-row-major token order, embedded by a Linear; the positional embedding is resampled
//! bicubically along time when the spectrogram's length differs from the native one.

use super::config::AudioVitConfig;
use super::encoder::{EncoderTrunk, XkdEncoder};
use crate::nn::interpolate::resample_bicubic_time;
use crate::nn::linear::Linear;
use crate::nn::rng::SeededRng;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct AudioViT {
    trunk: EncoderTrunk,
    cfg: AudioVitConfig,
}

impl AudioViT {
    pub fn new(cfg: &AudioVitConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_blocks_from(cfg, vb.clone(), vb.pp("blocks"))
    }

    /// Like `new`, with the transformer blocks taken from `blocks_vb` (XKD-MAS/MATS sharing).
    pub fn with_blocks_from(
        cfg: &AudioVitConfig,
        vb: VarBuilder,
        blocks_vb: VarBuilder,
    ) -> Result<Self> {
        let trunk = EncoderTrunk::new(
            &cfg.transformer,
            cfg.num_patches(),
            cfg.patch_dim(),
            vb,
            blocks_vb,
        )?;
        Ok(Self {
            trunk,
            cfg: cfg.clone(),
        })
    }

    pub fn patch_embed(&self) -> &Linear {
        &self.trunk.patch_embed
    }

    pub fn config(&self) -> &AudioVitConfig {
        &self.cfg
    }

    /// The token grid (frequency, time) of a spectrogram [B, C, F, T].
    pub fn grid_of(&self, x: &Tensor) -> Result<[usize; 2]> {
        let (_, c, f, t) = x.dims4()?;
        let [pf, pt] = self.cfg.patch_size;
        if c != self.cfg.in_channels || f != self.cfg.spec_size[0] || t % pt != 0 || t == 0 {
            candle_core::bail!(
                "spectrogram of shape [B, C, F, T] = {:?} does not fit the encoder: expected {} channel(s), F = {} mel bins, T a multiple of {pt}",
                x.dims(),
                self.cfg.in_channels,
                self.cfg.spec_size[0]
            )
        }
        Ok([f / pf, t / pt])
    }

    /// The positional embedding for a token grid, resampled along time when needed.
    pub fn pos_embed_for(&self, grid: [usize; 2]) -> Result<Tensor> {
        let native = self.cfg.grid();
        if grid == native {
            return Ok(self.trunk.pos_embed.clone());
        }
        let scale = (grid[1] as f64 + 0.1) / native[1] as f64;
        let (pos, out) = resample_bicubic_time(&self.trunk.pos_embed, native, scale)?;
        if out != grid {
            candle_core::bail!(
                "positional embedding resampled to grid {out:?}, the input needs {grid:?}"
            )
        }
        Ok(pos)
    }
}

impl XkdEncoder for AudioViT {
    fn patchify(&self, x: &Tensor) -> Result<Tensor> {
        let [nf, nt] = self.grid_of(x)?;
        let (b, c, _, _) = x.dims4()?;
        let [pf, pt] = self.cfg.patch_size;
        // b c (h ph) (w pw) -> b (h w) (ph pw c)
        x.reshape(vec![b, c, nf, pf, nt, pt])?
            .permute(vec![0, 2, 4, 3, 5, 1])?
            .reshape((b, nf * nt, pf * pt * c))
    }

    fn embed(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let pos = self.pos_embed_for(self.grid_of(x)?)?;
        let patches = self.trunk.patch_embed.forward(&self.patchify(x)?)?;
        self.trunk.add_pos(&patches, &pos)
    }

    fn encode(
        &self,
        tokens: &Tensor,
        want_attn: bool,
        rng: Option<&mut SeededRng>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.trunk.encode(tokens, want_attn, rng)
    }

    fn embed_dim(&self) -> usize {
        self.cfg.transformer.embed_dim
    }
}
