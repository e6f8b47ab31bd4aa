//! Teacher features for distillation: the official CCL release layout
//! (`audiocnn14embed512_features/<Class>/<video>.npy`), written here file by file in NumPy's format,
//! and avkd's own feature store, read through `TeacherFeatures`; every malformed file is refused
//! with an error naming it.

use avkd::data::feature_store::{
    read_index, shard_name, FeatureSource, FeatureStoreWriter, Segmenting, INDEX_FILE,
};
use avkd::data::npy::{parse_npy_vector, read_npy_vector};
use avkd::data::teacher_features::{TeacherFeatures, CCL_RELEASE_DIR};
use std::path::{Path, PathBuf};

/// A `.npy` file: magic, version, header length, the dict padded with spaces to a multiple of 64
/// and ended by a newline (as numpy writes it), then `data`.
fn npy_bytes(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let len_bytes = if version == 1 { 2 } else { 4 };
    let preamble = 8 + len_bytes;
    let mut header = dict.to_string();
    while !(preamble + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn f4(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

fn vector(seed: f32) -> Vec<f32> {
    (0..512)
        .map(|i| ((i as f32 * 0.37 + seed).sin()).max(0.0))
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The release layout: a parent with the stray macOS entry beside the feature folder, two classes,
/// each kind of valid file, and AppleDouble `._` files inside.
fn write_release(parent: &Path) -> PathBuf {
    let root = parent.join(CCL_RELEASE_DIR);
    write(
        &parent.join(format!("._{CCL_RELEASE_DIR}")),
        b"\x00\x05\x16\x07junk",
    );
    let a = root.join("ApplyEyeMakeup");
    let b = root.join("HandstandPushups");
    write(
        &a.join("v_ApplyEyeMakeup_g01_c01.npy"),
        &npy_bytes(1, &dict("<f4", false, "(512,)"), &f4(&vector(0.0))),
    );
    write(
        &a.join("v_ApplyEyeMakeup_g01_c02.npy"),
        &npy_bytes(1, &dict("<f4", false, "(1, 512)"), &f4(&vector(1.0))),
    );
    write(
        &a.join("._v_ApplyEyeMakeup_g01_c01.npy"),
        b"\x00\x05\x16\x07 AppleDouble",
    );
    // A zero vector: kept as is (the losses treat it as no audio, as the official filter does).
    write(
        &b.join("v_HandStandPushups_g01_c01.npy"),
        &npy_bytes(1, &dict("<f4", false, "(512,)"), &f4(&[0.0; 512])),
    );
    let f8: Vec<u8> = vector(2.0)
        .iter()
        .flat_map(|&v| (v as f64).to_le_bytes())
        .collect();
    write(
        &b.join("v_HandStandPushups_g01_c02.npy"),
        &npy_bytes(2, &dict("<f8", false, "(512,)"), &f8),
    );
    write(
        &b.join("v_HandStandPushups_g01_c03.npy"),
        &npy_bytes(3, &dict("<f4", false, "(512,)"), &f4(&vector(3.0))),
    );
    root
}

#[test]
fn release_layout_is_read_from_its_folder_or_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = write_release(tmp.path());
    for path in [tmp.path().to_path_buf(), root.clone()] {
        let t = TeacherFeatures::open(&path).unwrap();
        assert_eq!((t.len(), t.dim()), (5, 512), "{}", t.describe());
        let d = t.describe();
        assert!(
            d.contains("CCL release layout") && d.contains("1 all-zero"),
            "{d}"
        );
        // Listed as the split files write it: class folder + file stem, any extension.
        let got = t
            .get(Path::new("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"))
            .unwrap();
        assert_eq!(got, vector(0.0).as_slice());
        // (1, D) is read as (D,); <f8 is converted to f32.
        assert_eq!(
            t.get(Path::new("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi"))
                .unwrap(),
            vector(1.0).as_slice()
        );
        let f8 = t
            .get(Path::new("HandstandPushups/v_HandStandPushups_g01_c02.avi"))
            .unwrap();
        assert_eq!(f8, vector(2.0).as_slice());
        // ASCII case differences between the list and the files are a fallback match.
        assert!(t
            .get(Path::new("handstandpushups/V_HANDSTANDPUSHUPS_g01_c03.avi"))
            .is_some());
        // A zero vector is kept; a missing file is None (the official loader's zero vector).
        let zero = t
            .get(Path::new("HandstandPushups/v_HandStandPushups_g01_c01.avi"))
            .unwrap();
        assert!(zero.iter().all(|&v| v == 0.0));
        assert!(t
            .get(Path::new("ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c09.avi"))
            .is_none());
    }
}

/// The error of opening a release holding one good file and `bad` (written as `Bad/v_bad.npy`).
fn open_error(bad: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join(CCL_RELEASE_DIR);
    // `Able` sorts before `Bad`: the good file is read first and sets the dimension.
    write(
        &root.join("Able/v_good.npy"),
        &npy_bytes(1, &dict("<f4", false, "(512,)"), &f4(&vector(0.0))),
    );
    write(&root.join("Bad/v_bad.npy"), bad);
    match TeacherFeatures::open(tmp.path()) {
        Ok(_) => panic!("a release with a bad file was accepted"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("v_bad.npy"), "the error names the file: {e}");
            e
        }
    }
}

#[test]
fn malformed_files_are_refused_naming_the_file() {
    let good = f4(&vector(0.0));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "corrupt header",
            npy_bytes(1, "{'descr': '<f4', 'fortran_order': Fals", &good),
            "not a dict literal",
        ),
        (
            "truncated data",
            npy_bytes(1, &dict("<f4", false, "(512,)"), &good[..1000]),
            "truncated",
        ),
        (
            "header longer than the file",
            npy_bytes(1, &dict("<f4", false, "(512,)"), &good)[..40].to_vec(),
            "truncated",
        ),
        (
            "fortran order",
            npy_bytes(1, &dict("<f4", true, "(512,)"), &good),
            "fortran_order",
        ),
        (
            "big endian",
            npy_bytes(1, &dict(">f4", false, "(512,)"), &good),
            "big-endian",
        ),
        (
            "object dtype",
            npy_bytes(1, &dict("|O", false, "(512,)"), &good),
            "object",
        ),
        (
            "not a vector",
            npy_bytes(1, &dict("<f4", false, "(2, 256)"), &good),
            "not a feature vector",
        ),
        (
            "trailing bytes",
            npy_bytes(1, &dict("<f4", false, "(256,)"), &good),
            "corrupt",
        ),
        ("not npy", b"PK\x03\x04 a zip".to_vec(), "magic"),
        (
            "another dim",
            npy_bytes(1, &dict("<f4", false, "(256,)"), &good[..1024]),
            "expected 512 values",
        ),
    ];
    for (what, bytes, needle) in cases {
        let e = open_error(&bytes);
        assert!(e.contains(needle), "{what}: `{needle}` not in: {e}");
    }
}

