//! avkd's PyTorch checkpoint reader: zip and legacy formats, nested dicts, every dtype, strided
//! views, refusal of code-running pickles, and errors (never panics) on damaged files.

mod common;

use avkd::checkpoint::pth::{self, read_checkpoint, read_state_dict, Value};
use candle_core::{DType, Tensor};
use common::*;
use std::path::{Path, PathBuf};

fn exact_eq(a: &Tensor, b: &Tensor) -> bool {
    a.dims() == b.dims()
        && a.dtype() == b.dtype()
        && a.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            == b.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
}

fn assert_same_state_dicts(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    let ka: Vec<&String> = a.iter().map(|(k, _)| k).collect();
    let kb: Vec<&String> = b.iter().map(|(k, _)| k).collect();
    assert_eq!(ka, kb, "keys differ");
    for ((k, x), (_, y)) in a.iter().zip(b) {
        assert!(exact_eq(x, y), "tensor `{k}` differs");
    }
}

/// A fresh scratch directory under the system temp folder.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avkd-pth-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn video_backbone_zip_and_legacy_are_identical() {
    let zip = read_state_dict(
        &fixture_path("xkd/video_backbone/video_backbone.pth.tar"),
        None,
    )
    .unwrap();
    let legacy = read_state_dict(
        &fixture_path("xkd/video_backbone/video_backbone.legacy.pth"),
        None,
    )
    .unwrap();
    assert_eq!(zip.len(), 28);
    assert_same_state_dicts(&zip, &legacy);
    let ck = read_checkpoint(&fixture_path(
        "xkd/video_backbone/video_backbone.legacy.pth",
    ))
    .unwrap();
    assert_eq!(ck.format(), pth::Format::Legacy);
}

#[test]
fn video_backbone_fp16_matches_f32_rounded() {
    let f32s = read_state_dict(
        &fixture_path("xkd/video_backbone/video_backbone.pth.tar"),
        None,
    )
    .unwrap();
    let f16s = read_state_dict(
        &fixture_path("xkd/video_backbone/video_backbone.fp16.pth.tar"),
        None,
    )
    .unwrap();
    assert_eq!(f32s.len(), f16s.len());
    for ((k, a), (k2, b)) in f32s.iter().zip(&f16s) {
        assert_eq!(k, k2);
        if a.dtype() != DType::F32 {
            continue;
        }
        assert_eq!(b.dtype(), DType::F16, "{k}");
        let tol = 1e-3 * max_abs(a).max(1e-12);
        assert_close(k, &b.to_dtype(DType::F32).unwrap(), a, tol);
    }
}

#[test]
fn xkd_net_nested_model_with_aliased_storages() {
    let path = fixture_path("xkd/xkd_net/checkpoint.pth.tar");
    let sd = read_state_dict(&path, Some("model")).unwrap();
    assert_eq!(sd.len(), 978);
    assert!(sd.iter().all(|(k, _)| k.starts_with("module.")));
    // With no key the conventional `model` entry is picked.
    assert_eq!(read_state_dict(&path, None).unwrap().len(), 978);

    let ck = read_checkpoint(&path).unwrap();
    let refs = ck.state_dict_refs(Some("model")).unwrap();
    let mut shared = 0;
    for (i, (ka, ra)) in refs.iter().enumerate() {
        for (kb, rb) in &refs[i + 1..] {
            if ra.storage.key == rb.storage.key {
                shared += 1;
                let a = &sd[i].1;
                let b = &sd.iter().find(|(k, _)| k == kb).unwrap().1;
                if ra.offset == rb.offset && ra.shape == rb.shape && ra.stride == rb.stride {
                    assert!(exact_eq(a, b), "aliased `{ka}` and `{kb}` differ");
                }
            }
        }
    }
    assert!(shared > 0, "the fixture has aliased storages");
    let a = &sd
        .iter()
        .find(|(k, _)| k == "module.vid_student.backbone.cls_token")
        .unwrap()
        .1;
    let b = &sd
        .iter()
        .find(|(k, _)| k == "module.vid_ae.encoder.cls_token")
        .unwrap()
        .1;
    assert!(exact_eq(a, b));
    assert!(matches!(ck.get("epoch"), Some(Value::Int(_))));
    assert!(ck.get("optimizer").is_some());
}

