//! The `avkd` command line: parses arguments and calls the library.

mod cli;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    Inspect {
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Convert an official PyTorch checkpoint (or an official-layout safetensors file) into an avkd
    /// model folder: config.json, model.safetensors, preprocessor_config.json, README.md.
    Convert {
        src: PathBuf,
        #[arg(short, long)]
        out: PathBuf,
        /// The model type, when it should not be recognised from the keys.
        #[arg(long)]
        kind: Option<String>,
        /// Full XKD nets: extract the student or teacher backbone (with --modality).
        #[arg(long, value_enum)]
        pick: Option<PickArg>,
        #[arg(long, value_enum)]
        modality: Option<ModalityArg>,
        /// Dotted key of the state dict inside the checkpoint (e.g. `model`, `state_dict`).
        #[arg(long)]
        key: Option<String>,
        /// Architecture fields to override, as a JSON object or a JSON file
        /// (e.g. '{"transformer": {"num_heads": 3}}').
        #[arg(long)]
        config: Option<String>,
        /// Glob pattern of tensors the checkpoint may lack (they are initialised fresh); repeatable.
        #[arg(long)]
        allow_missing: Vec<String>,
        /// Glob pattern of checkpoint tensors to drop; repeatable.
        #[arg(long)]
        allow_unexpected: Vec<String>,
        /// dtype of floating-point tensors in the output.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DTypeArg,
        /// Check the converted model against reference inputs/outputs (a safetensors file).
        #[arg(long)]
        verify: Option<PathBuf>,
        #[command(flatten)]
        tol: TolArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run a model folder on a reference file's inputs and compare with its outputs; exits non-zero
    /// past the tolerance.
    Verify {
        model: PathBuf,
        reference: PathBuf,
        #[command(flatten)]
        tol: TolArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run a model on the tensor `input` of a safetensors file (a clip [B,C,T,H,W], a spectrogram
    /// [B,1,F,T], a waveform [B,N]) and write `tokens`, `features` and `logits`.
    Embed {
        /// A model folder, hub:owner/name[@rev], or a zoo name.
        #[arg(long)]
        model: String,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Export a model as safetensors: an avkd folder, or the official PyTorch names.
    Export {
        /// A model folder, hub:owner/name[@rev], or a zoo name.
        model: String,
        /// A folder (or a .safetensors file for the weights alone).
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "avkd")]
        layout: LayoutArg,
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DTypeArg,
    },
    /// Write a small synthetic action dataset in UCF101's layout: split lists for three folds, and per
    /// video a folder of JPEG frames (class-dependent motion) and a WAV (class-dependent tone), or
    /// with --avi (feature `ffmpeg`) an .avi file.
    Synth(cli::synth::SynthArgs),
    /// The model zoo: every registered model, where its weights come from and the paper's numbers.
    Zoo {
        #[command(subcommand)]
        what: ZooWhat,
    },
    /// Download a model repository from the Hugging Face Hub into the shared cache (the one
    /// Python's huggingface_hub uses) and print the snapshot folder, or with --file the path of
    /// each file. Honours HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE.
    #[cfg(feature = "hub")]
    Download {
        /// owner/name, owner/name@REVISION or hub:owner/name[@REVISION]
        repo: String,
        /// Branch, tag or commit (default: main).
        #[arg(long)]
        revision: Option<String>,
        /// Use only the cache; never touch the network.
        #[arg(long)]
        offline: bool,
        /// Download only this file (repeatable); prints each file's path.
        #[arg(long = "file", value_name = "FILE")]
        files: Vec<String>,
        /// Cache folder (default: HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Hub URL (default: HF_ENDPOINT or https://huggingface.co).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Fine-tune a student on UCF101, HMDB51, UCF51 or a list, fold by fold, the paper's way (XKD:
    /// AdamW with layer-wise lr decay, warmup + cosine, mixup/cutmix, label smoothing; CCL: SGD with
    /// step decay), evaluating video-level every few epochs; writes last/ and best/ checkpoints,
    /// metrics.jsonl, curves.svg and eval_report.json.
    Finetune(cli::jobs::FinetuneArgs),
    /// Video-level evaluation of a fine-tuned classifier (every view, softmax averaged): top-1,
    /// top-5 and mean-class accuracy per fold, mean ± std over folds.
    Eval(cli::jobs::EvalArgs),
    /// Linear evaluation of frozen features: a trained linear head, or --svm (the papers' protocol).
    Linear(cli::jobs::LinearArgs),
    /// The top-k classes of one video.
    Predict(cli::jobs::PredictArgs),
    /// Time hot paths (for side-by-side runs with PyTorch: scripts/bench_vs_torch.py).
    Bench {
        #[command(subcommand)]
        what: cli::bench::BenchWhat,
    },
}

#[derive(Subcommand)]
enum ZooWhat {
    /// One line per entry: name, kind, parameters, released?, Hub repo, headline number.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Everything about one entry: architecture, weights, preprocessing, protocol, results.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PickArg {
    Student,
    Teacher,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModalityArg {
    Video,
    Audio,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DTypeArg {
    F32,
    F16,
    Bf16,
}

impl DTypeArg {
    fn dtype(self) -> candle_core::DType {
        match self {
            Self::F32 => candle_core::DType::F32,
            Self::F16 => candle_core::DType::F16,
            Self::Bf16 => candle_core::DType::BF16,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Avkd,
    Official,
}

/// Tolerances and reference names of a verification.
#[derive(clap::Args)]
struct TolArgs {
    /// Pass when max |out - ref| <= atol + rtol * max |ref| for every output.
    #[arg(long, default_value_t = 1e-4)]
    atol: f64,
    #[arg(long, default_value_t = 1e-4)]
    rtol: f64,
    /// The reference file's name for a role (input, teacher, video, tokens, features, logits,
    /// clipwise_output), e.g. `--ref-key input=x_long`; repeatable.
    #[arg(long, value_parser = parse_key_value)]
    ref_key: Vec<(String, String)>,
}

impl TolArgs {
    fn options(&self) -> avkd::checkpoint::verify::VerifyOptions {
        avkd::checkpoint::verify::VerifyOptions {
            atol: self.atol,
            rtol: self.rtol,
            ref_keys: self.ref_key.iter().cloned().collect(),
        }
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected ROLE=KEY, got `{s}`"))
}

/// `--config`: inline JSON, or a file holding it.
fn parse_config_arg(arg: &str) -> Result<serde_json::Value> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("reading --config file {arg}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("--config is not valid JSON: {text}"))
}

/// Prints a verification and fails past the tolerance.
fn report_verification(report: &avkd::checkpoint::verify::VerifyReport, json: bool) -> Result<()> {
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(report)?))?;
    } else {
        emit(&format!("{report}\n"))?;
    }
    if !report.passed {
        anyhow::bail!("verification failed: an output is past the tolerance");
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`avkd inspect x | head`) ends the output quietly.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn main() -> Result<()> {
    keep_freed_memory();
    avkd::util::logging::init_logging();
    match Cli::parse().command {
        Command::Quickstart(args) => cli::quickstart::run(args)?,
        Command::Finetune(args) => cli::jobs::finetune(args)?,
        Command::Eval(args) => cli::jobs::eval(args)?,
        Command::Linear(args) => cli::jobs::linear(args)?,
        Command::Predict(args) => cli::jobs::predict(args)?,
        Command::Inspect { file, json } => {
            let info = avkd::checkpoint::inspect::inspect(&file)?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&info)?))?;
            } else {
                emit(&info.to_string())?;
            }
        }
        Command::Convert {
            src,
            out,
            kind,
            pick,
            modality,
            key,
            config,
            allow_missing,
            allow_unexpected,
            dtype,
            verify,
            tol,
            json,
        } => {
            use avkd::checkpoint::convert::{convert, ConvertOptions, Role};
            use avkd::checkpoint::keymap::Modality;
            let opts = ConvertOptions {
                kind,
                pick: pick.map(|p| match p {
                    PickArg::Student => Role::Student,
                    PickArg::Teacher => Role::Teacher,
                }),
                modality: modality.map(|m| match m {
                    ModalityArg::Video => Modality::Video,
                    ModalityArg::Audio => Modality::Audio,
                }),
                key,
                config_overrides: config.as_deref().map(parse_config_arg).transpose()?,
                allow_missing,
                allow_unexpected,
                dtype: Some(dtype.dtype()),
            };
            let start = std::time::Instant::now();
            let report = convert(&src, &out, &opts)
                .with_context(|| format!("converting {}", src.display()))?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            } else {
                println!(
                    "{} -> {} ({}: {} tensors, {} elements) in {:.2} s",
                    src.display(),
                    out.display(),
                    report.model_type,
                    report.tensors,
                    report.parameters,
                    start.elapsed().as_secs_f64()
                );
                println!("source sha256 {}", report.source_sha256);
                if !report.dropped.is_empty() {
                    println!(
                        "dropped {} entries ({})",
                        report.dropped.len(),
                        report
                            .dropped
                            .iter()
                            .take(4)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if !report.initialised.is_empty() {
                    println!(
                        "initialised fresh (allowed missing): {}",
                        report.initialised.join(", ")
                    );
                }
            }
            if let Some(reference) = verify {
                let report = avkd::checkpoint::verify::verify(&out, &reference, &tol.options())?;
                report_verification(&report, json)?;
            }
        }
        Command::Verify {
            model,
            reference,
            tol,
            json,
        } => {
            let report = avkd::checkpoint::verify::verify(&model, &reference, &tol.options())?;
            report_verification(&report, json)?;
        }
        Command::Embed {
            model,
            input,
            output,
            device,
        } => {
            let dev = avkd::util::device::parse_device(&device)?;
            let dir = avkd::hub::resolve::resolve_model(&model)?;
            let folder = avkd::models::folder::ModelFolder::open(&dir)?;
            let loaded = folder.load(&dev)?;
            let shapes = avkd::checkpoint::verify::embed_file(&loaded, &input, &output, &dev)?;
            for (name, shape) in shapes {
                println!("{name:16} {shape:?}");
            }
            println!("wrote {}", output.display());
        }
        Command::Export {
            model,
            out,
            layout,
            dtype,
        } => {
            use avkd::checkpoint::export::{export_model, Layout};
            let dir = avkd::hub::resolve::resolve_model(&model)?;
            let folder = avkd::models::folder::ModelFolder::open(&dir)?;
            let layout = match layout {
                LayoutArg::Avkd => Layout::Avkd,
                LayoutArg::Official => Layout::Official,
            };
            let weights = export_model(&folder, &out, layout, dtype.dtype())?;
            println!("wrote {}", weights.display());
        }
        Command::Synth(args) => cli::synth::run(args)?,
        Command::Zoo { what } => match what {
            ZooWhat::List { json } => {
                let rows: Vec<_> = avkd::models::registry::zoo()?
                    .iter()
                    .map(avkd::models::zoo_report::ZooRow::new)
                    .collect();
                if json {
                    emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
                } else {
                    emit(&avkd::models::zoo_report::list_table(&rows))?;
                }
            }
            ZooWhat::Show { name, json } => {
                let entry = avkd::models::registry::find(&name)?;
                if json {
                    emit(&format!("{}\n", serde_json::to_string_pretty(entry)?))?;
                } else {
                    emit(&avkd::models::zoo_report::show_text(entry)?)?;
                }
            }
        },
        #[cfg(feature = "hub")]
        Command::Download {
            repo,
            revision,
            offline,
            files,
            cache_dir,
            endpoint,
        } => {
            // A zoo name downloads the Hub repo its entry names.
            let repo = avkd::hub::resolve::hub_repo_of(&repo).unwrap_or(repo);
            let target = avkd::hub::resolve_repo_id(&repo)?;
            let mut opts = avkd::hub::HubOptions::from_env();
            opts.revision = target.revision_with(revision)?;
            opts.offline |= offline;
            opts.cache_dir = cache_dir.or(opts.cache_dir);
            opts.endpoint = endpoint.or(opts.endpoint);
            if files.is_empty() {
                let dir = avkd::hub::download_repo(&target.repo_id, &opts)?;
                emit(&format!("{}\n", dir.display()))?;
            }
            for file in &files {
                let path = avkd::hub::download_file(&target.repo_id, file, &opts)?;
                emit(&format!("{}\n", path.display()))?;
            }
        }
        Command::Bench { what } => cli::bench::run(what)?,
    }
    Ok(())
}
