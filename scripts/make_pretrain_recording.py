#!/usr/bin/env python3
"""Writes a recorded XKD pre-training replay directory in the layout of the official fixture
shared/fixtures/xkd/pretrain_step (what `avkd pretrain --replay DIR --variant V` and
`scripts/bench_pretrain_vs_torch.py --verify DIR --variant V` read), for a variant that fixture lacks
(XKD-MATS, the default) or, to check this writer, for XKD / XKD-MAS.

The step is the project's PyTorch restatement of the official one (scripts/bench_pretrain_vs_torch.py:
main_xkd.py::train_one_epoch with models/xkd.py / xkd_mas.py / xkd_mats.py, github.com/pritamqu/XKD
@806c75d), imported from there, not restated again: the net and its init, the AdamW groups, and the
replay loop that runs the recorded iterations (bench.replay) are that script's. The recording is made
as the official fixture was made:

  * the reduced net and loop constants of the official fixture (--like, default
    tests/fixtures/xkd/pretrain_step: constructor.kwargs/config_entries, len_train_loader, betas, eps,
    clip_grad, freeze_last_layer; per-step epoch/i/step/lr/weight decay);
  * weights: official init (restated), init_teacher_student_same_weights, set_teacher_no_grad, then
    every parameter (teachers included, each shared one once) p += 0.02*N(0,1) (0.1 for 1-D ones),
    last_layer.weight_g kept at 1, both DINOLossX centres 0.3*N(0,1), each from its own seeded
    generator; saved as <p>checkpoint_init.pth.tar = dict(model='module.'-prefixed state_dict,
    optimizer=fresh AdamW state_dict (empty state), epoch=0);
  * inputs: N(0,1) views from seeded generators (inputs.safetensors), U(0,1) masking noise per step
    (video first, then audio, from torch.manual_seed(masking seed), as random_masking draws it) with
    the mask and ids_restore it gives (<p>inputs.safetensors);
  * two iterations of the loop (epochs 0 and 1, len_train_loader 1), with temperatures and per-modality
    EMA momenta that differ (defaults: teacher 0.09/0.05, student 0.1/0.12 video/audio; EMA 0.99/0.98
    then 0.995/0.99), recorded as <p>step{k}.safetensors and <p>adamw_after_step2.safetensors under the
    fixture's names (losses, centres, group lr/wd, clip norms, grads after clip+cancel, every unique
    state_dict entry after the step, AdamW moments).

<p> is '' (xkd), 'mas_' or 'mats_'. --official SRC (a checkout's codes/train, plus einops) replays the
written recording through the official code too and requires it to match bit for bit; it also replays
the official fixture's XKD and MAS steps (from --like) both ways, so that the notes' claim that the
restatement is bit-identical to the official code here on XKD/MAS/MATS is checked by the run that writes
it. --check-layout DIR compares the names, shapes and dtypes of every file written with DIR's (use it
with --variant xkd/mas against the official fixture).

Usage:
  python3 scripts/make_pretrain_recording.py [--variant mats] [--out tests/fixtures/xkd/pretrain_step_mats]
         [--official XKD/codes/train] [--check-layout DIR]
  python3 scripts/bench_pretrain_vs_torch.py --verify tests/fixtures/xkd/pretrain_step_mats --variant mats

Needs torch and safetensors; runs on one thread (the recording is single-threaded, as the fixture's).
"""
import argparse, functools, json, os, platform, struct, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_pretrain_vs_torch as bench  # noqa: E402

from safetensors.torch import load_file  # noqa: E402

LIKE = "tests/fixtures/xkd/pretrain_step"
OUT = {"xkd": "tests/fixtures/xkd/pretrain_step_xkd", "mas": "tests/fixtures/xkd/pretrain_step_mas",
       "mats": "tests/fixtures/xkd/pretrain_step_mats"}
LOSS_TERMS = ("vid_recon_loss", "aud_recon_loss", "as2vs_align_loss", "vt2at_align_loss", "vt2as_kd_loss",
              "at2vs_kd_loss", "recon_loss", "cmkd_loss", "alignment_loss", "loss")
VIEWS = ("frames_global", "frames_local", "specs_global", "specs_local")
LOOP_KEYS = ("len_train_loader", "amp", "distributed", "betas", "eps", "clip_grad", "freeze_last_layer")
STEP_KEYS = ("epoch", "i", "step", "lr", "weight_decay")


