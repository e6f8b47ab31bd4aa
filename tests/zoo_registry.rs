//! The zoo registry (`models/*.toml`): every file registered and parsed, every architecture built
//! with the parameter count the specs give, and broken entries rejected with the file named.

use avkd::models::ccl::r2plus1d::R2Plus1dConfig;
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::models::config::{ModelConfig, PreprocessorConfig, SavedConfig, CCL_KINETICS_MEAN};
use avkd::models::param_count::{count_params, param_shapes};
use avkd::models::registry::{self, find, is_valid_repo_id, parse_entry, zoo, ZooEntry, ZOO_FILES};
use avkd::models::xkd::{AudioVitConfig, VideoVitConfig, VitSize};
use avkd::models::zoo_report::{list_table, show_text, ZooRow};
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device};
use std::collections::{BTreeMap, BTreeSet};

fn entries() -> &'static [ZooEntry] {
    zoo().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_toml_in_models_is_registered_and_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    let registered: BTreeSet<String> = ZOO_FILES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        on_disk, registered,
        "models/*.toml and registry::ZOO_FILES differ: register new files in src/models/registry.rs"
    );
    assert_eq!(
        registered.len(),
        ZOO_FILES.len(),
        "a file is registered twice"
    );
    assert_eq!(entries().len(), ZOO_FILES.len());
    for (file, _) in ZOO_FILES {
        assert!(entries().iter().any(|e| &e.file == file));
    }
}

#[test]
fn names_and_hub_repos_are_unique_and_valid() {
    let mut names = BTreeSet::new();
    let mut repos = BTreeSet::new();
    for e in entries() {
        assert!(names.insert(e.name.clone()), "duplicate name {}", e.name);
        assert!(
            repos.insert(e.hub_repo().to_string()),
            "duplicate repo {}",
            e.hub_repo
        );
        assert!(is_valid_repo_id(e.hub_repo()), "{}: {}", e.name, e.hub_repo);
        assert_eq!(e.file, format!("{}.toml", e.name));
    }
    for good in ["avkd-zoo/xkd-k400-video-student", "a/b", "org_1/m.v2"] {
        assert!(is_valid_repo_id(good), "{good}");
    }
    for bad in [
        "no-slash", "a/b/c", "/b", "a/", "a b/c", "-a/b", "a/b.", "a--b/c",
    ] {
        assert!(!is_valid_repo_id(bad), "{bad}");
    }
}

/// Parameter counts from the specs: xkd.md §3.1 (backbones), ccl.md §2.1 (R(2+1)D-18), torchvision
/// ResNet-34, and PANNs Cnn14_emb512 summed from the shape table of ccl.md §3.3.
fn expected_params(cfg: &ModelConfig) -> usize {
    match cfg {
        ModelConfig::XkdVideo(c) if *c == VideoVitConfig::xkd(VitSize::Base) => 87_691_008,
        ModelConfig::XkdAudio(c) if *c == AudioVitConfig::xkd(VitSize::Base) => 85_509_888,
        ModelConfig::CclR2Plus1d(c) if *c == R2Plus1dConfig::official(18, 51) => 14_391_466,
        ModelConfig::ResNet(c) if *c == ResNetConfig::resnet34_teacher() => 21_284_672,
        ModelConfig::PannsCnn14(c) => {
            let front = 2 * 513 * 1024 + 513 * 64;
            let mut n = front + 2 * 64 + 2048 * 512 + 512 + 527 * 512 + 527;
            let mut c_in = 1;
            for w in c.widths {
                n += 9 * w * (c_in + w) + 4 * w;
                c_in = w;
            }
            n
        }
        other => panic!("no known parameter count for {other:?}: add one here"),
    }
}

#[test]
fn every_architecture_builds_with_the_published_parameter_count() {
    for e in entries() {
        let cfg = e.model_config();
        let count = e.param_count();
        assert_eq!(count.parameters, expected_params(&cfg), "{}", e.name);
        if matches!(cfg, ModelConfig::XkdVideo(_) | ModelConfig::XkdAudio(_)) {
            // xkd.md §3.1: 138 keys per backbone.
            assert_eq!(count.tensors, 138, "{}", e.name);
            assert_eq!(count.running_stats, 0);
        }
    }
    assert_eq!(
        find("panns-cnn14-emb512").unwrap().param_count().parameters,
        77_880_335
    );
}