#[test]
fn ccl_student_zip_and_legacy() {
    let zip_path = fixture_path("ccl/r21d_student/save_2.pth");
    let legacy_path = fixture_path("ccl/r21d_student/save_2.legacy.pth");
    let zip = read_state_dict(&zip_path, Some("state_dict")).unwrap();
    let legacy = read_state_dict(&legacy_path, Some("state_dict")).unwrap();
    assert_eq!(zip.len(), 146);
    assert_same_state_dicts(&zip, &legacy);
    let nbt = zip
        .iter()
        .find(|(k, _)| k.ends_with("num_batches_tracked"))
        .expect("num_batches_tracked");
    assert_eq!(nbt.1.dtype(), DType::I64);
    assert_eq!(nbt.1.rank(), 0);
    // None picks `state_dict`.
    assert_eq!(read_state_dict(&zip_path, None).unwrap().len(), 146);
    for p in [&zip_path, &legacy_path] {
        let ck = read_checkpoint(p).unwrap();
        assert_eq!(ck.get("epoch"), Some(&Value::Int(2)));
        assert_eq!(ck.get("arch").and_then(Value::as_str), Some("r21d-18"));
        assert!(ck.get("scheduler").is_some());
        assert!(ck.all_tensors().len() >= 146);
    }
}

#[test]
fn zip64_trailer_file_reads_directly() {
    let sd = read_state_dict(
        &fixture_path("xkd/finetune_step/model_init_eval_names.pth"),
        None,
    )
    .unwrap();
    assert_eq!(sd.len(), 30);
    assert_eq!(sd[0].0, "cls_token");
}

#[test]
fn malicious_pickle_is_refused_and_runs_nothing() {
    let markers = [
        std::env::temp_dir().join("avkd_pwned"),
        PathBuf::from("/tmp/avkd_pwned"),
    ];
    for m in &markers {
        let _ = std::fs::remove_file(m);
    }
    let path = fixture_path("ccl/malicious_pickle/malicious.pth");
    for result in [
        read_state_dict(&path, None).map(|_| ()),
        read_state_dict(&path, Some("state_dict")).map(|_| ()),
        read_checkpoint(&path).map(|_| ()),
    ] {
        let err = result
            .expect_err("the malicious pickle must be refused")
            .to_string();
        assert!(err.contains("posix.system"), "{err}");
        assert!(err.contains("refusing"), "{err}");
        assert!(err.contains("malicious.pth"), "{err}");
    }
    for m in &markers {
        assert!(!m.exists(), "{} was created", m.display());
    }
}

