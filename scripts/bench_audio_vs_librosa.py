#!/usr/bin/env python3
"""Side-by-side benchmark of the audio front end: avkd against librosa on the same machine.

Times, with the same inputs and one thread on both sides:
  xkd_logmel_4s            XKD's log-mel of 4 s at 16 kHz exactly as its reference computes it
                           (librosa.stft n_fft 1024 / hop 143 / reflect padding, |X|^2 + eps,
                           80 Slaney mels precomputed, ln(x + 1.1920929e-7), Kinetics-Sound stats)
  decode_mp3_10s           librosa.load(mp3, sr=None, mono=True)    (soundfile/libsndfile)
  decode_resample_mp3_10s  librosa.load(mp3, sr=16000, mono=True)   (+ soxr 'soxr_hq')
runs `avkd bench audio --json`, and prints the time ratios avkd / librosa.

Needs librosa (pip install librosa); the project's tests do not.
Usage: python3 scripts/bench_audio_vs_librosa.py [--avkd target/release/avkd] [--iters 20]
       [--mp3 tests/fixtures/media/tone1k_10s_44k_stereo.mp3] [--json out.json]
"""
import argparse, json, os, subprocess, sys, time

# One thread for numpy's BLAS too: avkd's audio path is single-threaded (a loader parallelises
# over clips).
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import librosa  # noqa: E402


def time_it(fn, iters):
    fn()
    samples = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return {"median_s": samples[len(samples) // 2], "min_s": samples[0], "iters": iters}


def librosa_timings(mp3, iters):
    # Same signal as avkd's bench: a tone in deterministic noise (the cost does not depend on it).
    rng = np.random.default_rng(0)
    y = (0.3 * np.sin(np.arange(64000) * 0.2) + 0.05 * (rng.random(64000) - 0.5)).astype(np.float32)
    mfb = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=0, fmax=None)

    def logmel():
        x = librosa.stft(y, n_fft=1024, hop_length=143, pad_mode="reflect")
        mel = np.matmul(mfb, np.abs(x) ** 2 + np.finfo(float).eps)
        out = (np.log(mel + np.float32(1.1920929e-07)) - np.float32(-5.3688107)) / np.float32(4.410007)
        return out[None]

    assert logmel().shape == (1, 80, 448)
    return {
        "xkd_logmel_4s": time_it(logmel, iters),
        "decode_mp3_10s": time_it(lambda: librosa.load(mp3, sr=None, mono=True), iters),
        "decode_resample_mp3_10s": time_it(lambda: librosa.load(mp3, sr=16000, mono=True), iters),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avkd", default="target/release/avkd")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--mp3", default="tests/fixtures/media/tone1k_10s_44k_stereo.mp3")
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()
    cmd = [args.avkd, "bench", "audio", "--mp3", args.mp3, "--iters", str(args.iters), "--json"]
    print("running:", " ".join(cmd), file=sys.stderr)
    avkd = {t["name"]: t for t in json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)}
    print(f"running librosa {librosa.__version__}, numpy {np.__version__}", file=sys.stderr)
    ref = librosa_timings(args.mp3, args.iters)
    rows = []
    print(f"{'benchmark':26} {'avkd (ms)':>10} {'librosa (ms)':>13} {'ratio':>7}")
    for name, t in ref.items():
        a = avkd[name]["median_s"]
        rows.append({"name": name, "avkd_s": a, "librosa_s": t["median_s"], "ratio": a / t["median_s"]})
        print(f"{name:26} {1e3 * a:10.2f} {1e3 * t['median_s']:13.2f} {a / t['median_s']:7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"librosa": librosa.__version__, "numpy": np.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