#[test]
fn counts_follow_the_config() {
    // With torchvision's fc: 512 x 1000 + 1000 more.
    let with_fc = ModelConfig::ResNet(ResNetConfig {
        num_classes: Some(1000),
        ..ResNetConfig::resnet34_teacher()
    });
    assert_eq!(count_params(&with_fc).unwrap().parameters, 21_797_672);
    // ccl.md §2.1: the backbone is 14,365,303; the classifier adds 513 per class.
    let ucf101 = ModelConfig::CclR2Plus1d(R2Plus1dConfig::official(18, 101));
    assert_eq!(
        count_params(&ucf101).unwrap().parameters,
        14_365_303 + 513 * 101
    );
    // ccl.md §2.1: depth 34 has 63,530,922 parameters with 51 classes.
    let deep = ModelConfig::CclR2Plus1d(R2Plus1dConfig::official(34, 51));
    assert_eq!(count_params(&deep).unwrap().parameters, 63_530_922);
    let net = ModelConfig::xkd_net(avkd::models::xkd::net::XkdConfig::official(
        avkd::models::xkd::net::XkdVariant::Xkd,
    ));
    assert!(count_params(&net)
        .unwrap_err()
        .to_string()
        .contains("full pretraining net"));
}

/// The shape-only build records exactly what a real build allocates.
#[test]
fn shape_only_build_matches_a_real_build() {
    let check = |cfg: ModelConfig, build: &dyn Fn(&ParamStore)| {
        let store = ParamStore::new(0, DType::F32, &Device::Cpu);
        build(&store);
        let real: BTreeMap<String, Vec<usize>> = store
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.dims().to_vec()))
            .collect();
        assert_eq!(param_shapes(&cfg).unwrap(), real);
    };
    let tiny = VideoVitConfig::xkd(VitSize::Tiny);
    check(ModelConfig::XkdVideo(tiny.clone()), &|s| {
        avkd::models::xkd::VideoViT::new(&tiny, s.builder()).unwrap();
    });
    let resnet = ResNetConfig::resnet34_teacher();
    check(ModelConfig::ResNet(resnet.clone()), &|s| {
        ResNet::new(&resnet, s.builder()).unwrap();
    });
    let r21d = R2Plus1dConfig::official(18, 51);
    check(ModelConfig::CclR2Plus1d(r21d.clone()), &|s| {
        avkd::models::ccl::r2plus1d::R2Plus1d::new(&r21d, s.builder()).unwrap();
    });
}

#[test]
fn weights_are_described_honestly() {
    for e in entries() {
        let w = &e.weights;
        if w.released {
            assert!(
                w.url.as_deref().is_some_and(|u| u.starts_with("https://")),
                "{}",
                e.name
            );
            assert!(
                w.file.as_deref().is_some_and(|f| !f.is_empty()),
                "{}",
                e.name
            );
        } else {
            let note = w.note.as_deref().unwrap_or("").to_lowercase();
            assert!(
                note.contains("never released"),
                "{}: say so plainly",
                e.name
            );
            assert_eq!(w.status(), "no");
        }
        if let Some(h) = &w.sha256 {
            assert!(w.released && !w.file_is_pattern(), "{}", e.name);
            assert_eq!(h.len(), 64);
        }
        // torch.hub file names carry the sha256's leading digits: `name-<prefix>.ext`.
        if let Some(p) = &w.sha256_prefix {
            let file = w.file.as_deref().unwrap_or("");
            assert!(
                file.contains(&format!("-{p}.")),
                "{}: {file} vs {p}",
                e.name
            );
        }
    }
    // Spot checks against the specs.
    let xkd = find("xkd-k400-video-student").unwrap();
    assert_eq!(xkd.weights.status(), "yes (unverified)");
    let panns = find("panns-cnn14-emb512").unwrap();
    assert_eq!(panns.weights.key.as_deref(), Some("model"));
    assert_eq!(
        panns.weights.file.as_deref(),
        Some("Cnn14_emb512_mAP=0.420.pth")
    );
    for ccl in ["ccl-a", "ccl-i", "ccl-ai"] {
        assert!(
            !find(&format!("{ccl}-ucf51-r2plus1d18"))
                .unwrap()
                .weights
                .released
        );
    }
}

