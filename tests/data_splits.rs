//! Split parsers on files in the official formats (UCF101's CRLF lists and HandstandPushups quirk,
//! HMDB51's per-class files with 0/1/2 and trailing spaces, plain lists), their errors, and the
//! resolution of listed videos to files or frame folders on disk.

use avkd::data::media::{resolve_media, VideoMedia};
use avkd::data::splits::{
    hmdb51, hmdb51_classes, load_folds, plain_list, read_class_index, ucf101, ucf51, Fold, Sample,
    SplitFormat, UCF51_CLASSES,
};
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use std::path::{Path, PathBuf};

/// UCF101's `classInd.txt` order (1-based in the file).
const UCF101_CLASSES: &str = "\
    ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching \
    BaseballPitch Basketball BasketballDunk BenchPress Biking Billiards BlowDryHair \
    BlowingCandles BodyWeightSquats Bowling BoxingPunchingBag BoxingSpeedBag BreastStroke \
    BrushingTeeth CleanAndJerk CliffDiving CricketBowling CricketShot CuttingInKitchen \
    Diving Drumming Fencing FieldHockeyPenalty FloorGymnastics FrisbeeCatch FrontCrawl \
    GolfSwing Haircut Hammering HammerThrow HandstandPushups HandstandWalking HeadMassage \
    HighJump HorseRace HorseRiding HulaHoop IceDancing JavelinThrow JugglingBalls \
    JumpingJack JumpRope Kayaking Knitting LongJump Lunges MilitaryParade Mixing \
    MoppingFloor Nunchucks ParallelBars PizzaTossing PlayingCello PlayingDaf PlayingDhol \
    PlayingFlute PlayingGuitar PlayingPiano PlayingSitar PlayingTabla PlayingViolin \
    PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor RopeClimbing \
    Rowing SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving \
    SoccerJuggling SoccerPenalty StillRings SumoWrestling Surfing Swing TableTennisShot \
    TaiChi TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars VolleyballSpiking \
    WalkingWithDog WallPushups WritingOnBoard YoYo";

