//! CCL's audio teacher, PANNs Cnn14_emb512 with its log-mel front end, against the official code
//! (fixture ccl/panns_cnn14_emb512: reduced widths, n_fft 160, hop 160, 32 mel bins, 10 classes).

mod common;

use avkd::checkpoint::panns::panns_state_dict;
use avkd::models::ccl::audio_frontend::{dft_kernels, slaney_mel_filterbank};
use avkd::models::ccl::cnn14::{Cnn14Config, Cnn14Emb512};
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::*;
use std::collections::HashMap;

const DIR: &str = "ccl/panns_cnn14_emb512";
const ATOL: f64 = 1e-4;
/// The dB log-mel reaches ~|100|: relative to its largest magnitude.
const RTOL_LOGMEL: f64 = 1e-5;

fn fixture_cfg() -> Cnn14Config {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path(&format!("{DIR}/config.json"))).unwrap(),
    )
    .unwrap();
    let mut kwargs = json["constructor"]["kwargs"].clone();
    let cfg: Cnn14Config = serde_json::from_value(kwargs.take()).unwrap();
    assert_eq!(
        (cfg.window_size, cfg.hop_size, cfg.mel_bins, cfg.emb_dim),
        (160, 160, 32, 16)
    );
    cfg
}

fn checkpoint() -> HashMap<String, Tensor> {
    panns_state_dict(&fixture_path(&format!("{DIR}/Cnn14_emb512_reduced.pth"))).unwrap()
}

fn official_model() -> Cnn14Emb512 {
    let vb = VarBuilder::from_tensors(checkpoint(), DType::F32, &Device::Cpu);
    Cnn14Emb512::new(&fixture_cfg(), vb).unwrap()
}

fn io() -> HashMap<String, Tensor> {
    load_fixture(&format!("{DIR}/panns_io.safetensors"))
}

#[test]
fn stages_match_official() {
    let io = io();
    let model = official_model();
    let s = model.forward_stages(get(&io, "waveform")).unwrap();
    let want = get(&io, "stage_logmel_extractor");
    println!(
        "logmel: max abs {:.3e}, max |ref| {:.3e}",
        max_abs_diff(&s.logmel, want),
        max_abs(want)
    );
    assert_rel_close("stage_logmel_extractor", &s.logmel, want, RTOL_LOGMEL);
    for (name, got) in [
        ("stage_conv_block6", &s.conv_block6),
        ("stage_fc1_prerelu", &s.fc1_prerelu),
        ("embedding", &s.output.embedding),
        ("clipwise_output", &s.output.clipwise_output),
    ] {
        let want = get(&io, name);
        println!(
            "{name}: max abs {:.3e} (max |ref| {:.3e})",
            max_abs_diff(got, want),
            max_abs(want)
        );
        assert_close(name, got, want, ATOL);
    }
    // `forward` is the same computation.
    let out = model.forward(get(&io, "waveform")).unwrap();
    assert_eq!(max_abs_diff(&out.embedding, &s.output.embedding), 0.0);
}

#[test]
fn batch_items_are_independent() {
    let io = io();
    let model = official_model();
    let wav = get(&io, "waveform");
    let other = (wav.flip(&[1]).unwrap() * 0.5).unwrap();
    let both = Tensor::cat(&[wav, &other], 0).unwrap();
    let b = model.forward_stages(&both).unwrap();
    for (i, single) in [wav, &other].into_iter().enumerate() {
        let s = model.forward_stages(single).unwrap();
        let pick = |t: &Tensor| t.narrow(0, i, 1).unwrap();
        assert_rel_close("logmel", &pick(&b.logmel), &s.logmel, 1e-6);
        assert_close(
            "embedding",
            &pick(&b.output.embedding),
            &s.output.embedding,
            1e-5,
        );
    }
    assert_close(
        "embedding[0] vs official",
        &b.output.embedding.narrow(0, 0, 1).unwrap(),
        get(&io, "embedding"),
        ATOL,
    );
}

#[test]
fn mel_filterbank_matches_checkpoint() {
    let cfg = fixture_cfg();
    let ours = slaney_mel_filterbank(
        cfg.sample_rate,
        cfg.window_size,
        cfg.mel_bins,
        cfg.fmin,
        cfg.fmax,
        &Device::Cpu,
    )
    .unwrap();
    let want = get(&checkpoint(), "logmel_extractor.melW").clone();
    let d = max_abs_diff(&ours, &want);
    println!("melW: max abs {d:.3e} (max |ref| {:.3e})", max_abs(&want));
    assert_close("melW", &ours, &want, 1e-6);
}

#[test]
fn dft_kernels_match_checkpoint() {
    let ckpt = checkpoint();
    let (real, imag) = dft_kernels(fixture_cfg().window_size, &Device::Cpu).unwrap();
    for (name, ours) in [
        ("spectrogram_extractor.stft.conv_real.weight", real),
        ("spectrogram_extractor.stft.conv_imag.weight", imag),
    ] {
        let want = get(&ckpt, name);
        println!("{name}: max abs {:.3e}", max_abs_diff(&ours, want));
        assert_close(name, &ours, want, 1e-6);
    }
}

/// Without the frozen buffers in the checkpoint, the model computes them from the configuration.
#[test]
fn buffers_computed_when_absent() {
    let io = io();
    let mut ckpt = checkpoint();
    for k in [
        "spectrogram_extractor.stft.conv_real.weight",
        "spectrogram_extractor.stft.conv_imag.weight",
        "logmel_extractor.melW",
    ] {
        assert!(ckpt.remove(k).is_some(), "{k} missing from the fixture");
    }
    let vb = VarBuilder::from_tensors(ckpt, DType::F32, &Device::Cpu);
    let model = Cnn14Emb512::new(&fixture_cfg(), vb).unwrap();
    let s = model.forward_stages(get(&io, "waveform")).unwrap();
    assert_rel_close(
        "logmel (computed buffers)",
        &s.logmel,
        get(&io, "stage_logmel_extractor"),
        RTOL_LOGMEL,
    );
    assert_close(
        "embedding (computed buffers)",
        &s.output.embedding,
        get(&io, "embedding"),
        ATOL,
    );
}

