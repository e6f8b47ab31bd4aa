//! Audio data path: XKD's log-mel against the official code (fixture xkd/logmel), and decoding of
//! real media files of every supported format, resampling and segmenting.

mod common;

use avkd::data::mel::{LogMel, LogMelConfig};
use candle_core::{Device, Tensor};
use common::*;

const LOGMEL: &str = "xkd/logmel/logmel_io.safetensors";

/// The fixture's waveform as the reference feeds it: float32(float64(int16) / 32767).
fn fixture_waveform() -> Vec<f32> {
    let bytes = std::fs::read(fixture_path(LOGMEL)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("waveform_int16").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::I16);
    view.data()
        .chunks_exact(2)
        .map(|b| (i16::from_le_bytes([b[0], b[1]]) as f64 / 32767.0) as f32)
        .collect()
}

#[test]
fn xkd_logmel_matches_official() {
    let wav = fixture_waveform();
    assert_eq!(wav.len(), 64_000);
    let lm = LogMel::new(LogMelConfig::xkd()).unwrap();
    let ours = lm.forward(&wav, &Device::Cpu).unwrap();
    let want = get(&load_fixture(LOGMEL), "out").clone();
    let d = max_abs_diff(&ours, &want);
    println!(
        "xkd log-mel [1,80,448]: max abs error {d:.3e} (max |ref| {:.3})",
        max_abs(&want)
    );
    assert_close("xkd log-mel", &ours, &want, 1e-4);
}

/// The standardisation is the last step: without it the output is ln(mel + eps), and the
/// standardised fixture maps back onto it.
#[test]
fn xkd_logmel_unnormalised_is_the_log_of_mel_energies() {
    let wav = fixture_waveform();
    let cfg = LogMelConfig {
        normalize: None,
        ..LogMelConfig::xkd()
    };
    let lm = LogMel::new(cfg).unwrap();
    let log = Tensor::from_vec(lm.log_mel(&wav).unwrap(), (1, 80, 448), &Device::Cpu).unwrap();
    let want = ((get(&load_fixture(LOGMEL), "out") * 4.410007).unwrap() - 5.3688107).unwrap();
    let d = max_abs_diff(&log, &want);
    println!("ln(mel + eps): max abs error {d:.3e}");
    assert_close("ln(mel + eps)", &log, &want, 5e-4);
    let mel = lm.mel_spectrogram(&wav).unwrap();
    let power = lm.power_spectrogram(&wav).unwrap();
    assert_eq!((mel.len(), power.len()), (80 * 448, 513 * 448));
    // eps keeps every power positive; every mel band of a noisy mix has energy.
    assert!(power.iter().all(|&p| p > 0.0) && mel.iter().all(|&m| m > 0.0));
}
