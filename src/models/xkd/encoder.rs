//! What the video and audio encoders share: the CLS token, the learned positional embedding, the
//! transformer blocks and the final norm (XKD's `VideoViT`/`AudioViT` minus their tokenisers).

use crate::nn::init::{trunc_normal, xavier_uniform};
use crate::nn::linear::Linear;
use crate::nn::norm::LayerNorm;
use crate::nn::rng::SeededRng;
use crate::nn::vit::{Transformer, TransformerConfig};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// An XKD encoder seen from the MAE branch and the distillation losses: a tokeniser (`patchify` +
/// `embed`) followed by a transformer (`encode`).
pub trait XkdEncoder {
    /// The raw patch vectors [B, N, patch_dim] in token order (the MAE reconstruction target).
    fn patchify(&self, x: &Tensor) -> Result<Tensor>;
    /// (patch tokens + positional embedding [B, N, D], CLS token + its positional embedding [B, 1, D]).
    fn embed(&self, x: &Tensor) -> Result<(Tensor, Tensor)>;
    /// The blocks and final norm on [B, 1 + n, D]; optionally the last block's attention.
    fn encode(
        &self,
        tokens: &Tensor,
        want_attn: bool,
        rng: Option<&mut SeededRng>,
    ) -> Result<(Tensor, Option<Tensor>)>;
    fn embed_dim(&self) -> usize;

    /// All tokens after the final norm [B, 1 + N, D] (evaluation mode).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(forward_encoder(self, x, false, None)?.0)
    }

    /// Tokens and the last block's post-softmax attention [B, heads, 1 + N, 1 + N].
    fn forward_with_attn(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        match forward_encoder(self, x, true, None)? {
            (tokens, Some(attn)) => Ok((tokens, attn)),
            (_, None) => candle_core::bail!("the encoder has no blocks, so no attention map"),
        }
    }

    /// Training-mode forward (drop path drawn from `rng`).
    fn forward_train(&self, x: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        Ok(forward_encoder(self, x, false, Some(rng))?.0)
    }

    /// The pooled feature [B, D]: mean of the patch tokens after the final norm, CLS excluded.
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        pool_patch_tokens(&self.forward(x)?)
    }
}

#[derive(Debug, Clone)]
pub struct EncoderTrunk {
    /// The tokeniser's projection (`patch_embed.proj`): flattened patch -> embedding.
    pub(crate) patch_embed: Linear,
    pub(crate) cls_token: Tensor,
    pub(crate) pos_embed: Tensor,
    pub(crate) blocks: Transformer,
    pub(crate) norm: LayerNorm,
}

impl EncoderTrunk {
    /// Builds `patch_embed.proj` (patch_dim -> D), `cls_token`, `pos_embed` [1, 1 + num_patches, D]
    /// and `norm` under `vb`; the blocks come from `blocks_vb` (the same builder for a plain encoder,
    /// a shared prefix for XKD-MAS/MATS).
    pub fn new(
        cfg: &TransformerConfig,
        num_patches: usize,
        patch_dim: usize,
        vb: VarBuilder,
        blocks_vb: VarBuilder,
    ) -> Result<Self> {
        let d = cfg.embed_dim;
        let proj = vb.pp("patch_embed").pp("proj");
        Ok(Self {
            patch_embed: Linear::new(
                patch_dim,
                d,
                true,
                xavier_uniform(patch_dim, d),
                candle_nn::Init::Const(0.),
                proj,
            )?,
            cls_token: vb.get_with_hints(
                (1, 1, d),
                "cls_token",
                candle_nn::Init::Randn {
                    mean: 0.,
                    stdev: 0.02,
                },
            )?,
            pos_embed: vb.get_with_hints(
                (1, 1 + num_patches, d),
                "pos_embed",
                trunc_normal(0.02),
            )?,
            blocks: Transformer::new(cfg, blocks_vb)?,
            norm: LayerNorm::new(d, cfg.layer_norm_eps, vb.pp("norm"))?,
        })
    }

    /// Adds the positional embedding `pos` [1, 1 + N, D] to patch tokens [B, N, D] and to the CLS token.
    pub fn add_pos(&self, patches: &Tensor, pos: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, n, d) = patches.dims3()?;
        let tokens = patches.broadcast_add(&pos.narrow(1, 1, n)?)?;
        let cls = self
            .cls_token
            .add(&pos.narrow(1, 0, 1)?)?
            .broadcast_as((b, 1, d))?;
        Ok((tokens, cls))
    }

    pub fn encode(
        &self,
        tokens: &Tensor,
        want_attn: bool,
        rng: Option<&mut SeededRng>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (x, attn) = self.blocks.forward(tokens, want_attn, rng)?;
        Ok((self.norm.forward(&x)?, attn))
    }
}

/// The downstream feature: mean of the patch tokens after the final norm, CLS excluded.
pub fn pool_patch_tokens(tokens: &Tensor) -> Result<Tensor> {
    let n = tokens.dim(1)?;
    tokens.narrow(1, 1, n - 1)?.mean(D::Minus2)
}

/// Runs an encoder on a whole input: tokens [B, 1 + N, D] after the final norm, and optionally the
/// last block's attention [B, heads, 1 + N, 1 + N].
pub fn forward_encoder<E: XkdEncoder + ?Sized>(
    enc: &E,
    x: &Tensor,
    want_attn: bool,
    rng: Option<&mut SeededRng>,
) -> Result<(Tensor, Option<Tensor>)> {
    let (tokens, cls) = enc.embed(x)?;
    enc.encode(&Tensor::cat(&[&cls, &tokens], 1)?, want_attn, rng)
}