#[test]
fn every_entry_has_sourced_results_measured_by_a_listed_protocol() {
    for e in entries() {
        assert!(!e.results.is_empty(), "{}", e.name);
        let kinds: BTreeSet<&str> = e
            .protocol
            .evaluations
            .iter()
            .map(|ev| ev.kind.as_str())
            .collect();
        for r in &e.results {
            assert!(!r.source.trim().is_empty(), "{}: {}", e.name, r.summary());
            assert!(r.value.is_some() || r.note.is_some(), "{}", e.name);
            assert!(
                kinds.contains(r.protocol.as_str()),
                "{}: {}",
                e.name,
                r.protocol
            );
            if let Some(v) = r.value {
                assert!(
                    (0.0..=100.0).contains(&v),
                    "{}: values are percentages",
                    e.name
                );
            }
        }
        assert!(e.headline().is_some());
    }
    let head = find("xkd-k400-video-student").unwrap().headline().unwrap();
    assert_eq!(head.summary(), "UCF101 fine-tune top-1 94.1");
    let audio = find("xkd-audioset-audio-student")
        .unwrap()
        .headline()
        .unwrap();
    assert_eq!(audio.summary(), "ESC50 fine-tune top-1 96.5");
    let ccl_a = find("ccl-a-ucf51-r2plus1d18").unwrap().headline().unwrap();
    assert_eq!(ccl_a.value_text(), "unknown");
    assert_eq!(
        find("ccl-ai-ucf51-r2plus1d18")
            .unwrap()
            .headline()
            .unwrap()
            .value,
        Some(70.0)
    );
}

/// The CCL students were never released: each entry says how to make one with `avkd distill`, with
/// the teachers its method needs.
#[test]
fn never_released_ccl_students_say_how_to_make_them() {
    for (name, method, needs) in [
        ("ccl-a-ucf51-r2plus1d18", "ccl-a", &["--audio-features"][..]),
        ("ccl-i-ucf51-r2plus1d18", "ccl-i", &["--image-teacher"][..]),
        (
            "ccl-ai-ucf51-r2plus1d18",
            "ccl-ai",
            &["--audio-features", "--image-teacher"][..],
        ),
    ] {
        let e = find(name).unwrap();
        assert!(!e.weights.released, "{name}");
        let make = e
            .weights
            .make
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no `make`"));
        assert!(
            make.starts_with(&format!("avkd distill --method {method} ")),
            "{name}: {make}"
        );
        for flag in needs {
            assert!(make.contains(flag), "{name}: {make} lacks {flag}");
        }
        let card = avkd::models::zoo_report::show_text(e).unwrap();
        assert!(
            card.contains("make them"),
            "{name}: the card does not say how to make it"
        );
    }
}

#[test]
fn configs_and_preprocessing_make_model_folders() {
    for e in entries() {
        let saved = SavedConfig::new(e.model_config());
        let back: SavedConfig = serde_json::from_str(&saved.to_json().unwrap()).unwrap();
        assert_eq!(back, saved, "{}", e.name);
        let pre = e.preprocessor();
        assert_eq!(pre.input, e.model_config().input_kind(), "{}", e.name);
        if e.preprocessing_overrides.is_empty() {
            assert_eq!(pre, PreprocessorConfig::for_model(&e.config), "{}", e.name);
        }
    }
    let video = find("xkd-k400-video-student").unwrap().preprocessor();
    assert_eq!(
        (video.resize_short_side, video.crop_size),
        (Some(128), Some(112))
    );
    assert_eq!(video.fps, Some(8.0));
    let audio = find("xkd-k400-audio-teacher").unwrap().preprocessor();
    assert_eq!(audio.audio_seconds, Some(4.0));
    assert_eq!(audio.hop_length, Some(143));
    let resnet = find("resnet34-imagenet1k-v1").unwrap().preprocessor();
    assert_eq!(resnet.mean, Some(CCL_KINETICS_MEAN));
}

