//! The pre-training lists: Kinetics CSVs and AudioSet segment lists, on small lists and files made
//! here, in every accepted layout and naming, with their labels and their missing videos.

use avkd::data::media::resolve_media;
use avkd::data::splits::{audioset, kinetics};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("data_pretrain_lists")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An empty stand-in for a video file: the lists only look for files, they never decode them.
fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"not decoded here").unwrap();
}

#[test]
fn kinetics_lists_find_their_videos_and_count_the_missing() {
    let dir = scratch("kinetics");
    let root = dir.join("videos");
    touch(&root.join("abseiling/aaa_000001_000011.mp4"));
    touch(&root.join("passing_American_football_(in_game)/bbb_000040_000050.avi"));
    touch(&root.join("train/zumba/ccc_000000_000010.mkv"));
    std::fs::create_dir_all(root.join("abseiling/ddd_000005_000015")).unwrap(); // a frame folder
    let csv = dir.join("train.csv");
    std::fs::write(
        &csv,
        "label,youtube_id,time_start,time_end,split,is_cc\r\n\
         abseiling,aaa,1,11,train,0\r\n\
         \"passing American football (in game)\",bbb,40,50,train,0\r\n\
         zumba,ccc,0.0,10,train,1\r\n\
         abseiling,ddd,5,15,train,0\r\n\
         zumba,eee,3,13,train,0\r\n",
    )
    .unwrap();
    let list = kinetics(&csv, &root).unwrap();
    assert_eq!(
        list.classes,
        ["abseiling", "passing American football (in game)", "zumba"]
    );
    let found: Vec<(String, Vec<usize>)> = list
        .samples
        .iter()
        .map(|s| (s.video.display().to_string(), s.labels.clone()))
        .collect();
    assert_eq!(
        found,
        [
            ("abseiling/aaa_000001_000011.mp4".to_string(), vec![0]),
            (
                "passing_American_football_(in_game)/bbb_000040_000050.avi".into(),
                vec![1]
            ),
            ("train/zumba/ccc_000000_000010.mkv".into(), vec![2]),
            ("abseiling/ddd_000005_000015".into(), vec![0]),
        ]
    );
    for s in &list.samples {
        assert!(
            resolve_media(&root, &s.video).is_some(),
            "{}",
            s.video.display()
        );
    }
    assert_eq!(list.missing.len(), 1);
    assert_eq!(list.missing[0].line, 6);
    assert_eq!(
        list.missing[0].looked_for[0],
        Path::new("zumba/eee_000003_000013")
    );
    assert!(list
        .missing_summary(&root)
        .contains("1 of 5 listed videos are missing"));
    assert_eq!(list.single_label_samples().unwrap().len(), 4);

    std::fs::write(&csv, "label,id,start,end\nabseiling,aaa,1,11\n").unwrap();
    let e = kinetics(&csv, &root).unwrap_err().to_string();
    assert!(e.contains("train.csv:1") && e.contains("youtube_id"), "{e}");
    std::fs::write(
        &csv,
        "label,youtube_id,time_start,time_end\nabseiling,aaa,one,11\n",
    )
    .unwrap();
    let e = kinetics(&csv, &root).unwrap_err().to_string();
    assert!(e.contains("train.csv:2") && e.contains("`one`"), "{e}");
}

#[test]
fn audioset_lists_accept_their_namings_and_labels() {
    let dir = scratch("audioset");
    let root = dir.join("videos");
    touch(&root.join("--PJHxphWEs_30.000_40.000.mp4"));
    touch(&root.join("-0RWZT-miFs_420_430.mkv"));
    touch(&root.join("0xyz.webm"));
    std::fs::create_dir_all(root.join("1abc_0.500_10.500")).unwrap(); // a frame folder
    let csv = dir.join("balanced_train_segments.csv");
    std::fs::write(
        &csv,
        "# Segments csv created Sun Mar  5 10:54:31 2017\n\
         # num_ytids=5, num_segs=5, num_unique_labels=3, num_positive_labels=6\n\
         # YTID, start_seconds, end_seconds, positive_labels\n\
         --PJHxphWEs, 30.000, 40.000, \"/m/09x0r,/t/dd00088\"\n\
         -0RWZT-miFs, 420.000, 430.000, \"/m/03v3yw\"\n\
         0xyz, 0.000, 10.000, \"/m/09x0r\"\n\
         1abc, 0.500, 10.500, \"/m/03v3yw,/m/09x0r\"\n\
         2gone, 10.000, 20.000, \"/m/09x0r\"\n",
    )
    .unwrap();
    let list = audioset(&csv, &root, None).unwrap();
    assert_eq!(list.classes, ["/m/03v3yw", "/m/09x0r", "/t/dd00088"]);
    let videos: Vec<String> = list
        .samples
        .iter()
        .map(|s| s.video.display().to_string())
        .collect();
    assert_eq!(
        videos,
        [
            "--PJHxphWEs_30.000_40.000.mp4",
            "-0RWZT-miFs_420_430.mkv",
            "0xyz.webm",
            "1abc_0.500_10.500"
        ]
    );
    assert_eq!(list.samples[0].labels, [1, 2]);
    assert_eq!(list.samples[3].labels, [0, 1]);
    for s in &list.samples {
        assert!(
            resolve_media(&root, &s.video).is_some(),
            "{}",
            s.video.display()
        );
    }
    assert_eq!((list.missing.len(), list.missing[0].line), (1, 8));
    assert!(list.single_label_samples().is_err());

    let index = dir.join("class_labels_indices.csv");
    std::fs::write(
        &index,
        "index,mid,display_name\n0,/m/09x0r,\"Speech\"\n1,/t/dd00088,\"Gush\"\n2,/m/03v3yw,\"Keys jangling\"\n",
    )
    .unwrap();
    let named = audioset(&csv, &root, Some(&index)).unwrap();
    assert_eq!(named.classes, ["Speech", "Gush", "Keys jangling"]);
    assert_eq!(named.samples[0].labels, [0, 1]);
    std::fs::write(&index, "index,mid,display_name\n0,/m/09x0r,\"Speech\"\n").unwrap();
    let e = audioset(&csv, &root, Some(&index)).unwrap_err().to_string();
    assert!(
        e.contains("balanced_train_segments.csv:4") && e.contains("/t/dd00088"),
        "{e}"
    );
}
