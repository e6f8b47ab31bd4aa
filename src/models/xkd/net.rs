//! The whole XKD pretraining network (`XKD_Net`) and its modality-agnostic variants.
//!
//! Video and audio students (each also the encoder of its modality's MAE branch), EMA teachers that
//! receive no gradient, one DINO head per network, and the objective
//! (L_da + L_kd + 5 L_recon) / 7 with the official view routing: the MAE sees the global view, the
//! teachers see the FIRST LOCAL view (`frames[global_views_number]` with one global view — the
//! official code's comment says "global", its indexing picks the local one), the students see the
//! masked global view (through the MAE latent) and every local view unmasked.
//!
//! XKD-MAS shares one set of transformer blocks between the two students, XKD-MATS also between the
//! two teachers. Sharing is real parameter sharing: both encoders are built from the same names in the
//! parameter store (`shared_student_blocks.*`, `shared_teacher_blocks.*`), so they hold the same `Var`s.

use super::audio::AudioViT;
use super::encoder::pool_patch_tokens;
use super::head::DinoHead;
use super::mae::{random_masking, MaeDecoder, Masking};
pub use super::net_config::{XkdConfig, XkdObjectiveConfig, XkdVariant};
use super::refine::refine;
use super::video::VideoViT;
use crate::models::xkd::encoder::XkdEncoder;
use crate::nn::ema::ema_update;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::objectives::dino::DinoLoss;
use crate::objectives::mmd::mmd;
use candle_core::{Module, Result, Tensor, Var};

/// The loss terms, named as the official `all_loss` dict.
#[derive(Debug, Clone)]
pub struct XkdLosses {
    pub vid_recon: Tensor,
    pub aud_recon: Tensor,
    pub recon: Tensor,
    pub as2vs_align: Tensor,
    /// Teacher-side MMD: computed without gradient, it only changes the logged value.
    pub vt2at_align: Tensor,
    pub alignment: Tensor,
    pub vt2as_kd: Tensor,
    pub at2vs_kd: Tensor,
    pub cmkd: Tensor,
    pub loss: Tensor,
}

impl XkdLosses {
    /// (name, value) pairs for logging, official names.
    pub fn scalars(&self) -> Result<Vec<(&'static str, f32)>> {
        [
            ("vid_recon_loss", &self.vid_recon),
            ("aud_recon_loss", &self.aud_recon),
            ("recon_loss", &self.recon),
            ("as2vs_align_loss", &self.as2vs_align),
            ("vt2at_align_loss", &self.vt2at_align),
            ("alignment_loss", &self.alignment),
            ("vt2as_kd_loss", &self.vt2as_kd),
            ("at2vs_kd_loss", &self.at2vs_kd),
            ("cmkd_loss", &self.cmkd),
            ("loss", &self.loss),
        ]
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_scalar::<f32>()?)))
        .collect()
    }
}

pub struct XkdNet {
    cfg: XkdConfig,
    store: ParamStore,
    vid_student: VideoViT,
    vid_student_head: DinoHead,
    vid_teacher: VideoViT,
    vid_teacher_head: DinoHead,
    aud_student: AudioViT,
    aud_student_head: DinoHead,
    aud_teacher: AudioViT,
    aud_teacher_head: DinoHead,
    vid_ae: MaeDecoder,
    aud_ae: MaeDecoder,
    vt2as: DinoLoss,
    at2vs: DinoLoss,
    /// Every teacher parameter with the student parameter it follows, resolved once.
    ema_pairs: Vec<EmaPair>,
}

/// Which momentum moves a teacher parameter.
#[derive(Debug, Clone, Copy)]
enum EmaFollows {
    Video,
    Audio,
    /// XKD-MATS's shared teacher blocks: both, video first.
    Both,
}

#[derive(Debug, Clone)]
struct EmaPair {
    teacher: Var,
    student: Var,
    follows: EmaFollows,
}

/// Prefix of the blocks of one encoder in the parameter store.
fn blocks_prefix(encoder: &str, shared: bool, role: &str) -> String {
    if shared {
        format!("shared_{role}_blocks")
    } else {
        format!("{encoder}.backbone.blocks")
    }
}