#[test]
fn list_and_show_render_every_entry() {
    let rows: Vec<ZooRow> = entries().iter().map(ZooRow::new).collect();
    let table = list_table(&rows);
    assert_eq!(table.lines().count(), entries().len() + 1);
    assert!(table.contains("ccl-ai-ucf51-r2plus1d18"));
    assert!(table.contains("87.7M"));
    for e in entries() {
        let params = e.param_count();
        let text = show_text(e).unwrap();
        assert!(
            text.contains(&e.hub_repo) && text.contains("model_type"),
            "{}",
            e.name
        );
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["name"], e.name.as_str());
        assert_eq!(json["config"]["model_type"], e.model_type());
        assert_eq!(json["params"]["parameters"], params.parameters);
    }
}

#[test]
fn find_names_close_entries() {
    assert_eq!(
        find("resnet34-imagenet1k-v1").unwrap().model_type(),
        "resnet"
    );
    let err = find("xkd-k400-vidoe-student").unwrap_err().to_string();
    assert!(err.contains("did you mean xkd-k400-video-student"), "{err}");
    let err = find("resnet34").unwrap_err().to_string();
    assert!(err.contains("resnet34-imagenet1k-v1"), "{err}");
    let err = find("zzzzzzzzzzzzzzzz").unwrap_err().to_string();
    assert!(err.contains("avkd zoo list"), "{err}");
}

/// A registered file with `from` replaced by `to`, which must fail naming the file and `want`.
fn rejects(file: &str, from: &str, to: &str, want: &str) {
    let text = ZOO_FILES.iter().find(|(f, _)| *f == file).unwrap().1;
    assert!(text.contains(from), "{file} has no `{from}`");
    let err = parse_entry(file, &text.replacen(from, to, 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("models/{file}")), "{err}");
    assert!(err.contains(want), "expected `{want}` in: {err}");
}

#[test]
fn broken_entries_are_rejected_with_the_file_named() {
    let x = "xkd-k400-video-student.toml";
    // The unchanged text parses.
    let text = ZOO_FILES.iter().find(|(f, _)| *f == x).unwrap().1;
    parse_entry(x, text).unwrap();
    let extra = "qkv_bias = false\nqkv_bais = false";
    rejects(
        x,
        "qkv_bias = false",
        extra,
        "unknown keys config.transformer.qkv_bais",
    );
    rejects(
        x,
        "resize_short_side = 128",
        "resize_shortside = 128",
        "preprocessing.resize_shortside",
    );
    rejects(
        x,
        "model_type = \"xkd-video\"",
        "model_type = \"xkd-vidoe\"",
        "must be one of",
    );
    rejects(
        x,
        "name = \"xkd-k400-video-student\"",
        "name = \"other\"",
        "must match",
    );
    rejects(
        x,
        "hub_repo = \"avkd-zoo/xkd",
        "hub_repo = \"avkd zoo/xkd",
        "not `owner/name`",
    );
    rejects(
        x,
        "released = true",
        "released = true\nlicence = \"x\"",
        "unknown field",
    );
    rejects(
        x,
        "file = \"*vid_student.pth.tar\"",
        "",
        "needs `url` and `file`",
    );
    rejects(
        x,
        "format = \"pth-zip\"",
        "format = \"pth-zip\"\nsha256 = \"abc\"",
        "64 lowercase hex",
    );
    rejects(
        x,
        "layout = \"xkd-backbone\"",
        "layout = \"x\"",
        "unknown variant",
    );
    rejects(
        x,
        "format = \"pth-zip\"",
        "sha256_prefix = \"0123abcd\"",
        "not a pattern",
    );
    rejects(
        x,
        "value = 94.1\nsource = ",
        "value = 94.1\nsourse = ",
        "unknown field `sourse`",
    );
    rejects(x, "value = 94.1\n", "", "no value and no note");
    let c = "ccl-a-ucf51-r2plus1d18.toml";
    rejects(
        c,
        "note = \"Never released",
        "nope = \"Never released",
        "unknown field",
    );
    rejects(c, "depth = 18", "depth = 19", "depth 19");
    assert!(registry::close_names("ccl", &["ccl-a", "xkd"]) == ["ccl-a"]);
}
