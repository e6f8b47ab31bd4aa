//! The `README.md` model card of an avkd model folder (the Hub's model-card convention: YAML front
//! matter, then what the model is, where it came from, and how to use it).

use crate::models::config::{InputKind, PreprocessorConfig, SavedConfig};

/// Where the weights came from.
pub struct CardSource {
    /// The file converted (or exported from).
    pub file: String,
    /// Its sha256, when it is an official checkpoint.
    pub sha256: String,
    pub parameters: usize,
    pub tensors: usize,
    /// Tensors initialised fresh because the source lacked them.
    pub initialised: Vec<String>,
}

fn describe(model_type: &str) -> &'static str {
    match model_type {
        "xkd-video" => "XKD video ViT backbone (Sarkar & Etemad, AAAI 2024)",
        "xkd-audio" => "XKD audio ViT backbone (Sarkar & Etemad, AAAI 2024)",
        "xkd-video-classifier" => "XKD video ViT fine-tuned as a classifier",
        "xkd" | "xkd-mas" | "xkd-mats" => {
            "a full XKD pretraining net (students, EMA teachers, MAE decoders, DINO heads)"
        }
        "ccl-r2plus1d" => "CCL R(2+1)D video student (Chen et al., CVPR 2021)",
        "ccl-composition" => "CCL compositional embedding head",
        "resnet" => "torchvision ResNet (CCL's image teacher)",
        "panns-cnn14" => "PANNs Cnn14_emb512 (CCL's audio teacher)",
        _ => "an avkd model",
    }
}

fn input_line(pre: &PreprocessorConfig) -> String {
    match pre.input {
        InputKind::Clip => format!(
            "a clip `[B, 3, {}, {}, {}]`, RGB in [0, 1] normalised with mean {:?} and std {:?}",
            pre.num_frames.map_or("T".into(), |t| t.to_string()),
            pre.crop_size.map_or("H".into(), |s| s.to_string()),
            pre.crop_size.map_or("W".into(), |s| s.to_string()),
            pre.mean.unwrap_or_default(),
            pre.std.unwrap_or_default()
        ),
        InputKind::Spectrogram => format!(
            "a log-mel spectrogram `[B, 1, {}, T]` ({} Hz, STFT {}/{}, ln, standardised with {:?}/{:?})",
            pre.n_mels.unwrap_or_default(),
            pre.sample_rate.unwrap_or_default(),
            pre.n_fft.unwrap_or_default(),
            pre.hop_length.unwrap_or_default(),
            pre.spec_mean.unwrap_or_default(),
            pre.spec_std.unwrap_or_default()
        ),
        InputKind::Waveform => format!(
            "a mono waveform `[B, N]` at {} Hz",
            pre.sample_rate.unwrap_or_default()
        ),
        InputKind::Image => "images `[B, 3, H, W]`, normalised".to_string(),
        InputKind::EmbeddingPair => "`teacher` `[N, D]` and `video` `[N, D]` embeddings".into(),
    }
}

pub fn model_card(cfg: &SavedConfig, pre: &PreprocessorConfig, src: &CardSource) -> String {
    let kind = cfg.model.model_type();
    let mut card = format!(
        "---\nlibrary_name: avkd\ntags:\n- video\n- audio-visual\n- {kind}\n---\n\n# {kind}\n\n\
         This folder holds {} as an avkd model: `config.json` (architecture, `model_type`), \
         `model.safetensors` ({} tensors, {} elements), `preprocessor_config.json` and this card.\n\n",
        describe(kind),
        src.tensors,
        src.parameters
    );
    card += &format!(
        "## Source\n\n- file: `{}`\n- sha256: `{}`\n- converted by avkd {}; names mapped to avkd's, \
         every key and shape checked against the architecture.\n",
        src.file,
        if src.sha256.is_empty() { "unknown" } else { &src.sha256 },
        env!("CARGO_PKG_VERSION")
    );
    if !src.initialised.is_empty() {
        card += &format!(
            "- not in the source, initialised fresh: {}\n",
            src.initialised.join(", ")
        );
    }
    card += &format!(
        "\n## Input\n\n{}.\n\n## Use\n\n```bash\navkd embed --model <this folder> --input in.safetensors --output out.safetensors\n\
         avkd verify <this folder> reference.safetensors   # compare with reference outputs\n\
         avkd export <this folder> -o out --layout official # the official PyTorch names\n```\n",
        input_line(pre)
    );
    card
}