impl XkdNet {
    /// Builds the net in `store`. Names already in the store (a loaded checkpoint) keep their values;
    /// when the store holds no teacher yet, the teachers start as copies of the students, as the
    /// official `init_teacher_student_same_weights`.
    pub fn new(cfg: &XkdConfig, store: &ParamStore) -> Result<Self> {
        if cfg.head.in_dim != cfg.video.transformer.embed_dim
            || cfg.head.in_dim != cfg.audio.transformer.embed_dim
        {
            candle_core::bail!(
                "the DINO heads take {}-d features, the encoders give {} (video) and {} (audio)",
                cfg.head.in_dim,
                cfg.video.transformer.embed_dim,
                cfg.audio.transformer.embed_dim
            )
        }
        if cfg.variant.shares_student_blocks() && cfg.video.transformer != cfg.audio.transformer {
            candle_core::bail!("XKD-MAS/MATS share blocks, so the video and audio transformers must have the same configuration")
        }
        let vb = store.builder();
        let teachers_loaded = store.get("vid_teacher.backbone.cls_token").is_some();
        let video = |name: &str, role: &str, shared: bool| {
            VideoViT::with_blocks_from(
                &cfg.video,
                vb.pp(name).pp("backbone"),
                vb.pp(blocks_prefix(name, shared, role)),
            )
        };
        let audio = |name: &str, role: &str, shared: bool| {
            AudioViT::with_blocks_from(
                &cfg.audio,
                vb.pp(name).pp("backbone"),
                vb.pp(blocks_prefix(name, shared, role)),
            )
        };
        let (ss, ts) = (
            cfg.variant.shares_student_blocks(),
            cfg.variant.shares_teacher_blocks(),
        );
        let head = |name: &str| DinoHead::new(&cfg.head, vb.pp(name).pp("head"));
        let dev = store.device();
        let m = cfg.objective.center_momentum;
        let mut net = Self {
            vid_student: video("vid_student", "student", ss)?,
            vid_student_head: head("vid_student")?,
            vid_teacher: video("vid_teacher", "teacher", ts)?,
            vid_teacher_head: head("vid_teacher")?,
            aud_student: audio("aud_student", "student", ss)?,
            aud_student_head: head("aud_student")?,
            aud_teacher: audio("aud_teacher", "teacher", ts)?,
            aud_teacher_head: head("aud_teacher")?,
            vid_ae: MaeDecoder::new(
                &cfg.video_decoder,
                cfg.video.transformer.embed_dim,
                cfg.video.num_patches(),
                cfg.video.patch_dim(),
                vb.pp("vid_ae"),
            )?,
            aud_ae: MaeDecoder::new(
                &cfg.audio_decoder,
                cfg.audio.transformer.embed_dim,
                cfg.audio.num_patches(),
                cfg.audio.patch_dim(),
                vb.pp("aud_ae"),
            )?,
            vt2as: DinoLoss::new(cfg.head.out_dim, m, dev)?,
            at2vs: DinoLoss::new(cfg.head.out_dim, m, dev)?,
            ema_pairs: Vec::new(),
            cfg: cfg.clone(),
            store: store.clone(),
        };
        net.ema_pairs = net.resolve_ema_pairs()?;
        if !teachers_loaded {
            net.ema_update(0.0)?;
        }
        Ok(net)
    }

    pub fn config(&self) -> &XkdConfig {
        &self.cfg
    }

    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    pub fn video_student(&self) -> &VideoViT {
        &self.vid_student
    }

    pub fn audio_student(&self) -> &AudioViT {
        &self.aud_student
    }

    pub fn video_teacher(&self) -> &VideoViT {
        &self.vid_teacher
    }

    pub fn audio_teacher(&self) -> &AudioViT {
        &self.aud_teacher
    }

    /// The DINO centres (video-teacher -> audio-student, audio-teacher -> video-student).
    pub fn centers(&self) -> (&Tensor, &Tensor) {
        (self.vt2as.center(), self.at2vs.center())
    }

    pub fn set_centers(&mut self, vt2as: Tensor, at2vs: Tensor) -> Result<()> {
        self.vt2as.set_center(vt2as)?;
        self.at2vs.set_center(at2vs)
    }

    fn is_teacher(name: &str) -> bool {
        name.starts_with("vid_teacher.")
            || name.starts_with("aud_teacher.")
            || name.starts_with("shared_teacher_blocks.")
    }