/// A new model in a parameter store has exactly the PANNs names and shapes, buffers included.
#[test]
fn new_model_has_panns_names() {
    let cfg = fixture_cfg();
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    let model = Cnn14Emb512::new(&cfg, store.builder()).unwrap();
    let ckpt = checkpoint();
    let ours = store.tensors().unwrap();
    let mut names: Vec<_> = ours.keys().cloned().collect();
    let mut want: Vec<_> = ckpt.keys().cloned().collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    for (k, t) in &ours {
        assert_eq!(t.dims(), ckpt[k].dims(), "{k}");
    }
    assert_close(
        "stored melW",
        &ours["logmel_extractor.melW"],
        &ckpt["logmel_extractor.melW"],
        1e-6,
    );
    assert_close(
        "stored conv_real",
        &ours["spectrogram_extractor.stft.conv_real.weight"],
        &ckpt["spectrogram_extractor.stft.conv_real.weight"],
        1e-6,
    );
    // init_bn and init_layer: BN (1, 0), zero linear bias, xavier bound for the convs.
    assert_eq!(
        ours["bn0.weight"].to_vec1::<f32>().unwrap(),
        vec![1f32; cfg.mel_bins]
    );
    assert_eq!(max_abs(&ours["fc1.bias"]), 0.0);
    let bound = (6.0f64 / ((16 + 16) * 9) as f64).sqrt();
    let m = max_abs(&ours["conv_block6.conv2.weight"]);
    assert!(
        m <= bound && m > 0.5 * bound,
        "xavier bound {bound}, max {m}"
    );

    let out = model
        .forward(&Tensor::zeros((2, 8000), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(out.embedding.dims(), &[2, cfg.emb_dim]);
    assert_eq!(out.clipwise_output.dims(), &[2, cfg.classes_num]);
}

#[test]
fn bad_waveforms_give_errors() {
    let model = official_model();
    let cfg = fixture_cfg();
    let dev = Device::Cpu;
    let err = |t: Tensor| model.forward(&t).map(|_| ()).unwrap_err().to_string();

    let e = err(Tensor::zeros(32000, DType::F32, &dev).unwrap());
    assert!(
        e.contains("[batch, samples]") && e.contains("[32000]"),
        "{e}"
    );
    let e = err(Tensor::zeros((1, 1, 32000), DType::F32, &dev).unwrap());
    assert!(e.contains("[batch, samples]"), "{e}");

    let min = cfg.min_samples();
    assert_eq!(min, 31 * 160);
    assert_eq!(cfg.num_frames(min), 32);
    let e = err(Tensor::zeros((1, min - 1), DType::F32, &dev).unwrap());
    assert!(e.contains(&format!("fewer than the {min}")), "{e}");
    let e = err(Tensor::zeros((1, 10), DType::F32, &dev).unwrap());
    assert!(e.contains("waveform"), "{e}");
    assert!(model
        .forward(&Tensor::zeros((1, min), DType::F32, &dev).unwrap())
        .is_ok());

    // A log-mel of the wrong width is refused too.
    let e = model
        .forward_logmel(&Tensor::zeros((1, 1, 40, 31), DType::F32, &dev).unwrap())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("log-mel must be"), "{e}");

    let mut bad = cfg.clone();
    bad.mel_bins = 16;
    let vb = VarBuilder::from_tensors(checkpoint(), DType::F32, &Device::Cpu);
    assert!(Cnn14Emb512::new(&bad, vb).is_err());
}

#[test]
fn panns_config_round_trips() {
    let cfg = Cnn14Config::panns();
    let back: Cnn14Config = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    assert_eq!(cfg.num_frames(320_000), 1001);
    assert_eq!(cfg.min_samples(), 31 * 320);
}

/// The full-size PANNs network on 10 s of audio (about 2.5 s on a 2-core CPU in release).
#[test]
fn panns_full_size_smoke() {
    let cfg = Cnn14Config::panns();
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    let model = Cnn14Emb512::new(&cfg, store.builder()).unwrap();
    // Every PANNs tensor, running statistics and the frozen front-end buffers included.
    let mut want = 2 * 513 * 1024 + 513 * 64 + 4 * 64 + 2048 * 512 + 512 + 512 * 527 + 527;
    let mut c_in = 1;
    for c in cfg.widths {
        want += 9 * c * (c_in + c) + 8 * c;
        c_in = c;
    }
    assert_eq!(store.num_params(), want);
    let wav = Tensor::randn(0f32, 0.1, (2, 320_000), &Device::Cpu).unwrap();
    let start = std::time::Instant::now();
    let s = model.forward_stages(&wav).unwrap();
    println!("full-size forward of 2 x 10 s: {:.1?}", start.elapsed());
    assert_eq!(s.logmel.dims(), &[2, 1, 1001, 64]);
    assert_eq!(s.conv_block6.dims(), &[2, 2048, 31, 2]);
    assert_eq!(s.output.embedding.dims(), &[2, 512]);
    // Every mel filter of the full-size bank covers at least one FFT bin.
    let mel_w = model.frontend().mel_filterbank().max(0).unwrap();
    assert!(mel_w.to_vec1::<f32>().unwrap().iter().all(|&v| v > 0.0));
}