#[test]
fn a_huge_claimed_shape_allocates_nothing() {
    // Four trillion floats announced, eight bytes present: refused from the sizes alone.
    let bytes = npy_bytes(1, &dict("<f4", false, "(4000000000000,)"), &[0u8; 8]);
    let e = parse_npy_vector(&bytes, "huge.npy")
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.npy") && e.contains("truncated"), "{e}");
    let e = parse_npy_vector(
        &npy_bytes(1, &dict("<f4", false, "(99999999999999999999999,)"), &[]),
        "overflow.npy",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("overflow.npy"), "{e}");
    let e = read_npy_vector(Path::new("/nonexistent/x.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.npy"), "{e}");
}

fn source(dim: usize) -> FeatureSource {
    FeatureSource {
        model: "test-model".into(),
        model_type: "panns-cnn14".into(),
        model_sha256: "00".repeat(32),
        modality: "audio".into(),
        dim,
        segmenting: Segmenting::WholeTrack,
        segmenting_text: Segmenting::WholeTrack.describe(),
        reduce: "mean".into(),
        per_window: true,
        sample_rate: Some(32000),
        padding: None,
    }
}

#[test]
fn avkd_feature_store_is_read_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feats");
    let mut w = FeatureStoreWriter::open(&dir, source(4), serde_json::json!({}), 2).unwrap();
    w.add(
        "A/v_A_g01_c01",
        vec![1., 2., 3., 4.],
        Some(vec![vec![1., 2., 3., 4.]]),
        false,
    )
    .unwrap();
    w.add(
        "A/v_A_g01_c02",
        vec![0.5; 4],
        Some(vec![vec![0.; 4], vec![1.; 4]]),
        true,
    )
    .unwrap();
    w.add("B/v_B_g01_c01", vec![0.; 4], Some(vec![vec![0.; 4]]), false)
        .unwrap();
    w.add_no_audio("B/v_B_g01_c02");
    w.add_failed("B/v_B_g01_c03", "cannot read");
    // A feature of the wrong length is refused before anything is written.
    let e = w
        .add("C/x", vec![1.0; 3], Some(vec![vec![1.0; 3]]), false)
        .unwrap_err();
    assert!(e.to_string().contains("expected 4 values"), "{e}");
    let index = w.finish().unwrap();
    assert_eq!(index.videos.len(), 3);
    assert_eq!(index.videos["A/v_A_g01_c01"], shard_name(0));
    assert_eq!(index.videos["B/v_B_g01_c01"], shard_name(1));
    assert!(index.padded.contains("A/v_A_g01_c02"));
    assert_eq!(read_index(&dir).unwrap(), index);

    let t = TeacherFeatures::open(&dir).unwrap();
    assert_eq!((t.len(), t.dim()), (3, 4));
    assert_eq!(
        t.get(Path::new("A/v_A_g01_c01.avi")).unwrap(),
        &[1., 2., 3., 4.]
    );
    assert!(t
        .get(Path::new("B/v_B_g01_c01.avi"))
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
    assert!(
        t.get(Path::new("B/v_B_g01_c02.avi")).is_none(),
        "no audio: none"
    );
    assert!(
        t.get(Path::new("B/v_B_g01_c03.avi")).is_none(),
        "failed: none"
    );
    let d = t.describe();
    assert!(
        d.contains("avkd feature store") && d.contains("1 without audio"),
        "{d}"
    );

    // The store refuses a rerun with other weights, naming the field.
    let mut other = source(4);
    other.model_sha256 = "11".repeat(32);
    let e = FeatureStoreWriter::open(&dir, other, serde_json::json!({}), 2)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model_sha256") && e.contains(INDEX_FILE), "{e}");

    // A shard the index names but that is gone, and an index of another format.
    std::fs::remove_file(dir.join(shard_name(1))).unwrap();
    let e = TeacherFeatures::open(&dir).err().unwrap().to_string();
    assert!(e.contains(&shard_name(1)), "{e}");
    let text = std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
    std::fs::write(
        dir.join(INDEX_FILE),
        text.replace("\"avkd-features\"", "\"something-else\""),
    )
    .unwrap();
    let e = TeacherFeatures::open(&dir).err().unwrap().to_string();
    assert!(
        e.contains("`format`") && e.contains("something-else"),
        "{e}"
    );
}

#[test]
fn a_folder_that_is_not_a_store_is_not_written_into() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let e = FeatureStoreWriter::open(tmp.path(), source(4), serde_json::json!({}), 2)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("notes.txt") && e.contains("not an avkd feature store"),
        "{e}"
    );
    let e = TeacherFeatures::open(tmp.path()).err().unwrap().to_string();
    assert!(e.contains("no features found"), "{e}");
}