def header(path):
    """{name: (dtype, shape)} from a safetensors header."""
    with open(path, "rb") as f:
        h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    h.pop("__metadata__", None)
    return {n: (v["dtype"], tuple(v["shape"])) for n, v in h.items()}


SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.int64: "I64"}


def save_file(tensors, path):
    """A safetensors writer without numpy (safetensors.torch.save_file needs it; torch and the reader do not):
    8-byte little-endian header size, JSON header (space-padded to 8 bytes), then the raw little-endian data,
    8-byte dtypes first, then by name. Every file is read back with safetensors and compared bit for bit."""
    assert sys.byteorder == "little"
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    head, blobs, offset = {}, [], 0
    for name, t in items:
        data = bytes(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).tolist())
        head[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                      "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = load_file(path)
    assert set(back) == set(tensors) and all(
        back[n].dtype == t.dtype and back[n].shape == t.shape and torch.equal(back[n].view(-1).view(torch.uint8),
                                                                              t.detach().reshape(-1).view(torch.uint8))
        for n, t in tensors.items()), path


def seeds_for(base):
    return {"build": {"init_torch_manual_seed": base + 1, "perturb_generator": base + 2,
                      "centers": [base + 3, base + 4]},
            "inputs_step1": [base + 11, base + 12, base + 13, base + 14],
            "inputs_step2": [base + 21, base + 22, base + 23, base + 24],
            "masking_torch_manual_seed": [base + 15, base + 25]}


def build_config(like, variant, args, seeds):
    """config.json: the keys avkd reads (replay_config.rs) + seeds + notes (filled in at the end)."""
    ctor, fwd = like["constructor"], dict(like["forward_kwargs"])
    fwd["teacher_temp"] = {"video": args.teacher_temp[0], "audio": args.teacher_temp[1]}
    fwd["student_temp"] = {"video": args.student_temp[0], "audio": args.student_temp[1]}
    like_steps = like["per_step"]["xkd"]
    steps = {}
    for k in (1, 2):
        st = {key: like_steps[f"step{k}"][key] for key in STEP_KEYS}
        st["vid_ema"], st["aud_ema"] = args.vid_ema[k - 1], args.aud_ema[k - 1]
        steps[f"step{k}"] = st
    return {
        "constructor": {"kwargs": ctor["kwargs"], "config_entries": ctor["config_entries"],
                        "train_one_epoch": {key: ctor["train_one_epoch"][key] for key in LOOP_KEYS}},
        "forward_kwargs": fwd,
        "per_step": {variant: steps},
        "seeds": seeds,
        "notes": [],
    }


def build_net(variant, ctor, seeds):
    """The starting net: official init (restated), teachers = students and frozen, then perturbed."""
    torch.manual_seed(seeds["init_torch_manual_seed"])
    net = bench.XKDNet(variant, **ctor["kwargs"], presets=ctor["config_entries"])
    g = torch.Generator().manual_seed(seeds["perturb_generator"])
    with torch.no_grad():
        for name, p in net.named_parameters():  # each shared parameter once
            if name.endswith("last_layer.weight_g"):
                continue  # filled with 1 and frozen in the official head
            p.add_(torch.randn(p.shape, generator=g) * (0.1 if p.ndim == 1 else 0.02))
        for c, seed in zip(("vt2as", "at2vs"), seeds["centers"]):
            loss = getattr(net, c + "_ce_loss")
            loss.center = 0.3 * torch.randn(loss.center.shape, generator=torch.Generator().manual_seed(seed))
    return net


def unique_state_keys(net):
    """state_dict keys without aliases: the first name of each tensor, in state_dict order."""
    seen, keys = set(), []
    for n, v in net.state_dict().items():
        ident = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride())
        if ident not in seen:
            seen.add(ident)
            keys.append(n)
    return keys


