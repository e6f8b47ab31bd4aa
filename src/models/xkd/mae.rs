//! XKD's MAE branch (`VideoMAEWrapper`/`AudioMAEWrapper`): random masking of the embedded tokens, the
//! student encoder on the visible ones, and a light decoder that predicts every patch. The encoder is
//! the student backbone itself (passed in), so reconstruction and distillation train the same weights.

use super::config::MaeDecoderConfig;
use super::encoder::XkdEncoder;
use crate::nn::init::{trunc_normal, xavier_uniform};
use crate::nn::linear::Linear;
use crate::nn::rng::SeededRng;
use crate::nn::vit::Transformer;
use crate::objectives::mae::masked_patch_loss;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Which tokens a sample keeps, in MAE's bookkeeping.
#[derive(Debug, Clone)]
pub struct Masking {
    /// Indices of the kept tokens, in shuffled order [B, len_keep] (u32).
    pub ids_keep: Tensor,
    /// Inverse permutation [B, L] (u32): position of each original token in the shuffled order.
    pub ids_restore: Tensor,
    /// [B, L], 1 = removed, 0 = kept, in original token order (f32).
    pub mask: Tensor,
}

/// Python's `round(L * (1 - ratio))` (round half to even), as the official `random_masking`.
pub fn len_keep(num_tokens: usize, mask_ratio: f64) -> usize {
    (num_tokens as f64 * (1.0 - mask_ratio)).round_ties_even() as usize
}

/// MAE masking from given noise [B, L]: the tokens with the smallest noise are kept.
pub fn masking_from_noise(noise: &Tensor, mask_ratio: f64) -> Result<Masking> {
    let (b, l) = noise.dims2()?;
    let keep = len_keep(l, mask_ratio);
    if keep == 0 || keep > l {
        candle_core::bail!("mask ratio {mask_ratio} keeps {keep} of {l} tokens")
    }
    let rows = noise.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let (mut ids_keep, mut ids_restore, mut mask) =
        (Vec::new(), vec![0u32; b * l], vec![1f32; b * l]);
    for (i, row) in rows.iter().enumerate() {
        let mut shuffle: Vec<usize> = (0..l).collect();
        shuffle.sort_by(|&a, &c| row[a].total_cmp(&row[c]));
        for (pos, &tok) in shuffle.iter().enumerate() {
            ids_restore[i * l + tok] = pos as u32;
            if pos < keep {
                mask[i * l + tok] = 0.0;
            }
        }
        ids_keep.extend(shuffle[..keep].iter().map(|&t| t as u32));
    }
    let dev = noise.device();
    Ok(Masking {
        ids_keep: Tensor::from_vec(ids_keep, (b, keep), dev)?,
        ids_restore: Tensor::from_vec(ids_restore, (b, l), dev)?,
        mask: Tensor::from_vec(mask, (b, l), dev)?,
    })
}

/// Draws uniform noise [B, L] from `rng` and masks with it; returns the noise too.
pub fn random_masking(
    rng: &mut SeededRng,
    b: usize,
    l: usize,
    mask_ratio: f64,
    dev: &Device,
) -> Result<(Tensor, Masking)> {
    let noise = rng.uniform((b, l), 0.0, 1.0, dev)?;
    let masking = masking_from_noise(&noise, mask_ratio)?;
    Ok((noise, masking))
}

/// Selects rows of `x` [B, N, D] along dim 1 with per-sample indices [B, K].
fn gather_tokens(x: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, _, d) = x.dims3()?;
    let k = ids.dim(1)?;
    x.contiguous()?
        .gather(&ids.unsqueeze(2)?.broadcast_as((b, k, d))?.contiguous()?, 1)
}

/// Everything the MAE branch produces for one batch.
#[derive(Debug, Clone)]
pub struct MaeOutput {
    /// Encoder output [B, 1 + len_keep, D]: CLS, then the visible tokens in `ids_keep` order.
    pub latent: Tensor,
    /// Predicted patches [B, L, patch_dim].
    pub pred: Tensor,
    /// Raw patch vectors [B, L, patch_dim].
    pub target: Tensor,
    pub loss: Tensor,
}

#[derive(Debug, Clone)]
pub struct MaeDecoder {
    mid_proj: Linear,
    mask_token: Tensor,
    dec_pos_embed: Tensor,
    blocks: Transformer,
    out_proj: Linear,
    cfg: MaeDecoderConfig,
}

