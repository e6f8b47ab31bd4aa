//! Choosing the compute device from a command-line string.

use candle_core::{Device, Result};

/// `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`. A GPU asked for in a build without its feature is a
/// clear error, not a silent fallback to the CPU.
pub fn parse_device(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => {
            let i = i.parse::<usize>().map_err(|_| {
                candle_core::Error::Msg(format!("device `{spec}`: `{i}` is not a device index"))
            })?;
            (k, i)
        }
        None => (spec, 0),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => Device::new_cuda(index),
        "metal" if cfg!(feature = "metal") => Device::new_metal(index),
        "cuda" | "metal" => candle_core::bail!("device `{spec}`: this avkd was built without the `{kind}` feature (cargo build --release --features {kind})"),
        _ => candle_core::bail!("unknown device `{spec}`: use cpu, cuda[:N] or metal[:N]"),
    }
}