def make_inputs(ctor, like_dir, seeds, pre):
    """(views, masking noise): N(0,1) views of the fixture's shapes, U(0,1) noise of the MAE token counts."""
    shapes = header(os.path.join(like_dir, "inputs.safetensors"))
    kw = ctor["kwargs"]
    n_vid = ((kw["frame_size"][1] // kw["vid_patch_spatial"][0]) * (kw["frame_size"][2] // kw["vid_patch_spatial"][1])
             * (kw["num_frames"] // kw["vid_patch_temporal"]))
    n_aud = (kw["spec_size"][0] // kw["spec_patch_spatial"][0]) * (kw["spec_size"][1] // kw["spec_patch_spatial"][1])
    views, noise = {}, {}
    for k in (1, 2):
        for view, seed in zip(VIEWS, seeds[f"inputs_step{k}"]):
            dtype, shape = shapes[f"step{k}_{view}"]
            assert dtype == "F32"
            views[f"step{k}_{view}"] = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        batch = views[f"step{k}_frames_global"].shape[0]
        torch.manual_seed(seeds["masking_torch_manual_seed"][k - 1])
        for m, n in (("vid", n_vid), ("aud", n_aud)):  # the forward's draw order: video, then audio
            noise[f"{pre}step{k}_{m}_noise"] = torch.rand(batch, n)
    return views, noise


def add_masks(noise, fwd, pre):
    """The mask and ids_restore the noise gives at the forward's ratios (as the fixture stores them)."""
    out = dict(noise)
    for name, u in noise.items():
        m = "vid" if name.endswith("_vid_noise") else "aud"
        _, mask, ids_restore = bench.random_masking(torch.zeros(*u.shape, 1), fwd[f"{m}_mask_ratio"], u)
        out[name.replace("_noise", "_mask")] = mask.contiguous()
        out[name.replace("_noise", "_ids_restore")] = ids_restore.contiguous()
    return out


def record(out_dir, pre, steps, moments, state_keys):
    """<p>step{k}.safetensors and <p>adamw_after_step{K}.safetensors under the fixture's names."""
    files = []
    for k, st in enumerate(steps, 1):
        p, t = f"{pre}step{k}_", {}
        for term in LOSS_TERMS:
            t[f"{p}loss_{term}"] = st["losses"][term].detach().to(torch.float32).reshape(())
        for c in ("vt2as", "at2vs"):
            t[f"{p}{c}_center"] = st["centres"][c]
        t[f"{p}group_lr"] = st["groups"]["lr"]
        t[f"{p}group_wd"] = st["groups"]["weight_decay"]
        t[f"{p}clip_norms"] = st["norms"]
        for n, g in st["grads"].items():
            t[f"{p}grad.{n}"] = g
        for n in state_keys:
            t[f"{p}state.{n}"] = st["state"][n]
        files.append((f"{pre}step{k}.safetensors", t))
    files.append((f"{pre}adamw_after_step{len(steps)}.safetensors",
                  {f"{pre}{n}": v for n, v in moments.items()}))
    for name, t in files:
        save_file({n: v.detach().contiguous().clone() for n, v in t.items()}, os.path.join(out_dir, name))


def check_layout(out_dir, like_dir, pre):
    """Names, shapes and dtypes of every file of the variant against like_dir's; returns problems."""
    problems, report = [], []
    names = [f"{pre}inputs.safetensors", f"{pre}step1.safetensors", f"{pre}step2.safetensors",
             f"{pre}adamw_after_step2.safetensors"] + (["inputs.safetensors"] if pre else [])
    for name in names:
        ours, ref = header(os.path.join(out_dir, name)), header(os.path.join(like_dir, name))
        if name == "inputs.safetensors" and pre:  # ours: the views only; the fixture's also holds XKD's noise
            ref = {n: v for n, v in ref.items() if any(n.endswith("_" + view) for view in VIEWS)}
        if ours != ref:
            missing, extra = sorted(set(ref) - set(ours)), sorted(set(ours) - set(ref))
            diff = sorted(n for n in set(ours) & set(ref) if ours[n] != ref[n])
            problems.append(f"{name}: missing {missing[:5]}, extra {extra[:5]}, shape/dtype differs {diff[:5]}")
        report.append(f"{name}: {len(ours)} tensors, names/shapes/dtypes {'identical' if ours == ref else 'DIFFER'}")
    ck = {n: torch.load(os.path.join(d, f"{pre}checkpoint_init.pth.tar"), map_location="cpu", weights_only=True)
          for n, d in (("ours", out_dir), ("ref", like_dir))}
    def model_layout(c):  # keys in order with dtype and shape, and which keys hold the same tensor
        first, alias = {}, {}
        for k, v in c["model"].items():
            alias[k] = first.setdefault((v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)), k)
        return [(k, v.dtype, tuple(v.shape), alias[k]) for k, v in c["model"].items()]

    same_model = model_layout(ck["ours"]) == model_layout(ck["ref"])
    opt = lambda c: [{k: v for k, v in g.items() if k != "params"} | {"n": len(g["params"])}
                     for g in c["optimizer"]["param_groups"]]
    same_opt = opt(ck["ours"]) == opt(ck["ref"]) and ck["ours"]["optimizer"]["state"] == {}
    same_top = set(ck["ours"]) == set(ck["ref"]) - {"amp"} and ck["ours"]["epoch"] == ck["ref"]["epoch"]
    for ok, what in ((same_model, "model keys (in order)/dtypes/shapes/aliases"), (same_opt, "optimizer param_groups"),
                     (same_top, "top-level keys (less the fixture's unused 'amp') and epoch")):
        report.append(f"{pre}checkpoint_init.pth.tar: {what} {'identical' if ok else 'DIFFER'}")
        if not ok:
            problems.append(f"{pre}checkpoint_init.pth.tar: {what} differ")
    # config.json: the keys avkd reads, with the fixture's values except the ones this writer chooses
    ours, ref = (json.load(open(os.path.join(d, "config.json"))) for d in (out_dir, like_dir))
    variant = {v: k for k, v in bench.PREFIXES.items()}[pre]
    chosen = {"forward_kwargs.teacher_temp", "forward_kwargs.student_temp"}
    chosen |= {f"per_step.{variant}.step{k}.{m}" for k in (1, 2) for m in ("vid_ema", "aud_ema")}
    paths = ["constructor.kwargs", "constructor.config_entries", "forward_kwargs.teacher_temp",
             "forward_kwargs.student_temp"]
    paths += [f"forward_kwargs.{k}" for k in ref["forward_kwargs"] if not k.endswith("_temp")]
    paths += [f"constructor.train_one_epoch.{k}" for k in LOOP_KEYS]
    paths += [f"per_step.{variant}.step{k}.{m}" for k in (1, 2) for m in STEP_KEYS + ("vid_ema", "aud_ema")]
    get = lambda c, path: functools.reduce(lambda n, p: n[p], path.split("."), c)
    bad = [p for p in paths if p not in chosen and (variant not in ref["per_step"] or get(ours, p) != get(ref, p))]
    extra = set(ours) - {"constructor", "forward_kwargs", "per_step", "seeds", "notes"}
    extra |= set(ours["constructor"]) - {"kwargs", "config_entries", "train_one_epoch"}
    extra |= set(ours["constructor"]["train_one_epoch"]) - set(LOOP_KEYS)
    report.append(f"config.json: {len(paths)} paths avkd reads; {len(paths) - len(chosen)} equal to the fixture's: "
                  f"{'yes' if not bad else 'NO'}; other keys: {sorted(extra) or 'none'}")
    if bad or extra:
        problems.append(f"config.json: differs at {bad}, extra keys {sorted(extra)}")
    return report, problems


def replay_both(d, variant, cfg, official):
    """bench's verify, as a function: (this script vs recording, official vs recording, this vs official)."""
    pre, ctor = bench.PREFIXES[variant], cfg["constructor"]
    inputs = load_file(os.path.join(d, "inputs.safetensors"))
    noises = load_file(os.path.join(d, pre + "inputs.safetensors"))
    ref = bench.fixture_records(d, pre)
    ours = bench.replay(bench.XKDNet(variant, **ctor["kwargs"], presets=ctor["config_entries"]), lambda n: n,
                        d, pre, cfg, inputs, noises)
    cols = {"restatement vs recording": bench.compare(ours, *ref)}
    if official:
        off_net, feed = bench.official_net(official, variant, ctor["kwargs"], ctor["config_entries"])
        off = bench.replay(off_net, feed, d, pre, cfg, inputs, noises)
        cols["official here vs recording"] = bench.compare(off, *ref)
        cols["restatement vs official here"] = bench.compare(ours, *off)
    return cols


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["xkd", "mas", "mats"], default="mats")
    ap.add_argument("--out", help="output directory (default: tests/fixtures/xkd/pretrain_step_<variant>)")
    ap.add_argument("--like", default=LIKE, help="the official fixture whose net, constants and shapes are used")
    ap.add_argument("--teacher-temp", type=float, nargs=2, default=[0.09, 0.05], metavar=("VIDEO", "AUDIO"))
    ap.add_argument("--student-temp", type=float, nargs=2, default=[0.1, 0.12], metavar=("VIDEO", "AUDIO"))
    ap.add_argument("--vid-ema", type=float, nargs=2, default=[0.99, 0.995], metavar=("STEP1", "STEP2"))
    ap.add_argument("--aud-ema", type=float, nargs=2, default=[0.98, 0.99], metavar=("STEP1", "STEP2"))
    ap.add_argument("--seed-base", type=int, default=1140, help="seeds: base+1..4 build, +11..15 / +21..25 steps")
    ap.add_argument("--official", metavar="SRC", help="also replay through the official code (codes/train)")
    ap.add_argument("--check-layout", metavar="DIR", help="compare names/shapes/dtypes of the files with DIR's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    variant, pre = args.variant, bench.PREFIXES[args.variant]
    out = args.out or OUT[variant]
    os.makedirs(out, exist_ok=True)
    like = json.load(open(os.path.join(args.like, "config.json")))
    seeds = seeds_for(args.seed_base)
    cfg = build_config(like, variant, args, seeds)
    ctor, hp = cfg["constructor"], cfg["constructor"]["train_one_epoch"]

    # starting checkpoint, in the official training-resume layout
    net = build_net(variant, ctor, seeds["build"])
    opt = bench.make_optimizer(net, like["constructor"]["train_one_epoch"]["init_lr"], hp["betas"])
    assert opt.param_groups[0]["eps"] == hp["eps"]
    ddp = torch.nn.Module()  # state_dict() of a DDP-wrapped net: 'module.' keys, _metadata included
    ddp.module = net
    torch.save({"model": ddp.state_dict(), "optimizer": opt.state_dict(), "epoch": 0},
               os.path.join(out, pre + "checkpoint_init.pth.tar"))

    # inputs: views shared by the variants (inputs.safetensors), the variant's own masking noise
    views, noise = make_inputs(ctor, args.like, seeds, pre)
    noise = add_masks(noise, cfg["forward_kwargs"], pre)
    if pre:
        save_file(views, os.path.join(out, "inputs.safetensors"))
        save_file(noise, os.path.join(out, pre + "inputs.safetensors"))
    else:
        save_file({**views, **noise}, os.path.join(out, "inputs.safetensors"))

    # the recorded iterations: this project's restatement of the official loop, replaying that start
    run_net = bench.XKDNet(variant, **ctor["kwargs"], presets=ctor["config_entries"])
    steps, moments = bench.replay(run_net, lambda n: n, out, pre, cfg, views,
                                  {n: v for n, v in noise.items() if n.endswith("_noise")})
    record(out, pre, steps, moments, unique_state_keys(run_net))
    for k, st in enumerate(steps, 1):
        print(f"{variant} step {k}: loss {st['losses']['loss'].item():.9g}, {len(st['grads'])} grads, "
              f"{len(st['norms'])} clip visits")

    # checks: the recording against the official code (and the official fixture's XKD/MAS both ways)
    verdicts, failed = [], False
    if args.official:
        runs = [(variant, out, cfg, "this recording")]
        runs += [(v, args.like, like, "official fixture") for v in ("xkd", "mas")]
        for v, d, c, what in runs:
            cols = replay_both(d, v, c, args.official)
            worst = max(e for e, _ in cols["restatement vs official here"].values())
            rec = max(e for e, _ in cols["restatement vs recording"].values())
            print(f"{v} ({what}): restatement vs official code here: max relative error {worst:.3e}; "
                  f"restatement vs recording {rec:.3e}")
            verdicts.append((v, what, worst))
            failed |= worst != 0.0 or (d == out and rec != 0.0)
    cfg["notes"] = notes(variant, pre, args, verdicts)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    sizes = {n: os.path.getsize(os.path.join(out, n)) for n in sorted(os.listdir(out))}
    for n, b in sizes.items():
        print(f"  {n:40} {b:9d} bytes")
    print(f"  {'total':40} {sum(sizes.values()):9d} bytes")
    if args.check_layout:
        report, problems = check_layout(out, args.check_layout, pre)
        print("\n".join(report))
        for p in problems:
            print("LAYOUT:", p)
        failed |= bool(problems)
    if failed:
        sys.exit("FAILED")


def notes(variant, pre, args, verdicts):
    import safetensors

    name = {"xkd": "XKD", "mas": "XKD_MAS", "mats": "XKD_MATS"}[variant]
    out = [
        f"Made by scripts/make_pretrain_recording.py --variant {variant}"
        + (" --official <XKD checkout>/codes/train" if args.official else "") + " (avkd repository) with Python "
        f"{platform.python_version()}, torch {torch.__version__}, safetensors {safetensors.__version__}, on CPU "
        f"({bench.cpu_model()}), 1 thread, from the official fixture {args.like} (its reduced net "
        "constructor.kwargs/config_entries, loop constants, per-step epoch/i/step/lr/weight decay and input shapes).",
        "NOT written by the official code: the step is this project's PyTorch restatement of the official "
        "main_xkd.py::train_one_epoch with models/xkd.py / xkd_mas.py / xkd_mats.py (github.com/pritamqu/XKD "
        "@806c75d), scripts/bench_pretrain_vs_torch.py, imported by the writer (net, init, AdamW groups, replay loop).",
    ]
    if verdicts:
        checked = "; ".join(f"{v} ({what}) max relative error {e:.1e}" for v, what, e in verdicts)
        ok = all(e == 0.0 for _, _, e in verdicts)
        out.append(("Verified bit-identical to the official code on XKD/MAS/MATS on this machine: " if ok else
                    "Compared with the official code on this machine (NOT bit-identical): ")
                   + f"the writer (--official) replayed the official code from a checkout's codes/train and this "
                   f"restatement on the same recorded steps and compared every recorded tensor: {checked}.")
    else:
        out.append("Not compared with the official code by the run that wrote it (no --official).")
    out += [
        f"Weights ({pre}checkpoint_init.pth.tar = dict(model='module.'-prefixed state_dict, optimizer=fresh AdamW "
        f"state_dict from get_params_groups (lr = the fixture's init_lr, group 1 weight decay = AdamW's default 0.01, "
        f"empty state), epoch=0)): {name} built with the official init (restated; torch.manual_seed(seeds.build."
        "init_torch_manual_seed)), init_teacher_student_same_weights, set_teacher_no_grad; then every parameter of "
        "named_parameters() (teachers included, shared ones once) p += 0.02*N(0,1) (0.1 for 1-D ones) from "
        "torch.Generator(seeds.build.perturb_generator), last_layer.weight_g kept at 1; centres vt2as, at2vs = "
        "0.3*N(0,1) from torch.Generator(seeds.build.centers[0/1]). The state_dict's keys, their order and which "
        "of them alias one tensor are the official ones; its _metadata lists the restatement's modules (the official "
        "parameter-less Dropout/DropPath/Rearrange modules are not there).",
        "Inputs: inputs.safetensors step{k}_{frames,specs}_{global,local} = N(0,1) from torch.Generator(seeds."
        f"inputs_step{{k}}[0..3]) in that order; {pre}inputs.safetensors {pre}step{{k}}_{{vid,aud}}_noise = the "
        "U(0,1) masking noise of step k (torch.manual_seed(seeds.masking_torch_manual_seed[k-1]); torch.rand, "
        "video then audio, as random_masking draws it in the forward) with the mask and ids_restore it gives.",
        "Two iterations of the train_one_epoch loop body, len(train_loader) = 1, epochs 0 and 1 (step = epoch), "
        "amp=None, no DDP; freeze_last_layer 1: the student heads' last_layer.weight_v grads are cancelled in step 1 "
        "only. forward_kwargs temperatures differ per modality and from the student ones so that they are "
        "exercised; the official forward scores BOTH students with student_temp['audio'] (student_temp['video'] is "
        "unused). vid_ema and aud_ema differ"
        + (": in XKD_MATS the teachers share ONE encoder (vid_teacher/aud_teacher.backbone.encoder.*), which "
           "update_teacher moves twice per step, first with vid_ema towards the shared student blocks, then with "
           "aud_ema; clip_gradients visits the shared student blocks twice (vid_student, then aud_student)."
           if variant == "mats" else "."),
        f"Recorded as the official fixture: {pre}step{{k}}.safetensors = {pre}step{{k}}_loss_<term> (0-dim f32), "
        f"_vt2as_center/_at2vs_center after the step, _group_lr/_group_wd (f64 [2]), _clip_norms (f64, one per "
        "clip visit with a grad, in visit order), grad.<param> (every trainable parameter with a grad after "
        "clipping and cancelling; named_parameters() names, shared ones under their first name), state.<key> "
        "(every unique state_dict entry after the step: aliases dropped, the first name of each tensor in "
        f"state_dict order); {pre}adamw_after_step2.safetensors = {pre}exp_avg.<param>, {pre}exp_avg_sq.<param>.",
        f"Replay: avkd pretrain --replay DIR --variant {variant}; python3 scripts/bench_pretrain_vs_torch.py "
        f"--verify DIR --variant {variant} [--official XKD/codes/train].",
    ]
    return out


if __name__ == "__main__":
    main()
