#!/usr/bin/env python3
"""Side-by-side benchmark of one CCL-AI distillation step: avkd (Candle) against PyTorch.

The PyTorch side is the official step (github.com/yanbeic/CCL @b590483, training.py::train_ai_epoch)
restated in plain PyTorch from shared/spec/ccl.md (§2.1-§2.8) with the official module names:

  student R(2+1)D-18 (models/r21d.py, one block per stage, 51 classes) in train mode on
  [B, 3, 16, 112, 112]; the ResNet-34 image teacher (torchvision topology, fc dropped, eval mode,
  not under no_grad, as main.py) on one random frame shared by the batch; 512-d audio features
  with the silent rows filtered out of the audio terms; both CompositionClassifier heads; NCELoss
  (tau 0.5 audio, 0.1 image, with the positive-count fix), JSDLoss(0.5), CE; the official backward
  order (head-a loss, head-i loss with retain_graph, zero the student's grads, video loss) and the
  three SGD steps (lr 1e-3, momentum 0.9, wd 5e-4).

It then runs `avkd bench distill --json` with the same thread count and prints the ratio
avkd / PyTorch.

Usage:
  python3 scripts/bench_distill_vs_torch.py [--avkd target/release/avkd] [--batch 16] [--iters 3]
         [--threads 2] [--torch-only] [--json OUT]

Needs torch only (no torchvision, no numpy).
"""
import argparse, json, os, random, statistics, subprocess, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