    /// The parameters the optimiser updates: students, their heads and the MAE decoders. The teachers
    /// and the frozen `weight_g` of every head's last layer are left out.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.store
            .named_vars()
            .into_iter()
            .filter(|(n, _)| !Self::is_teacher(n) && !n.ends_with("last_layer.weight_g"))
            .collect()
    }

    /// The student parameter a teacher parameter follows.
    fn student_name(&self, teacher: &str) -> Option<String> {
        let (encoder, rest) = if let Some(rest) = teacher.strip_prefix("shared_teacher_blocks.") {
            return Some(format!("shared_student_blocks.{rest}"));
        } else if let Some(rest) = teacher.strip_prefix("vid_teacher.") {
            ("vid_student", rest)
        } else if let Some(rest) = teacher.strip_prefix("aud_teacher.") {
            ("aud_student", rest)
        } else {
            return None;
        };
        match rest.strip_prefix("backbone.blocks.") {
            Some(block) if self.cfg.variant.shares_student_blocks() => {
                Some(format!("shared_student_blocks.{block}"))
            }
            _ => Some(format!("{encoder}.{rest}")),
        }
    }

    /// θ_teacher ← m·θ_teacher + (1 − m)·θ_student for every teacher parameter, heads included,
    /// with one momentum for both modalities.
    pub fn ema_update(&self, momentum: f64) -> Result<()> {
        self.ema_update_modal(momentum, momentum)
    }

    /// The official `update_teacher(vm, am)`: the video teacher follows the video student with
    /// momentum `video`, the audio teacher the audio student with `audio` (their schedules may
    /// differ). In XKD-MATS the official loop updates the shared teacher blocks in both loops, video
    /// first, so they move twice per step (m² for equal momenta); this reproduces that.
    pub fn ema_update_modal(&self, video: f64, audio: f64) -> Result<()> {
        for pair in &self.ema_pairs {
            let momenta: &[f64] = match pair.follows {
                EmaFollows::Video => &[video],
                EmaFollows::Audio => &[audio],
                EmaFollows::Both => &[video, audio],
            };
            for &m in momenta {
                ema_update(
                    std::slice::from_ref(&pair.teacher),
                    &[pair.student.as_tensor().clone()],
                    m,
                )?;
            }
        }
        Ok(())
    }

    /// Pairs every teacher parameter with the student parameter it follows.
    fn resolve_ema_pairs(&self) -> Result<Vec<EmaPair>> {
        let vars = self.store.named_vars();
        let by_name: std::collections::HashMap<_, _> = vars.iter().cloned().collect();
        let mut pairs = Vec::new();
        for (name, teacher) in vars.iter().filter(|(n, _)| Self::is_teacher(n)) {
            let student_name = self.student_name(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("no student for teacher parameter `{name}`"))
            })?;
            let student = by_name.get(&student_name).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "teacher parameter `{name}` follows `{student_name}`, which does not exist"
                ))
            })?;
            let follows = if name.starts_with("shared_teacher_blocks.") {
                EmaFollows::Both
            } else if name.starts_with("vid_teacher.") {
                EmaFollows::Video
            } else {
                EmaFollows::Audio
            };
            pairs.push(EmaPair {
                teacher: teacher.clone(),
                student: student.clone(),
                follows,
            });
        }
        Ok(pairs)
    }

    /// Sets the teacher temperatures (XKD-MAS/MATS warm them up epoch by epoch).
    pub fn set_teacher_temperatures(&mut self, video: f64, audio: f64) {
        self.cfg.objective.teacher_temp_video = video;
        self.cfg.objective.teacher_temp_audio = audio;
    }

    /// The training forward with masking noise drawn from `rng` (video first, then audio, as the
    /// official code draws it).
    pub fn forward_rng(
        &mut self,
        frames: &[Tensor],
        specs: &[Tensor],
        rng: &mut SeededRng,
    ) -> Result<XkdLosses> {
        let dev = frames
            .first()
            .map(|t| t.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let b = frames.first().map(|t| t.dim(0)).transpose()?.unwrap_or(0);
        let (_, vmask) = random_masking(
            rng,
            b,
            self.cfg.video.num_patches(),
            self.cfg.video_decoder.mask_ratio,
            &dev,
        )?;
        let (_, amask) = random_masking(
            rng,
            b,
            self.cfg.audio.num_patches(),
            self.cfg.audio_decoder.mask_ratio,
            &dev,
        )?;
        self.forward(frames, specs, &vmask, &amask, Some(rng))
    }

    /// The training forward: `frames` = [global, local_1, ...] clips, `specs` likewise spectrograms.
    /// Updates the DINO centres. `rng` drives drop path (when configured).
    pub fn forward(
        &mut self,
        frames: &[Tensor],
        specs: &[Tensor],
        vid_masking: &Masking,
        aud_masking: &Masking,
        mut rng: Option<&mut SeededRng>,
    ) -> Result<XkdLosses> {
        if frames.len() < 2 || frames.len() != specs.len() {
            candle_core::bail!("XKD needs a global and at least one local view of each modality, got {} video and {} audio views", frames.len(), specs.len())
        }
        let obj = self.cfg.objective.clone();
        // 1. Reconstruction: the MAE branches on the global views.
        let vid_ae = self.vid_ae.forward(
            &self.vid_student,
            &frames[0],
            vid_masking,
            rng.as_deref_mut(),
        )?;
        let aud_ae = self.aud_ae.forward(
            &self.aud_student,
            &specs[0],
            aud_masking,
            rng.as_deref_mut(),
        )?;
        let recon = ((&vid_ae.loss + &aud_ae.loss)? / 2.0)?;

        // 2-3. Teachers on the first local view, without gradient; refine with the other modality's attention.
        let (vtok, vattn) = self.vid_teacher.forward_with_attn(&frames[1])?;
        let (atok, aattn) = self.aud_teacher.forward_with_attn(&specs[1])?;
        let cls_to_patches = |attn: &Tensor| -> Result<Tensor> {
            let n = attn.dim(3)?;
            attn.narrow(2, 0, 1)?
                .squeeze(2)?
                .narrow(2, 1, n - 1)?
                .detach()
                .contiguous()
        };
        let patches = |tok: &Tensor| -> Result<Tensor> {
            tok.narrow(1, 1, tok.dim(1)? - 1)?.detach().contiguous()
        };
        let (vfeat, afeat) = refine(
            &cls_to_patches(&vattn)?,
            &cls_to_patches(&aattn)?,
            &patches(&vtok)?,
            &patches(&atok)?,
            obj.cross_modal_attn,
        )?;
        let vid_teacher_out = self.vid_teacher_head.forward(&vfeat)?.detach();
        let aud_teacher_out = self.aud_teacher_head.forward(&afeat)?.detach();

        // 4. Students: the visible tokens of the masked global view, then every local view unmasked.
        let mut vid_student_out = vec![self
            .vid_student_head
            .forward(&pool_patch_tokens(&vid_ae.latent)?)?];
        let mut aud_student_out = vec![self
            .aud_student_head
            .forward(&pool_patch_tokens(&aud_ae.latent)?)?];
        for (v, a) in frames[1..].iter().zip(&specs[1..]) {
            let vt = match rng.as_deref_mut() {
                Some(r) => self.vid_student.forward_train(v, r)?,
                None => self.vid_student.forward(v)?,
            };
            let at = match rng.as_deref_mut() {
                Some(r) => self.aud_student.forward_train(a, r)?,
                None => self.aud_student.forward(a)?,
            };
            vid_student_out.push(self.vid_student_head.forward(&pool_patch_tokens(&vt)?)?);
            aud_student_out.push(self.aud_student_head.forward(&pool_patch_tokens(&at)?)?);
        }
        let vid_student_out = Tensor::cat(&vid_student_out, 0)?;
        let aud_student_out = Tensor::cat(&aud_student_out, 0)?;
        let views = frames.len();

        // 5. Domain alignment on the head outputs; the teacher term has no gradient.
        let as2vs_align = mmd(&vid_student_out, &aud_student_out)?;
        let vt2at_align = mmd(&vid_teacher_out, &aud_teacher_out)?.detach();
        let alignment = ((&as2vs_align + &vt2at_align)? / 2.0)?;

        // 6. Cross-modal distillation. As in the official forward, both students are scored with
        // the AUDIO student temperature (both are 0.1 in every released config).
        let vt2as_kd = self.vt2as.forward(
            &aud_student_out,
            &vid_teacher_out,
            obj.student_temp_audio,
            obj.teacher_temp_video,
            views,
            1,
        )?;
        let at2vs_kd = self.at2vs.forward(
            &vid_student_out,
            &aud_teacher_out,
            obj.student_temp_audio,
            obj.teacher_temp_audio,
            views,
            1,
        )?;
        let cmkd = ((&vt2as_kd + &at2vs_kd)? / 2.0)?;

        // 7. Total.
        let total = obj.align_coeff + obj.kd_coeff + obj.recon_coeff;
        let loss = (((&alignment * obj.align_coeff)? + (&cmkd * obj.kd_coeff)?)?
            + (&recon * obj.recon_coeff)?)?;
        let loss = (loss / total)?;
        Ok(XkdLosses {
            vid_recon: vid_ae.loss,
            aud_recon: aud_ae.loss,
            recon,
            as2vs_align,
            vt2at_align,
            alignment,
            vt2as_kd,
            at2vs_kd,
            cmkd,
            loss,
        })
    }
}