fn ucf101_classes() -> Vec<&'static str> {
    UCF101_CLASSES.split_whitespace().collect()
}

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("data_splits")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn err_of<T: std::fmt::Debug>(r: candle_core::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// `ucfTrainTestlist/` as the official zip has it: CRLF everywhere, 1-based labels in train lists,
/// none in test lists, `HandstandPushups/v_HandStandPushups_*` paths. Folds 2 and 3 hold other
/// groups of the same classes.
fn write_ucf_lists(dir: &Path) {
    let class_ind: String = ucf101_classes()
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {c}\r\n", i + 1))
        .collect();
    write(&dir.join("classInd.txt"), &class_ind);
    for fold in 1..=3u32 {
        let (test_g, train_g) = (1 + 7 * (fold - 1), if fold == 1 { 8 } else { 1 });
        let train = format!(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g{train_g:02}_c01.avi 1\r\n\
             ApplyEyeMakeup/v_ApplyEyeMakeup_g{train_g:02}_c02.avi 1\r\n\
             BaseballPitch/v_BaseballPitch_g{train_g:02}_c01.avi 7\r\n\
             HammerThrow/v_HammerThrow_g{train_g:02}_c01.avi 36\r\n\
             Hammering/v_Hammering_g{train_g:02}_c01.avi 35\r\n\
             HandstandPushups/v_HandStandPushups_g{train_g:02}_c01.avi 37   \r\n\
             YoYo/v_YoYo_g25_c05.avi 101\r\n\r\n"
        );
        let test = format!(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g{test_g:02}_c01.avi\r\n\
             HandstandPushups/v_HandStandPushups_g{test_g:02}_c04.avi\r\n\
             PlayingCello/v_PlayingCello_g{test_g:02}_c02.avi\r\n\
             YoYo/v_YoYo_g{test_g:02}_c01.avi\r\n"
        );
        write(&dir.join(format!("trainlist0{fold}.txt")), &train);
        write(&dir.join(format!("testlist0{fold}.txt")), &test);
    }
}

fn label_of(classes: &[String], name: &str) -> usize {
    classes.iter().position(|c| c == name).unwrap()
}

#[test]
fn ucf101_parses_the_official_formats() {
    let dir = scratch("ucf101");
    write_ucf_lists(&dir);
    let split = ucf101(&dir, 1).unwrap();
    assert_eq!(split.classes.len(), 101);
    assert_eq!(split.classes[0], "ApplyEyeMakeup");
    assert_eq!(split.classes[34], "Hammering");
    assert_eq!(split.classes[100], "YoYo");
    assert_eq!(split.fold, Some(1));
    assert_eq!(split.train.len(), 7);
    assert_eq!(split.test.len(), 4);
    // The file name says HandStand, the folder and classInd HandstandPushups (label 37, 0-based 36).
    assert_eq!(
        split.train[5],
        Sample {
            video: PathBuf::from("HandstandPushups/v_HandStandPushups_g08_c01.avi"),
            label: 36
        }
    );
    assert_eq!(split.train[3].label, 35); // HammerThrow
    assert_eq!(split.train[4].label, 34); // Hammering
                                          // Test labels come from the folder.
    let test_labels: Vec<usize> = split.test.iter().map(|s| s.label).collect();
    assert_eq!(test_labels, vec![0, 36, 58, 100]);
    assert_eq!(
        split.test[1].video,
        PathBuf::from("HandstandPushups/v_HandStandPushups_g01_c04.avi")
    );
}

#[test]
fn ucf101_all_folds_are_distinct() {
    let dir = scratch("ucf101_folds");
    write_ucf_lists(&dir);
    let folds = load_folds(SplitFormat::Ucf101, &dir, Fold::All).unwrap();
    assert_eq!(folds.len(), 3);
    assert_eq!(
        folds.iter().map(|s| s.fold).collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)]
    );
    assert_eq!(folds[1].name, "ucf101 fold 2");
    assert!(folds[1].test[0].video.to_str().unwrap().contains("_g08_"));
    assert!(folds[2].test[0].video.to_str().unwrap().contains("_g15_"));
    let one = load_folds(SplitFormat::Ucf101, &dir, "2".parse().unwrap()).unwrap();
    assert_eq!(one, vec![folds[1].clone()]);
    assert!(err_of("4".parse::<Fold>()).contains("fold must be 1, 2, 3 or all"));
    assert!(err_of(ucf101(&dir, 0)).contains("found 0"));
    assert_eq!("ALL".parse::<Fold>().unwrap(), Fold::All);
}

#[test]
fn ucf51_keeps_the_audio_classes_in_ccl_order() {
    assert_eq!(UCF51_CLASSES.len(), 51);
    // CCL's order is Python's sorted() of the folder names: byte order.
    let mut sorted = UCF51_CLASSES.to_vec();
    sorted.sort();
    assert_eq!(sorted, UCF51_CLASSES.to_vec());
    for c in UCF51_CLASSES {
        assert!(ucf101_classes().contains(&c), "{c} is not a UCF101 class");
    }
    let dir = scratch("ucf51");
    write_ucf_lists(&dir);
    let split = ucf51(&dir, 1).unwrap();
    assert_eq!(split.classes.len(), 51);
    assert_eq!(split.name, "ucf51 fold 1");
    let names: Vec<(&str, usize)> = split
        .train
        .iter()
        .map(|s| (s.video.to_str().unwrap(), s.label))
        .collect();
    // BaseballPitch and YoYo have no audio: dropped. HammerThrow before Hammering, unlike classInd.
    assert_eq!(
        names,
        vec![
            ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
            ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi", 0),
            ("HammerThrow/v_HammerThrow_g08_c01.avi", 23),
            ("Hammering/v_Hammering_g08_c01.avi", 24),
            ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 25),
        ]
    );
    let test: Vec<usize> = split.test.iter().map(|s| s.label).collect();
    assert_eq!(test, vec![0, 25, label_of(&split.classes, "PlayingCello")]);
    assert_eq!(split.classes[33], "PlayingCello");

    // A class index without the audio classes cannot give UCF51.
    let small = scratch("ucf51_small");
    write(
        &small.join("classInd.txt"),
        "1 ApplyEyeMakeup\r\n2 YoYo\r\n",
    );
    write(
        &small.join("trainlist01.txt"),
        "YoYo/v_YoYo_g08_c01.avi 2\r\n",
    );
    write(&small.join("testlist01.txt"), "YoYo/v_YoYo_g01_c01.avi\r\n");
    let e = err_of(ucf51(&small, 1));
    assert!(e.contains("ApplyLipstick"), "{e}");
}