# ---- models/r21d.py (ccl.md §2.1) -------------------------------------------------------------
class SpatioTemporalConv(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        k, s, p = [x if isinstance(x, tuple) else (x, x, x) for x in (k, stride, padding)]
        m = (k[0] * k[1] * k[2] * cin * cout) // (k[1] * k[2] * cin + k[0] * cout)
        self.spatial_conv = nn.Conv3d(cin, m, (1, k[1], k[2]), (1, s[1], s[2]), (0, p[1], p[2]), bias=False)
        self.bn = nn.BatchNorm3d(m)
        self.relu = nn.ReLU()
        self.temporal_conv = nn.Conv3d(m, cout, (k[0], 1, 1), (s[0], 1, 1), (p[0], 0, 0), bias=False)

    def forward(self, x):
        return self.temporal_conv(self.relu(self.bn(self.spatial_conv(x))))


class SpatioTemporalResBlock(nn.Module):
    def __init__(self, cin, cout, k, downsample=False):
        super().__init__()
        self.downsample = downsample
        if downsample:
            self.downsampleconv = SpatioTemporalConv(cin, cout, 1, stride=2)
            self.downsamplebn = nn.BatchNorm3d(cout)
            self.conv1 = SpatioTemporalConv(cin, cout, k, padding=k // 2, stride=2)
        else:
            self.conv1 = SpatioTemporalConv(cin, cout, k, padding=k // 2)
        self.bn1, self.relu1 = nn.BatchNorm3d(cout), nn.ReLU()
        self.conv2 = SpatioTemporalConv(cout, cout, k, padding=k // 2)
        self.bn2, self.outrelu = nn.BatchNorm3d(cout), nn.ReLU()

    def forward(self, x):
        res = self.relu1(self.bn1(self.conv1(x)))
        res = self.bn2(self.conv2(res))
        if self.downsample:
            x = self.downsamplebn(self.downsampleconv(x))
        return self.outrelu(x + res)


class SpatioTemporalResLayer(nn.Module):
    def __init__(self, cin, cout, k, layer_size, downsample=False):
        super().__init__()
        self.block1 = SpatioTemporalResBlock(cin, cout, k, downsample)
        self.blocks = nn.ModuleList([SpatioTemporalResBlock(cout, cout, k) for _ in range(layer_size - 1)])

    def forward(self, x):
        x = self.block1(x)
        for b in self.blocks:
            x = b(x)
        return x


class R2Plus1DNet(nn.Module):
    def __init__(self, layer_sizes=(1, 1, 1, 1), num_classes=51):
        super().__init__()
        self.conv1 = SpatioTemporalConv(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3))
        self.bn1, self.relu1 = nn.BatchNorm3d(64), nn.ReLU()
        self.conv2 = SpatioTemporalResLayer(64, 64, 3, layer_sizes[0])
        self.conv3 = SpatioTemporalResLayer(64, 128, 3, layer_sizes[1], downsample=True)
        self.conv4 = SpatioTemporalResLayer(128, 256, 3, layer_sizes[2], downsample=True)
        self.conv5 = SpatioTemporalResLayer(256, 512, 3, layer_sizes[3], downsample=True)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.conv5(self.conv4(self.conv3(self.conv2(x))))
        f = self.pool(x).view(-1, 512)
        return self.linear(f), f


# ---- torchvision ResNet-34 without fc (ccl.md §2.2) --------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


def resnet34_features():
    layers, cin = [], 64
    for width, n, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        layers.append(nn.Sequential(*[BasicBlock(cin if i == 0 else width, width, stride if i == 0 else 1)
                                      for i in range(n)]))
        cin = width
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1), *layers, nn.AdaptiveAvgPool2d(1))


# ---- heads and losses (ccl.md §2.4-§2.7) --------------------------------------------------------
class CompositionClassifier(nn.Module):
    def __init__(self, input_dim=1024, num_classes=51):
        super().__init__()
        self.mlp = nn.Linear(input_dim, input_dim // 2)
        self.fc = nn.Linear(input_dim // 2, num_classes)

    def forward(self, f1, f2):
        z = f1 + self.mlp(torch.cat([F.normalize(f1, dim=1), F.normalize(f2, dim=1)], 1))
        return self.fc(z), z


def nce(f1, f2, y, tau):
    sim = F.normalize(f1, dim=1) @ F.normalize(f2, dim=1).t() / tau
    p = F.softmax(sim, dim=1)
    pos = (y[:, None] == y[None, :]).float()
    neg = 1.0 - pos
    lp = -(torch.log(p + 1e-10) * pos).sum(1) / pos.sum(1)
    ln = -(torch.log(1 - p + 1e-10) * neg).sum(1) / neg.sum(1)
    return (lp + ln).mean()


def sym(a, b, y, tau):
    return nce(a, b, y, tau) + nce(b, a, y, tau)


def jsd(lp, lq, w=0.5):
    p, q = F.softmax(lp, 1), F.softmax(lq, 1)
    return w * ((p * torch.log(p / q + 1e-10)).sum(1) + (q * torch.log(q / p + 1e-10)).sum(1)).mean()


def teacher_losses(v, o_v, t, head, y, tau):
    o_z, z = head(t, v)
    l_vm, l_vt, l_mt = sym(v, z, y, tau), sym(v, t, y, tau), sym(z, t, y, tau)
    kl = jsd(o_v, o_z)
    return l_vm + l_vt, kl, F.cross_entropy(o_z, y) + (l_vm + l_mt) + kl


def make_step(b, classes=51):
    torch.manual_seed(1)
    student, teacher = R2Plus1DNet(num_classes=classes), resnet34_features().eval()
    head_a, head_i = CompositionClassifier(1024, classes), CompositionClassifier(1024, classes)
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    opt_video, opt_av, opt_iv = sgd(student), sgd(head_a), sgd(head_i)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(b, 3, 16, 112, 112, generator=g)
    y = torch.tensor([i % max(b // 2, 2) for i in range(b)])
    audio = torch.randn(b, 512, generator=g).relu()
    audio[3::4] = 0
    student.train()

    def step():
        r = random.randint(0, x.shape[2] - 1)
        t_i = teacher(x[:, :, r]).squeeze()
        o_v, v = student(x)
        keep = audio.sum(1) != 0
        ct_a, kl_a, head_loss_a = teacher_losses(v[keep], o_v[keep], audio[keep], head_a, y[keep], 0.5)
        ct_i, kl_i, head_loss_i = teacher_losses(v, o_v, t_i, head_i, y, 0.1)
        video_loss = F.cross_entropy(o_v, y) + 0.5 * (ct_a + ct_i) + 0.5 * (kl_a + kl_i)
        opt_av.zero_grad()
        head_loss_a.backward(retain_graph=True)
        opt_iv.zero_grad()
        head_loss_i.backward(retain_graph=True)
        opt_video.zero_grad()
        video_loss.backward()
        opt_av.step()
        opt_iv.step()
        opt_video.step()
        return video_loss.item()

    return step


def torch_timing(b, iters):
    step = make_step(b)
    step()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(samples), "min_s": min(samples)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avkd", default="target/release/avkd")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3, help="timed steps (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-only", action="store_true")
    ap.add_argument("--json", help="also write the row here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); torch {torch.__version__}; {args.threads} threads")
    name = f"ccl_ai_step_b{args.batch}"
    avkd = None
    if not args.torch_only:
        cmd = [args.avkd, "bench", "distill", "--batch", str(args.batch), "--iters", str(args.iters), "--json"]
        print("running:", " ".join(cmd), file=sys.stderr)
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        avkd = {t["name"]: t for t in json.loads(res.stdout)}[name]["median_s"]
    print(f"running PyTorch {torch.__version__} ({args.threads} threads)", file=sys.stderr)
    ref = torch_timing(args.batch, args.iters)
    ratio = avkd / ref["median_s"] if avkd else None
    print(f"{'benchmark':20} {'avkd (s)':>10} {'torch (s)':>10} {'ratio avkd/torch':>17}")
    fa = f"{avkd:10.3f}" if avkd else f"{'-':>10}"
    fr = f"{ratio:17.2f}" if ratio else f"{'-':>17}"
    print(f"{name:20} {fa} {ref['median_s']:10.3f} {fr}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "torch": torch.__version__, "threads": args.threads,
                       "rows": [{"name": name, "avkd_s": avkd, "torch_s": ref["median_s"], "ratio": ratio}]}, f,
                      indent=1)


if __name__ == "__main__":
    main()
