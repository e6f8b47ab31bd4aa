//! XKD's video encoder (`VideoViT`): 4x16x16 tubelets flattened as (pt, ph, pw, c), channel innermost,
//! embedded by a Linear; learned positional embedding resampled trilinearly with XKD's "+0.1" rule
//! when the input differs from the native clip.

use super::config::VideoVitConfig;
use super::encoder::{EncoderTrunk, XkdEncoder};
use crate::nn::interpolate::resample_trilinear;
use crate::nn::linear::Linear;
use crate::nn::rng::SeededRng;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct VideoViT {
    trunk: EncoderTrunk,
    cfg: VideoVitConfig,
}

impl VideoViT {
    pub fn new(cfg: &VideoVitConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_blocks_from(cfg, vb.clone(), vb.pp("blocks"))
    }

    /// Like `new`, with the transformer blocks taken from `blocks_vb` (XKD-MAS/MATS sharing).
    pub fn with_blocks_from(
        cfg: &VideoVitConfig,
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

    pub fn config(&self) -> &VideoVitConfig {
        &self.cfg
    }

    /// The token grid (time, height, width) of a clip [B, C, T, H, W], checking divisibility.
    pub fn grid_of(&self, x: &Tensor) -> Result<[usize; 3]> {
        let (_, c, t, h, w) = x.dims5()?;
        let [ph, pw] = self.cfg.patch_size;
        let pt = self.cfg.tubelet_size;
        if c != self.cfg.in_channels
            || t % pt != 0
            || h % ph != 0
            || w % pw != 0
            || t == 0
            || h == 0
            || w == 0
        {
            candle_core::bail!(
                "video input of shape [B, C, T, H, W] = {:?} does not fit the encoder: expected {} channels, T a multiple of {pt}, H a multiple of {ph}, W a multiple of {pw}",
                x.dims(),
                self.cfg.in_channels
            )
        }
        Ok([t / pt, h / ph, w / pw])
    }

    /// The positional embedding [1, 1 + N, D] for a token grid, resampled when it is not the native one.
    pub fn pos_embed_for(&self, grid: [usize; 3]) -> Result<Tensor> {
        let native = self.cfg.grid();
        if grid == native {
            return Ok(self.trunk.pos_embed.clone());
        }
        // XKD uses one spatial size S (= sqrt(N / Nt)) for both spatial axes.
        let s = native[1] as f64;
        let scale = [
            (grid[0] as f64 + 0.1) / native[0] as f64,
            (grid[1] as f64 + 0.1) / s,
            (grid[2] as f64 + 0.1) / s,
        ];
        let (pos, out) = resample_trilinear(
            &self.trunk.pos_embed,
            native,
            scale,
            self.cfg.pos_embed_axis_rule,
        )?;
        if out != grid {
            candle_core::bail!(
                "positional embedding resampled to grid {out:?}, the input needs {grid:?}"
            )
        }
        Ok(pos)
    }
}

impl XkdEncoder for VideoViT {
    fn patchify(&self, x: &Tensor) -> Result<Tensor> {
        let [nt, nh, nw] = self.grid_of(x)?;
        let (b, c, _, _, _) = x.dims5()?;
        let [ph, pw] = self.cfg.patch_size;
        let pt = self.cfg.tubelet_size;
        // b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)
        x.reshape(vec![b, c, nt, pt, nh, ph, nw, pw])?
            .permute(vec![0, 2, 4, 6, 3, 5, 7, 1])?
            .reshape((b, nt * nh * nw, pt * ph * pw * c))
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
