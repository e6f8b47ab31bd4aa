//! `avkd pretrain`: XKD / XKD-MAS / XKD-MATS pre-training on a dataset, or (`--replay`) the replay
//! of recorded official steps with a tensor-by-tensor comparison.

use anyhow::{bail, Context, Result};
use avkd::checkpoint::safetensors_writer::{write_streaming, PendingTensor};
use avkd::jobs::pretrain::replay::replay;
use avkd::jobs::pretrain::replay_compare::compare;
use avkd::jobs::pretrain::replay_config::ReplayPlan;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// xkd, xkd-mas or xkd-mats
    #[arg(long)]
    pub method: Option<String>,
    /// tiny, small, base, large (the official presets) or a JSON file
    /// (`{"encoder": {...}, "decoder": {...}, "projector": {...}}`, missing keys from base).
    #[arg(long)]
    pub size: Option<String>,
    /// ucf101, ucf51, hmdb51, list, kinetics or audioset
    #[arg(long)]
    pub dataset: Option<String>,
    /// The dataset folder.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The split lists' folder (or the Kinetics / AudioSet CSV), when not under --root.
    #[arg(long)]
    pub splits: Option<PathBuf>,
    /// Override one setting, e.g. `--set epochs=100 --set batch_size=16 --set views.frames=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run directory (checkpoints, metrics, exports); with --replay, the output .safetensors.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Replay the recorded official steps in DIR (laid out as the pretrain_step fixture).
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// --replay: which recording (xkd, mas or mats; the files of mas and mats are prefixed).
    #[arg(long, default_value = "xkd")]
    pub variant: String,
    /// --replay: compare with the recorded results in DIR; exit non-zero past the tolerance.
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
}

pub fn run(args: PretrainArgs) -> Result<()> {
    match &args.replay {
        Some(dir) => run_replay(dir, &args),
        None => bail!("give --replay DIR, or --method, --size, --dataset and --root to pre-train"),
    }
}

fn run_replay(dir: &Path, args: &PretrainArgs) -> Result<()> {
    let out = &args.out;
    let work = out.with_extension("replay-work");
    let result = replay(dir, &args.variant, &work);
    std::fs::remove_dir_all(&work).ok();
    let tensors = result.with_context(|| format!("replaying {}", dir.display()))?;
    write_tensors(out, &tensors, dir)?;
    let plan = ReplayPlan::read(dir, &args.variant)?;
    println!(
        "replayed {} recorded {} step(s) of {}: {} tensors written to {}",
        plan.steps.len(),
        args.variant,
        dir.display(),
        tensors.len(),
        out.display()
    );
    let Some(reference) = &args.reference else {
        return Ok(());
    };
    let lrs: Vec<f64> = plan.steps.iter().map(|s| s.lr).collect();
    let cmp = compare(&tensors, reference, &plan.prefix, &lrs)?;
    println!(
        "compared {} tensors of {} with the replay",
        cmp.checks.len(),
        cmp.files.join(", ")
    );
    println!("{:<72} {:>12} {:>12}", "closest to the tolerance", "max |err|", "tolerance");
    for c in cmp.worst(10) {
        match &c.problem {
            Some(p) => println!("{:<72} {p}", c.name),
            None => println!("{:<72} {:>12.3e} {:>12.3e}", c.name, c.max_abs_err, c.tolerance),
        }
    }
    let failures = cmp.failures();
    if !failures.is_empty() {
        bail!(
            "{} of {} tensors differ from the official recording past the tolerance",
            failures.len(),
            cmp.checks.len()
        )
    }
    println!("all {} tensors within tolerance", cmp.checks.len());
    Ok(())
}

fn write_tensors(out: &Path, tensors: &BTreeMap<String, candle_core::Tensor>, dir: &Path) -> Result<()> {
    let pending = tensors
        .iter()
        .map(|(name, t)| PendingTensor::from_tensor(name.clone(), t.clone(), t.dtype()))
        .collect();
    let meta = BTreeMap::from([
        ("source".to_string(), "avkd pretrain --replay".to_string()),
        ("recording".to_string(), dir.display().to_string()),
    ]);
    write_streaming(out, pending, &meta).with_context(|| format!("writing {}", out.display()))
}
