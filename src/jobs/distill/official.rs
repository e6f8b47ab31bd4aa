//! `--export-official`: the student and the heads under the names CCL's `main.py::save_checkpoint`
//! gives them (`save_{epoch}.pth`, `save_{epoch}_audio.pth`, `save_{epoch}_image.pth`, each
//! `state_dict` the bare module's, without a `module.` prefix; ccl.md §3.4), as safetensors with
//! the checkpoint's `epoch` and `arch` in the metadata. BatchNorm layers get the
//! `num_batches_tracked` counters PyTorch saves, so `load_state_dict(strict=True)` accepts them.

use super::job::Distillation;
use crate::checkpoint::export::write_tensor_list;
use crate::checkpoint::keymap::avkd_to_official;
use crate::models::config::{CompositionConfig, ModelConfig};
use crate::nn::param_store::ParamStore;
use candle_core::{Result, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CCL's `arch` string of its student, `'{model}-{depth}'`.
fn arch(depth: usize) -> String {
    format!("r21d-{depth}")
}

fn write(
    path: &Path,
    cfg: &ModelConfig,
    store: &ParamStore,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let sorted: BTreeMap<String, Tensor> = store.tensors()?.into_iter().collect();
    write_tensor_list(path, avkd_to_official(cfg, sorted)?, meta)
}

/// Writes the three files into `dir` for a run `epochs` epochs in; returns `dir`.
pub fn write_official(job: &Distillation, dir: &Path, epochs: usize) -> Result<PathBuf> {
    let nets = job.nets();
    let student = nets.student.config();
    let meta = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("epoch".to_string(), epochs.to_string()),
        ("arch".to_string(), arch(student.depth)),
    ]);
    let cfg = ModelConfig::CclR2Plus1d(student.clone());
    write(
        &dir.join(format!("save_{epochs}.safetensors")),
        &cfg,
        &nets.student_store,
        &meta,
    )?;
    for head in &nets.heads {
        let cfg = ModelConfig::CclComposition(CompositionConfig {
            dim: head.net.dim(),
            num_classes: head.net.num_classes(),
        });
        let which = head.name().trim_end_matches("_head");
        let path = dir.join(format!("save_{epochs}_{which}.safetensors"));
        write(&path, &cfg, &head.store, &meta)?;
    }
    Ok(dir.to_path_buf())
}