#[test]
fn ucf101_errors_name_the_file_and_line() {
    let dir = scratch("ucf101_errors");
    write_ucf_lists(&dir);
    std::fs::remove_file(dir.join("testlist02.txt")).unwrap();
    let e = err_of(ucf101(&dir, 2));
    assert!(
        e.contains("missing UCF101 test list file") && e.contains("testlist02.txt"),
        "{e}"
    );

    write(
        &dir.join("trainlist03.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\r\nMoonWalking/v_MoonWalking_g01_c01.avi 5\r\n",
    );
    let e = err_of(ucf101(&dir, 3));
    assert!(
        e.contains("trainlist03.txt:2") && e.contains("`MoonWalking`"),
        "{e}"
    );

    write(
        &dir.join("trainlist03.txt"),
        "\r\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1 extra\r\n",
    );
    let e = err_of(ucf101(&dir, 3));
    assert!(
        e.contains("trainlist03.txt:2: expected `<Class>/<video>.avi <label>`"),
        "{e}"
    );

    write(
        &dir.join("trainlist03.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n",
    );
    let e = err_of(ucf101(&dir, 3));
    assert!(e.contains("trainlist03.txt:1"), "{e}");

    write(
        &dir.join("trainlist03.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 2\r\n",
    );
    let e = err_of(ucf101(&dir, 3));
    assert!(
        e.contains("trainlist03.txt:1: label 2 disagrees with the folder `ApplyEyeMakeup`"),
        "{e}"
    );

    write(
        &dir.join("trainlist03.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi one\r\n",
    );
    let e = err_of(ucf101(&dir, 3));
    assert!(
        e.contains("trainlist03.txt:1: expected a 1-based class label") && e.contains("`one`"),
        "{e}"
    );

    write(
        &dir.join("trainlist03.txt"),
        "v_ApplyEyeMakeup_g01_c01.avi 1\r\n",
    );
    let e = err_of(ucf101(&dir, 3));
    assert!(
        e.contains("trainlist03.txt:1: expected a path `<Class>/<video>`"),
        "{e}"
    );

    write(
        &dir.join("classInd.txt"),
        "1 ApplyEyeMakeup\r\n3 ApplyLipstick\r\n",
    );
    let e = err_of(read_class_index(&dir.join("classInd.txt")));
    assert!(
        e.contains("classInd.txt:2: expected class index 2") && e.contains("`3`"),
        "{e}"
    );

    write(
        &dir.join("classInd.txt"),
        "1 ApplyEyeMakeup\r\n2 ApplyEyeMakeup\r\n",
    );
    let e = err_of(read_class_index(&dir.join("classInd.txt")));
    assert!(
        e.contains("classInd.txt:2: class `ApplyEyeMakeup` is listed twice"),
        "{e}"
    );

    std::fs::remove_file(dir.join("classInd.txt")).unwrap();
    let e = err_of(ucf101(&dir, 1));
    assert!(
        e.contains("missing UCF101 class index file") && e.contains("classInd.txt"),
        "{e}"
    );
}

/// `testTrainMulti_7030_splits/` as the official archive has it: `<video>.avi <id> ` with a trailing
/// space, ids 0 (unused), 1 (train), 2 (test), one file per class and fold.
fn write_hmdb_lists(dir: &Path) {
    let classes = ["kick_ball", "climb_stairs", "brush_hair", "climb", "kick"];
    for (k, class) in classes.iter().enumerate() {
        for fold in 1..=3 {
            let mut text = String::new();
            for v in 0..6 {
                // Rotate which video is test/unused per fold, like the official files do.
                let id = [1, 1, 2, 1, 0, 2][(v + fold + k) % 6];
                text.push_str(&format!(
                    "{class}_video_{v}_f_nm_np1_fr_med_{v}.avi {id} \n"
                ));
            }
            write(&dir.join(format!("{class}_test_split{fold}.txt")), &text);
        }
    }
}

#[test]
fn hmdb51_parses_the_official_formats() {
    let dir = scratch("hmdb51");
    write_hmdb_lists(&dir);
    // An unrelated file in the folder is ignored.
    write(&dir.join("README"), "HMDB51 splits\n");
    let classes = hmdb51_classes(&dir).unwrap();
    assert_eq!(
        classes,
        vec!["brush_hair", "climb", "climb_stairs", "kick", "kick_ball"]
    );
    let folds = load_folds(SplitFormat::Hmdb51, &dir, Fold::All).unwrap();
    for (f, split) in folds.iter().enumerate() {
        assert_eq!(split.fold, Some(f as u8 + 1));
        // Per class and fold: 3 train, 2 test, 1 unused.
        assert_eq!(split.train.len(), 15);
        assert_eq!(split.test.len(), 10);
        for s in split.samples() {
            let class = &split.classes[s.label];
            assert!(
                s.video.starts_with(class),
                "{} under {class}",
                s.video.display()
            );
            assert_eq!(s.video.components().count(), 2);
        }
    }
    // climb (label 1) fold 1: ids by (v + 1 + 3) % 6 -> v0:id[4]=0, v1:id[5]=2, v2:id[0]=1,...
    let climb_test: Vec<&Path> = folds[0]
        .test
        .iter()
        .filter(|s| s.label == 1)
        .map(|s| s.video.as_path())
        .collect();
    assert_eq!(
        climb_test,
        vec![
            Path::new("climb/climb_video_1_f_nm_np1_fr_med_1.avi"),
            Path::new("climb/climb_video_4_f_nm_np1_fr_med_4.avi"),
        ]
    );
    // Unused (id 0) videos are in neither list.
    let unused = Path::new("climb/climb_video_0_f_nm_np1_fr_med_0.avi");
    assert!(!folds[0].samples().any(|s| s.video == unused));
    assert_ne!(folds[0].test, folds[1].test);
}

#[test]
fn hmdb51_errors_name_the_file_and_line() {
    let empty = scratch("hmdb51_empty");
    let e = err_of(hmdb51(&empty, 1));
    assert!(e.contains("no HMDB51 split files"), "{e}");

    let dir = scratch("hmdb51_errors");
    write_hmdb_lists(&dir);
    std::fs::remove_file(dir.join("kick_test_split2.txt")).unwrap();
    assert!(hmdb51(&dir, 1).is_ok());
    let e = err_of(hmdb51(&dir, 2));
    assert!(
        e.contains("missing HMDB51 split file") && e.contains("kick_test_split2.txt"),
        "{e}"
    );

    write(&dir.join("climb_test_split3.txt"), "a.avi 1 \nb.avi 3 \n");
    let e = err_of(hmdb51(&dir, 3));
    assert!(
        e.contains(
            "climb_test_split3.txt:2: expected 0 (unused), 1 (train) or 2 (test), found `3`"
        ),
        "{e}"
    );
    write(&dir.join("climb_test_split3.txt"), "a.avi 1 \nb.avi\n");
    let e = err_of(hmdb51(&dir, 3));
    assert!(
        e.contains("climb_test_split3.txt:2: expected `<video>.avi <0|1|2>`"),
        "{e}"
    );
    write(
        &dir.join("climb_test_split3.txt"),
        "a.avi 1 \nclimb/b.avi 1\n",
    );
    let e = err_of(hmdb51(&dir, 3));
    assert!(
        e.contains("climb_test_split3.txt:2: expected a bare file name"),
        "{e}"
    );
}

/// A 3-class HMDB51-format dataset with invented class names, in the official layout: frame
/// folders under `hmdb51/<class>/<video>/` and the per-class split files in `split_dir`.
fn write_hmdb_subset(root: &Path, split_dir: &Path) {
    for class in ["wave_flag", "juggle_torch", "pour_tea"] {
        for fold in 1..=3 {
            let mut text = String::new();
            for v in 0..3 {
                let id = [1, 2, 0][(v + fold) % 3];
                text.push_str(&format!("{class}_clip_{v}.avi {id} \n"));
                write(
                    &root.join(format!("hmdb51/{class}/{class}_clip_{v}/img_00001.jpg")),
                    "jpg",
                );
            }
            write(
                &split_dir.join(format!("{class}_test_split{fold}.txt")),
                &text,
            );
        }
    }
}

#[test]
fn hmdb51_split_folder_is_found_for_any_classes() {
    // Side by side with the videos, as the official archives unpack.
    let root = scratch("hmdb51_subset");
    write_hmdb_subset(&root, &root.join("testTrainMulti_7030_splits"));
    let spec = DatasetSpec::new(DatasetKind::Hmdb51, &root, Fold::All);
    let splits = spec.load().unwrap();
    assert_eq!(splits.len(), 3);
    assert_eq!(spec.video_root(), root.join("hmdb51"));
    for split in &splits {
        assert_eq!(split.classes, ["juggle_torch", "pour_tea", "wave_flag"]);
        assert_eq!((split.train.len(), split.test.len()), (3, 3));
        split.require_videos(&spec.video_root()).unwrap();
    }
    assert!(splits[0].train.contains(&Sample {
        video: PathBuf::from("pour_tea/pour_tea_clip_2.avi"),
        label: 1,
    }));

    // One level further down (the .rar's `test_train_splits/testTrainMulti_7030_splits/`), under
    // any folder name.
    let root = scratch("hmdb51_subset_nested");
    write_hmdb_subset(&root, &root.join("lists/fold_files"));
    let spec = DatasetSpec::new(DatasetKind::Hmdb51, &root, Fold::One(2));
    let splits = spec.load().unwrap();
    assert_eq!(splits[0].name, "hmdb51 fold 2");
    assert_eq!(splits[0].num_classes(), 3);

    // In the root itself.
    let root = scratch("hmdb51_subset_flat");
    write_hmdb_subset(&root, &root);
    let spec = DatasetSpec::new(DatasetKind::Hmdb51, &root, Fold::One(1));
    assert_eq!(spec.load().unwrap()[0].num_classes(), 3);
}

#[test]
fn hmdb51_missing_split_folder_names_where_it_looked() {
    let root = scratch("hmdb51_no_splits");
    write(
        &root.join("hmdb51/pour_tea/pour_tea_clip_0/img_00001.jpg"),
        "jpg",
    );
    // Split files of another format do not count.
    write(&root.join("lists/classInd.txt"), "1 pour_tea\n");
    write(&root.join("lists/pour_tea_test_split2.txt"), "a.avi 1\n");
    let e = err_of(DatasetSpec::new(DatasetKind::Hmdb51, &root, Fold::One(1)).load());
    assert!(e.contains("`*_test_split1.txt`"), "{e}");
    for dir in [
        root.clone(),
        root.join("hmdb51"),
        root.join("lists"),
        root.join("hmdb51/pour_tea"),
    ] {
        assert!(
            e.contains(&format!("{},", dir.display()))
                || e.contains(&format!("{};", dir.display())),
            "{} not named: {e}",
            dir.display()
        );
    }
    assert!(e.contains("--splits"), "{e}");

    // Two candidate folders at the same depth: neither is guessed.
    write(&root.join("a/kick_test_split1.txt"), "x.avi 1\n");
    write(&root.join("b/kick_test_split1.txt"), "x.avi 1\n");
    let e = err_of(DatasetSpec::new(DatasetKind::Hmdb51, &root, Fold::One(1)).load());
    assert!(
        e.contains(&root.join("a").display().to_string())
            && e.contains(&root.join("b").display().to_string())
            && e.contains("--splits"),
        "{e}"
    );
}

#[test]
fn plain_lists_with_and_without_classes() {
    let dir = scratch("plain");
    write(&dir.join("train.txt"), "a/x1.mp4 0\nb/x2.mp4 2\r\n\n");
    write(&dir.join("test.txt"), "a/x3 75 0\n");
    let split = plain_list(&dir.join("train.txt"), &dir.join("test.txt"), None).unwrap();
    assert_eq!(split.classes, vec!["0", "1", "2"]);
    assert_eq!(split.fold, None);
    assert_eq!(
        split.train[1],
        Sample {
            video: "b/x2.mp4".into(),
            label: 2
        }
    );
    assert_eq!(
        split.test[0],
        Sample {
            video: "a/x3".into(),
            label: 0
        }
    );

    // A classInd-style classes file (1-based), and labels given by name.
    write(&dir.join("classes.txt"), "1 walk\r\n2 run\r\n3 jump\r\n");
    write(&dir.join("named.txt"), "a/x1.mp4 run\nb\\x2.mp4 2\n");
    let split = plain_list(
        &dir.join("named.txt"),
        &dir.join("test.txt"),
        Some(&dir.join("classes.txt")),
    )
    .unwrap();
    assert_eq!(split.classes, vec!["walk", "run", "jump"]);
    assert_eq!(split.train[0].label, 1);
    assert_eq!(
        split.train[1],
        Sample {
            video: "b/x2.mp4".into(),
            label: 2
        }
    );
    write(&dir.join("bare.txt"), "walk\nrun\n");
    let split = plain_list(
        &dir.join("train.txt"),
        &dir.join("test.txt"),
        Some(&dir.join("bare.txt")),
    );
    let e = err_of(split);
    assert!(e.contains("train.txt:2: expected a label below 2"), "{e}");

    write(&dir.join("bad.txt"), "a/x1.mp4 0\na/x2.mp4\n");
    let e = err_of(plain_list(
        &dir.join("bad.txt"),
        &dir.join("test.txt"),
        None,
    ));
    assert!(e.contains("bad.txt:2: expected `<path> <label>`"), "{e}");
    write(&dir.join("bad.txt"), "a/x1.mp4 walk\n");
    let e = err_of(plain_list(
        &dir.join("bad.txt"),
        &dir.join("test.txt"),
        None,
    ));
    assert!(
        e.contains("bad.txt:1: expected a 0-based integer label, found `walk`"),
        "{e}"
    );
    write(&dir.join("bad.txt"), "a/x1.mp4 swim\n");
    let e = err_of(plain_list(
        &dir.join("bad.txt"),
        &dir.join("test.txt"),
        Some(&dir.join("classes.txt")),
    ));
    assert!(
        e.contains("bad.txt:1: class `swim` is not in the classes file"),
        "{e}"
    );
    write(&dir.join("bad.txt"), "../x1.mp4 0\n");
    let e = err_of(plain_list(
        &dir.join("bad.txt"),
        &dir.join("test.txt"),
        None,
    ));
    assert!(
        e.contains("bad.txt:1: expected a video path relative to the video root"),
        "{e}"
    );
    write(&dir.join("classes.txt"), "0 walk\n2 run\n");
    let e = err_of(plain_list(
        &dir.join("train.txt"),
        &dir.join("test.txt"),
        Some(&dir.join("classes.txt")),
    ));
    assert!(e.contains("classes.txt:2: expected class index 1"), "{e}");
    let e = err_of(plain_list(
        &dir.join("nope.txt"),
        &dir.join("test.txt"),
        None,
    ));
    assert!(
        e.contains("missing video list file") && e.contains("nope.txt"),
        "{e}"
    );
}

#[test]
fn listed_videos_resolve_to_files_or_frame_folders() {
    let root = scratch("media");
    // A video file, a re-encoded .mp4, a frame folder with its audio, a case-normalised copy.
    write(
        &root.join("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"),
        "avi",
    );
    write(
        &root.join("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.mp4"),
        "mp4",
    );
    write(&root.join("Archery/v_Archery_g01_c01/img_00001.jpg"), "jpg");
    write(&root.join("Archery/v_Archery_g01_c01/audio.wav"), "wav");
    write(&root.join("Archery/v_Archery_g01_c02/img_00001.jpg"), "jpg");
    write(&root.join("Archery/v_Archery_g01_c02.wav"), "wav");
    write(
        &root.join("HandStandPushups/v_HandStandPushups_g01_c01.avi"),
        "avi",
    );

    let m = resolve_media(
        &root,
        Path::new("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"),
    )
    .unwrap();
    assert_eq!(
        m.video,
        VideoMedia::File(root.join("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"))
    );
    assert_eq!(m.audio, None);
    let m = resolve_media(
        &root,
        Path::new("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi"),
    )
    .unwrap();
    assert_eq!(
        m.video,
        VideoMedia::File(root.join("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.mp4"))
    );
    let m = resolve_media(&root, Path::new("Archery/v_Archery_g01_c01.avi")).unwrap();
    assert_eq!(
        m.video,
        VideoMedia::Frames(root.join("Archery/v_Archery_g01_c01"))
    );
    assert_eq!(
        m.audio,
        Some(root.join("Archery/v_Archery_g01_c01/audio.wav"))
    );
    let m = resolve_media(&root, Path::new("Archery/v_Archery_g01_c02.avi")).unwrap();
    assert_eq!(m.audio, Some(root.join("Archery/v_Archery_g01_c02.wav")));
    let m = resolve_media(
        &root,
        Path::new("HandstandPushups/v_HandStandPushups_g01_c01.avi"),
    )
    .unwrap();
    assert_eq!(
        m.video,
        VideoMedia::File(root.join("HandStandPushups/v_HandStandPushups_g01_c01.avi"))
    );
    assert!(resolve_media(&root, Path::new("Archery/v_Archery_g02_c01.avi")).is_none());

    // A split over those videos reports the absent ones.
    let lists = scratch("media_lists");
    write(
        &lists.join("classInd.txt"),
        "1 ApplyEyeMakeup\r\n2 Archery\r\n3 HandstandPushups\r\n",
    );
    write(
        &lists.join("trainlist01.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\r\nArchery/v_Archery_g01_c01.avi 2\r\nArchery/v_Archery_g09_c01.avi 2\r\n",
    );
    write(
        &lists.join("testlist01.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi\r\nHandstandPushups/v_HandStandPushups_g01_c01.avi\r\nHandstandPushups/v_HandStandPushups_g01_c09.avi\r\n",
    );
    let split = ucf101(&lists, 1).unwrap();
    let missing = split.missing_videos(&root);
    assert_eq!(
        missing,
        vec![
            PathBuf::from("Archery/v_Archery_g09_c01.avi"),
            PathBuf::from("HandstandPushups/v_HandStandPushups_g01_c09.avi"),
        ]
    );
    let e = err_of(split.require_videos(&root));
    assert!(
        e.contains("2 of 6 listed videos are missing") && e.contains("v_Archery_g09_c01.avi"),
        "{e}"
    );
    let (kept, dropped) = split.without_missing(&root);
    assert_eq!(dropped, missing);
    assert_eq!((kept.train.len(), kept.test.len()), (2, 2));
    kept.require_videos(&root).unwrap();
}
