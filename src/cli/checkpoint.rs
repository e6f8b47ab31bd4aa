//! The command line of checkpoints and model folders: `inspect`, `convert`, `verify`, `embed`,
//! `export`.

use super::output::emit;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InspectArgs {
    file: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
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
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    model: PathBuf,
    reference: PathBuf,
    #[command(flatten)]
    tol: TolArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// A model folder, hub:owner/name[@rev], or a zoo name.
    #[arg(long)]
    model: String,
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A model folder, hub:owner/name[@rev], or a zoo name.
    model: String,
    /// A folder (or a .safetensors file for the weights alone).
    #[arg(short, long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "avkd")]
    layout: LayoutArg,
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DTypeArg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PickArg {
    Student,
    Teacher,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ModalityArg {
    Video,
    Audio,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
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

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LayoutArg {
    Avkd,
    Official,
}

/// Tolerances and reference names of a verification.
#[derive(Args, Debug)]
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

pub fn inspect(args: InspectArgs) -> Result<()> {
    let InspectArgs { file, json } = args;
    let info = avkd::checkpoint::inspect::inspect(&file)?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&info)?))?;
    } else {
        emit(&info.to_string())?;
    }
    Ok(())
}

pub fn convert(args: ConvertArgs) -> Result<()> {
    use avkd::checkpoint::convert::{convert, ConvertOptions, Role};
    use avkd::checkpoint::keymap::Modality;
    let ConvertArgs {
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
    } = args;
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
    let report =
        convert(&src, &out, &opts).with_context(|| format!("converting {}", src.display()))?;
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
    Ok(())
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let report =
        avkd::checkpoint::verify::verify(&args.model, &args.reference, &args.tol.options())?;
    report_verification(&report, args.json)
}

pub fn embed(args: EmbedArgs) -> Result<()> {
    let EmbedArgs {
        model,
        input,
        output,
        device,
    } = args;
    let dev = avkd::util::device::parse_device(&device)?;
    let dir = avkd::hub::resolve::resolve_model(&model)?;
    let folder = avkd::models::folder::ModelFolder::open(&dir)?;
    let loaded = folder.load(&dev)?;
    let shapes = avkd::checkpoint::verify::embed_file(&loaded, &input, &output, &dev)?;
    for (name, shape) in shapes {
        println!("{name:16} {shape:?}");
    }
    println!("wrote {}", output.display());
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    use avkd::checkpoint::export::{export_model, Layout};
    let ExportArgs {
        model,
        out,
        layout,
        dtype,
    } = args;
    let dir = avkd::hub::resolve::resolve_model(&model)?;
    let folder = avkd::models::folder::ModelFolder::open(&dir)?;
    let layout = match layout {
        LayoutArg::Avkd => Layout::Avkd,
        LayoutArg::Official => Layout::Official,
    };
    let weights = export_model(&folder, &out, layout, dtype.dtype())?;
    println!("wrote {}", weights.display());
    Ok(())
}
