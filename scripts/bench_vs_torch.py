#!/usr/bin/env python3
"""Side-by-side benchmark: avkd (Candle) against PyTorch on the same machine, in the same run.

Builds in PyTorch the same shapes as avkd's benchmark, written like the official XKD code (pre-norm
ViT-B, qkv without bias, explicit q@k^T / softmax / @v attention, exact GELU, LayerNorm eps 1e-5,
tubelet Rearrange + Linear), times forward, forward+backward and one fine-tune step with the same
thread count, runs `avkd bench vit --json`, and prints the time ratios avkd / PyTorch.

Usage: python3 scripts/bench_vs_torch.py [--suite vit|ccl] [--avkd target/release/avkd] [--iters 3] [--batches 1,4]
"""
import argparse, json, math, os, statistics, subprocess, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VideoViT(nn.Module):
    def __init__(self, dim=768, depth=12, heads=12, frames=32, size=112, patch=16, tubelet=4, num_classes=0):
        super().__init__()
        self.p, self.t = patch, tubelet
        n = (frames // tubelet) * (size // patch) ** 2
        self.proj = nn.Linear(3 * tubelet * patch * patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes else None

    def forward(self, x):
        b, c, t, h, w = x.shape
        p, pt = self.p, self.t
        # b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)
        x = x.reshape(b, c, t // pt, pt, h // p, p, w // p, p).permute(0, 2, 4, 6, 3, 5, 7, 1)
        x = self.proj(x.reshape(b, -1, pt * p * p * c)) + self.pos_embed[:, 1:]
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1), x], 1)
        for blk in self.blocks:
            x = blk(x)
        feats = self.norm(x)[:, 1:].mean(1)
        return self.head(F.dropout(feats, 0.5, self.training)) if self.head is not None else feats


class STConv(nn.Module):
    """CCL's SpatioTemporalConv: (1,k,k) conv -> BN -> ReLU -> (k,1,1) conv, no biases."""

    def __init__(self, cin, cout, k, s, p):
        super().__init__()
        m = (k[0] * k[1] * k[2] * cin * cout) // (k[1] * k[2] * cin + k[0] * cout)
        self.spatial = nn.Conv3d(cin, m, (1, k[1], k[2]), (1, s[1], s[2]), (0, p[1], p[2]), bias=False)
        self.bn = nn.BatchNorm3d(m)
        self.temporal = nn.Conv3d(m, cout, (k[0], 1, 1), (s[0], 1, 1), (p[0], 0, 0), bias=False)

    def forward(self, x):
        return self.temporal(F.relu(self.bn(self.spatial(x))))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, down):
        super().__init__()
        s = (2, 2, 2) if down else (1, 1, 1)
        self.conv1, self.bn1 = STConv(cin, cout, (3, 3, 3), s, (1, 1, 1)), nn.BatchNorm3d(cout)
        self.conv2, self.bn2 = STConv(cout, cout, (3, 3, 3), (1, 1, 1), (1, 1, 1)), nn.BatchNorm3d(cout)
        self.down = nn.Sequential(STConv(cin, cout, (1, 1, 1), (2, 2, 2), (0, 0, 0)), nn.BatchNorm3d(cout)) if down else None

    def forward(self, x):
        r = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu((self.down(x) if self.down is not None else x) + r)


class R2Plus1D18(nn.Module):
    """The official CCL student: one block per stage, no stem max-pool."""

    def __init__(self, classes=51):
        super().__init__()
        self.stem = nn.Sequential(STConv(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3)), nn.BatchNorm3d(64), nn.ReLU())
        self.stages = nn.Sequential(ResBlock(64, 64, False), ResBlock(64, 128, True), ResBlock(128, 256, True), ResBlock(256, 512, True))
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        return self.linear(F.adaptive_avg_pool3d(self.stages(self.stem(x)), 1).flatten(1))


def ccl_timings(batch, iters):
    torch.manual_seed(0)
    out = {}
    model = R2Plus1D18()
    x = torch.randn(batch, 3, 16, 112, 112)
    model.eval()
    with torch.no_grad():
        out[f"r2plus1d18_fwd_b{batch}"] = time_it(lambda: model(x), iters)
    model.train()

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()

    out[f"r2plus1d18_fwd_bwd_b{batch}"] = time_it(fwd_bwd, iters)
    xc, w = torch.randn(2, 64, 8, 56, 56), (torch.randn(64, 64, 3, 3, 3) * 0.05)
    with torch.no_grad():
        out["conv3d_3x3x3_64_fwd"] = time_it(lambda: F.conv3d(xc, w, padding=1), iters)
    xg, wg = xc.clone().requires_grad_(), w.clone().requires_grad_()
    out["conv3d_3x3x3_64_fwd_bwd"] = time_it(lambda: F.conv3d(xg, wg, padding=1).pow(2).mean().backward(), iters)
    return out


def time_it(fn, iters):
    fn()
    samples = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return {"median_s": samples[len(samples) // 2], "min_s": samples[0], "iters": iters}


def torch_timings(batches, iters):
    torch.manual_seed(0)
    out = {}
    model = VideoViT()
    for b in batches:
        x = torch.randn(b, 3, 32, 112, 112)
        model.eval()
        with torch.no_grad():
            out[f"vit_b_video_fwd_b{b}"] = time_it(lambda: model(x), iters)
        model.train()

        def fwd_bwd():
            model.zero_grad(set_to_none=True)
            model(x).pow(2).mean().backward()

        out[f"vit_b_video_fwd_bwd_b{b}"] = time_it(fwd_bwd, iters)
    b = batches[-1]
    clf = VideoViT(num_classes=101).train()
    opt = torch.optim.AdamW(clf.parameters(), lr=5e-4, weight_decay=0.05)
    x, y = torch.randn(b, 3, 32, 112, 112), torch.arange(b)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(clf(x), y, label_smoothing=0.1).backward()
        opt.step()

    out[f"finetune_step_b{b}"] = time_it(step, iters)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avkd", default="target/release/avkd")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--suite", choices=["vit", "ccl"], default="vit", help="vit: XKD's ViT-B; ccl: R(2+1)D-18 and Conv3d")
    ap.add_argument("--ccl-batch", type=int, default=8)
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(args.threads)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    if args.suite == "vit":
        cmd = [args.avkd, "bench", "vit", "--iters", str(args.iters), "--batches", args.batches, "--json"]
    else:
        cmd = [args.avkd, "bench", "ccl", "--iters", str(args.iters), "--batch", str(args.ccl_batch), "--json"]
    print("running:", " ".join(cmd), file=sys.stderr)
    avkd = {t["name"]: t for t in json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)}
    print(f"running PyTorch {torch.__version__} ({args.threads} threads)", file=sys.stderr)
    ref = torch_timings(batches, args.iters) if args.suite == "vit" else ccl_timings(args.ccl_batch, args.iters)
    rows = []
    print(f"{'benchmark':28} {'avkd (s)':>10} {'torch (s)':>10} {'ratio':>7}")
    for name, t in ref.items():
        a = avkd[name]["median_s"]
        rows.append({"name": name, "avkd_s": a, "torch_s": t["median_s"], "ratio": a / t["median_s"]})
        print(f"{name:28} {a:10.3f} {t['median_s']:10.3f} {a / t['median_s']:7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
