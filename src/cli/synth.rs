//! `avkd synth`: the synthetic action dataset, as frame folders + WAV, or .avi with `ffmpeg`.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SynthArgs {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 8)]
    pub classes: usize,
    #[arg(long, default_value_t = 8)]
    pub train_per_class: usize,
    /// Test videos per class in each fold.
    #[arg(long, default_value_t = 4)]
    pub test_per_class: usize,
    #[arg(long, default_value_t = 32)]
    pub frames: usize,
    /// Frame width and height in pixels.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Give each class's square its own colour, so one frame tells the class too (for image
    /// teachers, which see one frame); by default only the motion does.
    #[arg(long)]
    pub class_colours: bool,
    /// Write each video as an .avi (MPEG-4 part 2 + MP3, as UCF101's) instead of a frame folder
    /// (needs avkd built with `--features ffmpeg`).
    #[arg(long)]
    pub avi: bool,
}

pub fn run(args: SynthArgs) -> Result<()> {
    let cfg = avkd::data::synth_dataset::SynthDatasetConfig {
        classes: args.classes,
        train_per_class: args.train_per_class,
        test_per_class: args.test_per_class,
        frames: args.frames,
        size: args.size,
        seed: args.seed,
        class_colours: args.class_colours,
        ..Default::default()
    };
    let summary = avkd::data::synth_dataset::write_synth_dataset(&args.out, &cfg)?;
    print!("{summary}");
    if args.avi {
        write_avi(&args)?;
    }
    Ok(())
}

#[cfg(feature = "ffmpeg")]
fn write_avi(args: &SynthArgs) -> Result<()> {
    let n = avkd::data::synth_avi::write_avi_files(&args.out, true)?;
    println!("encoded {n} videos as .avi (MPEG-4 + MP3); the frame folders were removed");
    Ok(())
}

#[cfg(not(feature = "ffmpeg"))]
fn write_avi(_args: &SynthArgs) -> Result<()> {
    anyhow::bail!(
        "--avi needs avkd built with `--features ffmpeg` (the frame folders were written)"
    )
}
