//! The pre-norm transformer block of XKD's `vit2.py` (the timm layout): x + attn(norm1(x)), then
//! x + mlp(norm2(x)); qkv optionally without bias, exact (erf) GELU, no layer scale.

use super::drop_path::{drop_path_schedule, DropPath};
use super::init::xavier_uniform;
use super::linear::Linear;
use super::norm::LayerNorm;
use super::rng::SeededRng;
use super::softmax::softmax_last_dim;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransformerConfig {
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub layer_norm_eps: f64,
    /// Highest stochastic-depth rate (reached by the last block); 0 disables it.
    pub drop_path_rate: f64,
}

impl TransformerConfig {
    /// XKD's blocks: MLP ratio 4, qkv without bias, LayerNorm eps 1e-5, no drop path.
    pub fn xkd(embed_dim: usize, depth: usize, num_heads: usize) -> Self {
        Self {
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            qkv_bias: false,
            layer_norm_eps: 1e-5,
            drop_path_rate: 0.0,
        }
    }

    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
}

const ZERO: Init = Init::Const(0.);

#[derive(Debug, Clone)]
pub struct Attention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    scale: f64,
}

impl Attention {
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.embed_dim;
        if !d.is_multiple_of(cfg.num_heads) {
            candle_core::bail!(
                "embed_dim {d} is not divisible by num_heads {}",
                cfg.num_heads
            )
        }
        let qkv = Linear::new(
            d,
            3 * d,
            cfg.qkv_bias,
            xavier_uniform(d, 3 * d),
            ZERO,
            vb.pp("qkv"),
        )?;
        let proj = Linear::new(d, d, true, xavier_uniform(d, d), ZERO, vb.pp("proj"))?;
        let scale = ((d / cfg.num_heads) as f64).powf(-0.5);
        Ok(Self {
            qkv,
            proj,
            num_heads: cfg.num_heads,
            scale,
        })
    }

    /// Returns the output and, when asked, the post-softmax attention [B, heads, N, N].
    pub fn forward(&self, x: &Tensor, want_attn: bool) -> Result<(Tensor, Option<Tensor>)> {
        let (b, n, c) = x.dims3()?;
        let h = self.num_heads;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, n, 3, h, c / h))?
            .permute((2, 0, 3, 1, 4))?;
        // Scaling q (N x hd) rather than the scores (N x N) is the same product and cheaper.
        let q = (qkv.get(0)? * self.scale)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let attn = softmax_last_dim(&super::matmul::matmul_nt(&q, &k)?)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        let out = self.proj.forward(&out)?;
        Ok((out, want_attn.then_some(attn)))
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let fc1 = Linear::new(
            dim,
            hidden,
            true,
            xavier_uniform(dim, hidden),
            ZERO,
            vb.pp("fc1"),
        )?;
        let fc2 = Linear::new(
            hidden,
            dim,
            true,
            xavier_uniform(hidden, dim),
            ZERO,
            vb.pp("fc2"),
        )?;
        Ok(Self { fc1, fc2 })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2
            .forward(&super::gelu::gelu_erf(&self.fc1.forward(x)?)?)
    }
}

#[derive(Debug, Clone)]
pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
    drop_path: DropPath,
}

impl Block {
    pub fn new(cfg: &TransformerConfig, drop_path: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::new(cfg.embed_dim, cfg.layer_norm_eps, vb.pp("norm1"))?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            norm2: LayerNorm::new(cfg.embed_dim, cfg.layer_norm_eps, vb.pp("norm2"))?,
            mlp: Mlp::new(cfg.embed_dim, cfg.mlp_hidden(), vb.pp("mlp"))?,
            drop_path: DropPath::new(drop_path),
        })
    }

    /// `rng` is `Some` in training mode (drop path active).
    pub fn forward(
        &self,
        x: &Tensor,
        want_attn: bool,
        mut rng: Option<&mut SeededRng>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (a, attn) = self.attn.forward(&self.norm1.forward(x)?, want_attn)?;
        let x = (x + self.drop_path.forward(&a, rng.as_deref_mut())?)?;
        let m = self.mlp.forward(&self.norm2.forward(&x)?)?;
        let x = (&x + self.drop_path.forward(&m, rng)?)?;
        Ok((x, attn))
    }
}

/// A stack of blocks (`blocks.{i}.*`), XKD's `ViT_Backbone`.
#[derive(Debug, Clone)]
pub struct Transformer {
    blocks: Vec<Block>,
}

impl Transformer {
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        let rates = drop_path_schedule(cfg.drop_path_rate, cfg.depth);
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(cfg, rates[i], vb.pp(i)))
            .collect::<Result<_>>()?;
        Ok(Self { blocks })
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Runs every block; returns the output and, when asked, the last block's attention map.
    pub fn forward(
        &self,
        x: &Tensor,
        want_last_attn: bool,
        mut rng: Option<&mut SeededRng>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut x = x.clone();
        let mut attn = None;
        let last = self.blocks.len().saturating_sub(1);
        for (i, block) in self.blocks.iter().enumerate() {
            let (y, a) = block.forward(&x, want_last_attn && i == last, rng.as_deref_mut())?;
            x = y;
            attn = a.or(attn);
        }
        Ok((x, attn))
    }
}