impl MaeDecoder {
    /// Names as the official wrapper: `mid_proj`, `mask_token`, `dec_pos_embed`, `decoder.blocks.N`, `out_proj`.
    pub fn new(
        cfg: &MaeDecoderConfig,
        encoder_dim: usize,
        num_patches: usize,
        patch_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = cfg.transformer.embed_dim;
        let zero = Init::Const(0.);
        Ok(Self {
            mid_proj: Linear::new(
                encoder_dim,
                d,
                true,
                xavier_uniform(encoder_dim, d),
                zero,
                vb.pp("mid_proj"),
            )?,
            mask_token: vb.get_with_hints(
                (1, 1, d),
                "mask_token",
                Init::Randn {
                    mean: 0.,
                    stdev: 0.02,
                },
            )?,
            dec_pos_embed: vb.get_with_hints(
                (1, 1 + num_patches, d),
                "dec_pos_embed",
                trunc_normal(0.02),
            )?,
            blocks: Transformer::new(&cfg.transformer, vb.pp("decoder").pp("blocks"))?,
            out_proj: Linear::new(
                d,
                patch_dim,
                true,
                xavier_uniform(d, patch_dim),
                zero,
                vb.pp("out_proj"),
            )?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &MaeDecoderConfig {
        &self.cfg
    }

    /// The encoder on the visible tokens: pos-embed added before masking, CLS prepended after.
    pub fn forward_encoder<E: XkdEncoder + ?Sized>(
        &self,
        encoder: &E,
        x: &Tensor,
        masking: &Masking,
        rng: Option<&mut SeededRng>,
    ) -> Result<Tensor> {
        let (tokens, cls) = encoder.embed(x)?;
        let kept = gather_tokens(&tokens, &masking.ids_keep)?;
        Ok(encoder
            .encode(&Tensor::cat(&[&cls, &kept], 1)?, false, rng)?
            .0)
    }

    /// Predicts every patch [B, L, patch_dim] from the latent of the visible tokens.
    pub fn forward_decoder(
        &self,
        latent: &Tensor,
        masking: &Masking,
        rng: Option<&mut SeededRng>,
    ) -> Result<Tensor> {
        let x = self.mid_proj.forward(latent)?;
        let (b, n, d) = x.dims3()?;
        let l = masking.ids_restore.dim(1)?;
        if self.dec_pos_embed.dim(1)? != l + 1 {
            candle_core::bail!(
                "MAE decoder: {l} tokens, but its positional embedding is for {} (the MAE branch runs at the native input size only)",
                self.dec_pos_embed.dim(1)? - 1
            )
        }
        let mask_tokens = self.mask_token.broadcast_as((b, l + 1 - n, d))?;
        let shuffled = Tensor::cat(&[&x.narrow(1, 1, n - 1)?, &mask_tokens], 1)?;
        let unshuffled = gather_tokens(&shuffled, &masking.ids_restore)?;
        let x = Tensor::cat(&[&x.narrow(1, 0, 1)?, &unshuffled], 1)?
            .broadcast_add(&self.dec_pos_embed)?;
        let (x, _) = self.blocks.forward(&x, false, rng)?;
        self.out_proj.forward(&x)?.narrow(1, 1, l)
    }

    /// The whole branch: masked encoding, decoding and the reconstruction loss.
    pub fn forward<E: XkdEncoder + ?Sized>(
        &self,
        encoder: &E,
        x: &Tensor,
        masking: &Masking,
        mut rng: Option<&mut SeededRng>,
    ) -> Result<MaeOutput> {
        let latent = self.forward_encoder(encoder, x, masking, rng.as_deref_mut())?;
        let pred = self.forward_decoder(&latent, masking, rng)?;
        let target = encoder.patchify(x)?;
        let loss = masked_patch_loss(&pred, &target, &masking.mask, self.cfg.norm_pix_loss)?;
        Ok(MaeOutput {
            latent,
            pred,
            target,
            loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn len_keep_rounds_half_to_even() {
        assert_eq!(len_keep(392, 0.85), 59);
        assert_eq!(len_keep(560, 0.8), 112);
        assert_eq!(len_keep(18, 0.85), 3);
        assert_eq!(len_keep(10, 0.75), 2); // 2.5 -> 2
    }

    #[test]
    fn masking_is_consistent() -> Result<()> {
        let noise = Tensor::new(&[[0.9f32, 0.1, 0.5, 0.3]], &Device::Cpu)?;
        let m = masking_from_noise(&noise, 0.5)?;
        assert_eq!(m.ids_keep.to_vec2::<u32>()?, vec![vec![1, 3]]);
        assert_eq!(m.ids_restore.to_vec2::<u32>()?, vec![vec![3, 0, 2, 1]]);
        assert_eq!(m.mask.to_vec2::<f32>()?, vec![vec![1., 0., 1., 0.]]);
        Ok(())
    }
}
