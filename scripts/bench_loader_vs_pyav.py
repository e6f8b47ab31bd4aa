#!/usr/bin/env python3
"""Clips per second of the Python decoders doing what `avkd bench loader` does, on the same files.

For each video: pick the clip's frame indices (XKD: 32 frames at 8 fps from a random 4-s window;
CCL: 16 consecutive frames), decode them, resize the short side to 112 with PIL bilinear and
centre-crop 112x112, then stack to a float32 [3, T, 112, 112] array normalised with ImageNet
statistics. Two worker processes (the machine's 2 cores), as the Rust loader runs 2 threads.

Sources: `.avi` files through PyAV (and decord, if it is installed), and frame folders (JPEG)
through PIL.

    pip install av pillow numpy [decord]
    avkd bench loader --data DIR --json > rust.json   # makes DIR if absent, prints clips/s
    python3 scripts/bench_loader_vs_pyav.py DIR       # the same clips, Python side
"""

import json
import math
import os
import random
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1, 1)


def xkd_indices(n, fps, rng, frames=32, target_fps=8.0):
    dur = n / fps
    span = frames / target_fps
    start = rng.uniform(0, max(0.0, dur - span))
    idx = [min(n - 1, int((start + k / target_fps) * fps)) for k in range(frames)]
    return idx


def ccl_indices(n, rng, frames=16):
    start = rng.randint(0, max(0, n - frames - 1))
    return [(start + k) % n for k in range(frames)]


def to_clip(images):
    out = []
    for im in images:
        w, h = im.size
        s = 112 / min(w, h)
        im = im.resize((max(112, round(w * s)), max(112, round(h * s))), Image.BILINEAR)
        w, h = im.size
        x, y = (w - 112) // 2, (h - 112) // 2
        out.append(np.asarray(im.crop((x, y, x + 112, y + 112)), np.float32))
    arr = np.stack(out).transpose(3, 0, 1, 2) / 255.0
    return (arr - MEAN) / STD


def load_folder(args):
    path, kind, seed = args
    rng = random.Random(seed)
    names = sorted(f for f in os.listdir(path) if f.endswith((".jpg", ".png")))
    with open(os.path.join(path, "meta.json")) as f:
        fps = json.load(f)["fps"]
    idx = xkd_indices(len(names), fps, rng) if kind == "xkd" else ccl_indices(len(names), rng)
    cache = {}
    images = []
    for i in idx:
        if i not in cache:
            cache[i] = Image.open(os.path.join(path, names[i])).convert("RGB")
        images.append(cache[i])
    return to_clip(images).shape


def load_pyav(args):
    import av

    path, kind, seed = args
    rng = random.Random(seed)
    with av.open(path) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate)
        n = s.frames
        idx = xkd_indices(n, fps, rng) if kind == "xkd" else ccl_indices(n, rng)
        want = set(idx)
        # Seek to the keyframe before the first wanted frame, decode forward.
        first = min(idx)
        c.seek(int(first / fps / s.time_base), stream=s, backward=True, any_frame=False)
        got = {}
        for frame in c.decode(s):
            i = int(round(float(frame.pts * s.time_base) * fps))
            if i in want:
                got[i] = frame.to_image()
            if i >= max(idx):
                break
    images = [got.get(i) or got[max(k for k in got if k <= i)] for i in idx]
    return to_clip(images).shape


def load_decord(args):
    import decord

    path, kind, seed = args
    rng = random.Random(seed)
    vr = decord.VideoReader(path, num_threads=1)
    n, fps = len(vr), vr.get_avg_fps()
    idx = xkd_indices(n, fps, rng) if kind == "xkd" else ccl_indices(n, rng)
    batch = vr.get_batch(idx).asnumpy()
    return to_clip([Image.fromarray(f) for f in batch]).shape


def run(fn, items, workers=2):
    with Pool(workers) as pool:
        pool.map(fn, items[:2])  # warm-up (imports, page cache)
        t0 = time.perf_counter()
        pool.map(fn, items, chunksize=1)
        return len(items) / (time.perf_counter() - t0)


def main():
    root = sys.argv[1]
    videos = os.path.join(root, "UCF-101")
    folders, avis = [], []
    for cls in sorted(os.listdir(videos)):
        for v in sorted(os.listdir(os.path.join(videos, cls))):
            p = os.path.join(videos, cls, v)
            (folders if os.path.isdir(p) else avis).append(p)
    results = {}
    for kind in ["xkd", "ccl"]:
        results[f"{kind} frames PIL"] = run(load_folder, [(p, kind, i) for i, p in enumerate(folders)])
        if avis:
            results[f"{kind} avi PyAV"] = run(load_pyav, [(p, kind, i) for i, p in enumerate(avis)])
            try:
                import decord  # noqa: F401

                results[f"{kind} avi decord"] = run(load_decord, [(p, kind, i) for i, p in enumerate(avis)])
            except ImportError:
                pass
    for k, v in results.items():
        print(f"{k:24s} {v:8.1f} clips/s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