#[test]
fn missing_key_is_a_clear_error() {
    let path = fixture_path("ccl/r21d_student/save_2.pth");
    let err = read_state_dict(&path, Some("model.student"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.student") && err.contains("save_2.pth"),
        "{err}"
    );
    let err = read_state_dict(&path, Some("epoch"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a dict"), "{err}");
}

// ---- a hand-written legacy file: protocol 4 opcodes, every integer dtype, strided views ----

/// Minimal pickle writer for the synthetic checkpoint.
struct P(Vec<u8>);

impl P {
    fn new(proto: u8) -> Self {
        P(vec![0x80, proto])
    }
    fn op(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.0.push(0x8c);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, v: i32) -> &mut Self {
        self.0.push(b'J');
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn global(&mut self, m: &str, n: &str) -> &mut Self {
        self.s(m).s(n).op(0x93).op(0x94)
    }
    fn ints(&mut self, v: &[i32]) -> &mut Self {
        self.op(b'(');
        for &x in v {
            self.int(x);
        }
        self.op(b't')
    }
    fn tensor(
        &mut self,
        ty: &str,
        key: &str,
        numel: i32,
        off: i32,
        size: &[i32],
        stride: &[i32],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.op(b'(')
            .s("storage")
            .global("torch", ty)
            .s(key)
            .s("cpu")
            .int(numel)
            .op(b'N')
            .op(b't')
            .op(b'Q');
        self.int(off)
            .ints(size)
            .ints(stride)
            .op(0x89)
            .op(b'}')
            .op(b't')
            .op(b'R')
            .op(0x94)
    }
    fn done(&mut self) -> Vec<u8> {
        self.op(b'.');
        std::mem::take(&mut self.0)
    }
}

/// (storage key, storage type, raw bytes) in file order.
fn legacy_file(main: Vec<u8>, storages: &[(&str, usize, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    // magic number 0x1950a86a20f9469cfc6c as LONG1
    let mut magic = P::new(2);
    magic.op(0x8a).op(10);
    magic
        .0
        .extend_from_slice(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    f.extend(magic.done());
    let mut proto = P::new(2);
    proto.op(b'M').op(0xe9).op(0x03);
    f.extend(proto.done());
    f.extend(
        P::new(2)
            .op(b'}')
            .op(b'(')
            .s("little_endian")
            .op(0x88)
            .op(b'u')
            .done(),
    );
    f.extend(main);
    let mut keys = P::new(2);
    keys.op(b']').op(b'(');
    for (k, _, _) in storages {
        keys.s(k);
    }
    f.extend(keys.op(b'e').done());
    for (_, es, bytes) in storages {
        f.extend_from_slice(&((bytes.len() / es) as u64).to_le_bytes());
        f.extend_from_slice(bytes);
    }
    f
}

fn synthetic_main() -> Vec<u8> {
    let mut p = P::new(4);
    p.op(0x95).0.extend_from_slice(&0u64.to_le_bytes()); // FRAME (length unused)
    p.op(b'}').op(0x94).op(b'(');
    p.s("epoch").int(3);
    p.s("model")
        .op(b'}')
        .op(0x94)
        .op(b'(')
        .s("student")
        .op(b'}')
        .op(0x94)
        .op(b'(');
    p.s("t")
        .tensor("FloatStorage", "0", 12, 0, &[3, 4], &[4, 1]);
    p.s("tt")
        .tensor("FloatStorage", "0", 12, 0, &[4, 3], &[1, 4]);
    p.s("strided")
        .tensor("FloatStorage", "0", 12, 1, &[2, 2], &[4, 1]);
    p.s("offset")
        .tensor("FloatStorage", "0", 12, 10, &[2], &[1]);
    p.s("bcast")
        .tensor("FloatStorage", "0", 12, 0, &[3, 2], &[0, 1]);
    p.s("i32").tensor("IntStorage", "1", 3, 0, &[3], &[1]);
    p.s("bool").tensor("BoolStorage", "2", 2, 0, &[2], &[1]);
    p.s("i8").tensor("CharStorage", "3", 1, 0, &[], &[]);
    // Memo: 0-2 are the three dicts, then the first tensor stores 3 (its global), 4 (the storage
    // type) and 5 (the tensor).
    p.s("again").op(b'h').op(5);
    p.op(b'u').op(b'u').op(b'u');
    p.done()
}

fn synthetic_storages() -> Vec<(&'static str, usize, Vec<u8>)> {
    let f: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let i: Vec<u8> = [-1i32, 7, 100000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    vec![
        ("0", 4, f),
        ("1", 4, i),
        ("2", 1, vec![1, 0]),
        ("3", 1, vec![0xfd]),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn synthetic_protocol4_dtypes_and_views() {
    let dir = scratch("synthetic");
    let path = write(
        &dir,
        "synthetic.pth",
        &legacy_file(synthetic_main(), &synthetic_storages()),
    );
    let ck = read_checkpoint(&path).unwrap();
    assert_eq!(ck.get("epoch"), Some(&Value::Int(3)));
    // The top level is not a state dict and has no conventional entry: a clear error.
    let err = read_state_dict(&path, None).unwrap_err().to_string();
    assert!(err.contains("state_dict") && err.contains("model"), "{err}");
    let sd = read_state_dict(&path, Some("model.student")).unwrap();
    let get = |k: &str| sd.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let names: Vec<&str> = sd.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["t", "tt", "strided", "offset", "bcast", "i32", "bool", "i8", "again"]
    );
    let f = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let t = get("t");
    assert_eq!(f(t.clone()), (0..12).map(|i| i as f32).collect::<Vec<_>>());
    let tt = get("tt");
    assert_eq!(tt.dims(), &[4, 3]);
    assert_eq!(f(tt), f(t.t().unwrap().contiguous().unwrap()));
    assert_eq!(f(get("strided")), vec![1.0, 2.0, 5.0, 6.0]);
    assert_eq!(f(get("offset")), vec![10.0, 11.0]);
    assert_eq!(f(get("bcast")), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    let i = get("i32");
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(i.to_vec1::<i64>().unwrap(), vec![-1, 7, 100000]);
    let b = get("bool");
    assert_eq!(b.dtype(), DType::U8);
    assert_eq!(b.to_vec1::<u8>().unwrap(), vec![1, 0]);
    let i8 = get("i8");
    assert_eq!(i8.dims(), &[] as &[usize]);
    assert_eq!(i8.to_scalar::<i64>().unwrap(), -3);
    assert!(exact_eq(&get("again"), &t));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synthetic_disallowed_globals_are_refused() {
    let dir = scratch("refused");
    for (m, n) in [
        ("builtins", "eval"),
        ("os", "system"),
        ("subprocess", "Popen"),
        ("torch", "load"),
    ] {
        let mut p = P::new(4);
        p.op(b'}')
            .op(b'(')
            .s("x")
            .global(m, n)
            .s("1+1")
            .op(0x85)
            .op(b'R')
            .op(b'u');
        let path = write(&dir, "bad.pth", &legacy_file(p.done(), &[]));
        let err = read_checkpoint(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{m}.{n}`")) && err.contains("not data"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strided_view_past_the_storage_is_an_error() {
    let dir = scratch("oob");
    let mut p = P::new(2);
    p.op(b'}')
        .op(b'(')
        .s("w")
        .tensor("FloatStorage", "0", 12, 0, &[3, 4], &[5, 1])
        .op(b'u');
    let path = write(
        &dir,
        "oob.pth",
        &legacy_file(p.done(), &synthetic_storages()[..1]),
    );
    let err = read_state_dict(&path, None).unwrap_err().to_string();
    assert!(err.contains("`w`") && err.contains("storage `0`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- damaged files ----

fn read_all(path: &Path) -> candle_core::Result<usize> {
    let ck = read_checkpoint(path)?;
    let mut n = 0;
    for (name, t) in ck.all_tensors() {
        ck.tensor(&name, t)?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn truncated_files_are_errors() {
    let dir = scratch("truncated");
    for rel in [
        "xkd/video_backbone/video_backbone.pth.tar",
        "xkd/video_backbone/video_backbone.legacy.pth",
        "ccl/r21d_student/save_2.legacy.pth",
    ] {
        let bytes = std::fs::read(fixture_path(rel)).unwrap();
        let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
        for i in 0..50 {
            let cut = i * bytes.len() / 50 + (i * 7919) % 97;
            let cut = cut.min(bytes.len() - 1);
            let path = write(&dir, name, &bytes[..cut]);
            let err = read_all(&path).expect_err(&format!("{rel} cut at {cut} must fail"));
            assert!(err.to_string().contains(name), "{err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupted_files_never_panic() {
    let dir = scratch("corrupt");
    let mut rng: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for rel in [
        "xkd/video_backbone/video_backbone.pth.tar",
        "xkd/video_backbone/video_backbone.legacy.pth",
        "ccl/r21d_student/save_2.pth",
    ] {
        let bytes = std::fs::read(fixture_path(rel)).unwrap();
        // Flip bits mostly in the pickle / headers / directory, where structure lives.
        let hot = bytes.len().min(40_000);
        let mut errors = 0;
        for i in 0..150 {
            let mut b = bytes.clone();
            for _ in 0..(1 + i % 4) {
                let at = if i % 3 == 0 {
                    (next() as usize) % b.len()
                } else if i % 3 == 1 {
                    b.len() - 1 - (next() as usize) % hot.min(3000)
                } else {
                    (next() as usize) % hot
                };
                b[at] ^= 1 << (next() % 8);
            }
            let path = write(&dir, "flipped.pth", &b);
            if read_all(&path).is_err() {
                errors += 1;
            }
            let _ = read_state_dict(&path, None);
        }
        assert!(errors > 0, "{rel}: no corruption was detected at all");
    }
    // Garbage and empty files.
    for bytes in [
        &b""[..],
        b"PK\x03\x04",
        b"\x80\x02",
        b"hello world",
        &[0x80, 0x04, 0x95, 0xff],
    ] {
        let path = write(&dir, "garbage.pth", bytes);
        assert!(read_state_dict(&path, None).is_err());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
