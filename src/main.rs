//! The `avkd` command line: parses arguments and dispatches to the handlers in `cli/`.

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Candle allocates a fresh buffer for every op's output. The system allocator (and mimalloc with its
/// defaults) hands large freed buffers back to the OS, so every big tensor paid its page faults anew:
/// a ViT-B training step ran 30-40 % slower and varied by as much. mimalloc with purging disabled
/// keeps freed memory for reuse, like PyTorch's caching allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (index 15 in mimalloc v2 and v3): -1 = never return freed memory to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[derive(Parser)]
#[command(
    name = "avkd",
    version,
    about = "Audio-visual video representation learning (XKD, CCL) on Candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole job on a built-in default, offline: synthesise a small action dataset, obtain a
    /// student (download XKD's when the Hub answers, else pre-train a small one with the XKD
    /// objective), fine-tune it, evaluate it video-level, export it, and check the reloaded export.
    Quickstart(cli::quickstart::QuickstartArgs),
    /// What a checkpoint holds: tensors (names, dtypes, shapes), parameter count, metadata and the
    /// scalar entries of PyTorch checkpoints. For .pth/.pth.tar (zip or legacy), .safetensors and
    /// avkd model folders; no tensor data is loaded.
    Inspect(cli::checkpoint::InspectArgs),
    /// Convert an official PyTorch checkpoint (or an official-layout safetensors file) into an avkd
    /// model folder: config.json, model.safetensors, preprocessor_config.json, README.md.
    Convert(cli::checkpoint::ConvertArgs),
    /// Run a model folder on a reference file's inputs and compare with its outputs; exits non-zero
    /// past the tolerance.
    Verify(cli::checkpoint::VerifyArgs),
    /// Run a model on the tensor `input` of a safetensors file (a clip [B,C,T,H,W], a spectrogram
    /// [B,1,F,T], a waveform [B,N]) and write `tokens`, `features` and `logits`.
    Embed(cli::checkpoint::EmbedArgs),
    /// Export a model as safetensors: an avkd folder, or the official PyTorch names.
    Export(cli::checkpoint::ExportArgs),
    /// Write a small synthetic action dataset in UCF101's layout: split lists for three folds, and per
    /// video a folder of JPEG frames (class-dependent motion) and a WAV (class-dependent tone), or
    /// with --avi (feature `ffmpeg`) an .avi file.
    Synth(cli::synth::SynthArgs),
    /// The model zoo: every registered model, where its weights come from and the paper's numbers.
    Zoo {
        #[command(subcommand)]
        what: cli::zoo::ZooWhat,
    },
    /// Download a model repository from the Hugging Face Hub into the shared cache (the one
    /// Python's huggingface_hub uses) and print the snapshot folder, or with --file the path of
    /// each file. Honours HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE.
    #[cfg(feature = "hub")]
    Download(cli::hub::DownloadArgs),
    /// Fine-tune a student on UCF101, HMDB51, UCF51 or a list, fold by fold, the paper's way (XKD:
    /// AdamW with layer-wise lr decay, warmup + cosine, mixup/cutmix, label smoothing; CCL: SGD with
    /// step decay), evaluating video-level every few epochs; writes last/ and best/ checkpoints,
    /// metrics.jsonl, curves.svg and eval_report.json.
    Finetune(cli::jobs::FinetuneArgs),
    /// Pre-train XKD, XKD-MAS or XKD-MATS on an audio-visual dataset with the official objective,
    /// schedules and views (checkpoints, resume, metrics, curves; the four backbones exported under
    /// OUT/export/), or --replay recorded official steps and compare them tensor by tensor.
    Pretrain(cli::pretrain::PretrainArgs),
    /// Video-level evaluation of a fine-tuned classifier (every view, softmax averaged): top-1,
    /// top-5 and mean-class accuracy per fold, mean ± std over folds.
    Eval(cli::jobs::EvalArgs),
    /// Linear evaluation of frozen features: a trained linear head, or --svm (the papers' protocol).
    Linear(cli::jobs::LinearArgs),
    /// The top-k classes of one video.
    Predict(cli::jobs::PredictArgs),
    /// Features of any model over every video of a dataset's splits (e.g. PANNs Cnn14 on the
    /// audio tracks: CCL's audio teacher), as safetensors shards with an index.json; resumable,
    /// parallel, the segmenting recorded in the index.
    Extract(cli::extract::ExtractArgs),
    /// Distil an R(2+1)D video student with CCL (CCL-A: audio teacher, CCL-I: image teacher,
    /// CCL-AI: both) on a labelled dataset, the official way: compositional heads, the
    /// class-level contrastive and symmetric-KL losses with their gradient routing, three SGD
    /// optimisers, video-level evaluation every few epochs; writes OUT/student/ (a model folder),
    /// the heads, checkpoints, metrics.jsonl, curves.svg and eval_report.json.
    Distill(cli::distill::DistillArgs),
    /// Time hot paths (for side-by-side runs with PyTorch: scripts/bench_vs_torch.py).
    Bench {
        #[command(subcommand)]
        what: cli::bench::BenchWhat,
    },
}

fn main() -> Result<()> {
    keep_freed_memory();
    avkd::util::logging::init_logging();
    match Cli::parse().command {
        Command::Quickstart(args) => cli::quickstart::run(args),
        Command::Finetune(args) => cli::jobs::finetune(args),
        Command::Pretrain(args) => cli::pretrain::run(args),
        Command::Eval(args) => cli::jobs::eval(args),
        Command::Linear(args) => cli::jobs::linear(args),
        Command::Predict(args) => cli::jobs::predict(args),
        Command::Extract(args) => cli::extract::run(args),
        Command::Distill(args) => cli::distill::run(args),
        Command::Inspect(args) => cli::checkpoint::inspect(args),
        Command::Convert(args) => cli::checkpoint::convert(args),
        Command::Verify(args) => cli::checkpoint::verify(args),
        Command::Embed(args) => cli::checkpoint::embed(args),
        Command::Export(args) => cli::checkpoint::export(args),
        Command::Synth(args) => cli::synth::run(args),
        Command::Zoo { what } => cli::zoo::run(what),
        #[cfg(feature = "hub")]
        Command::Download(args) => cli::hub::download(args),
        Command::Bench { what } => cli::bench::run(what),
    }
}
