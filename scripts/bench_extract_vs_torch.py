#!/usr/bin/env python3
"""Feature-extraction throughput of CCL's audio teacher: avkd (Candle) against PyTorch.

The PyTorch side is PANNs `Cnn14_emb512` (qiuqiangkong/audioset_tagging_cnn @d2f4b8c,
pytorch/models.py, with torchlibrosa's Spectrogram + LogmelFilterBank front end), restated in plain
PyTorch from shared/spec/ccl.md §2.3 / §3.3 with the official module names, at full size (widths
64..2048, 512-d embedding), random weights, eval mode, under torch.inference_mode():

  waveform [B, N] at 32 kHz -> reflect pad 512 -> conv1d DFT (n_fft 1024, hop 320, periodic Hann)
  -> power -> @ melW (64 Slaney mels, 50..14000 Hz) -> 10 log10(max(x, 1e-10)) -> bn0 over mels
  -> 6 ConvBlocks (conv3x3-BN-ReLU x2, avg-pool 2x2; the last 1x1) -> mean over frequency
  -> max + mean over time -> fc1 -> ReLU = the 512-d embedding CCL distils from.

It times N random 10-s waveforms, B per forward, then runs `avkd bench extract --json` with the same
thread count (RAYON_NUM_THREADS) and prints videos/s for each and the ratios avkd / PyTorch
(> 1: avkd is faster). avkd's rows are the model alone on the same kind of input
(`cnn14_forward_bB`), and the whole `avkd extract` job on synthetic clips of the same length
(`avkd_extract_bB_wW`: WAV decoding, forwards, writing the feature store).

With --verify the restated model is checked first against the official one: the reduced fixture
(tests/fixtures/ccl/panns_cnn14_emb512, written by PANNs' own code) loads with strict=True, the front
end's DFT kernels and mel filterbank computed here equal its frozen tensors, and its embedding equals
the official output. That is what shows the benchmark times the real Cnn14_emb512.

Usage:
  python3 scripts/bench_extract_vs_torch.py [--avkd target/release/avkd] [--videos 8] [--seconds 10]
         [--batches 1,4] [--threads 2] [--torch-only] [--model-only] [--json OUT]
  python3 scripts/bench_extract_vs_torch.py --verify [tests/fixtures/ccl/panns_cnn14_emb512]

Needs torch only (no numpy, no torchlibrosa).
"""
import argparse, json, math, os, subprocess, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

# PANNs inference defaults (Cnn14_emb512_mAP=0.420.pth); --verify uses the fixture's reduced ones.
FULL = dict(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50.0, fmax=14000.0,
            classes_num=527, widths=(64, 128, 256, 512, 1024, 2048), emb_dim=512)
FIXTURE = "tests/fixtures/ccl/panns_cnn14_emb512"


# ----------------------------------------------------------------------------------------------------
# Front end (torchlibrosa 0.0.9: Spectrogram with conv1d DFT kernels, LogmelFilterBank).
def hz_to_mel(f):
    """librosa's Slaney mel scale (htk=False): linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    return f / f_sp if f < min_log_hz else min_log_hz / f_sp + math.log(f / min_log_hz) / logstep


def mel_to_hz(m):
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return f_sp * m if m < min_log_mel else min_log_hz * math.exp(logstep * (m - min_log_mel))


def slaney_mel(sr, n_fft, n_mels, fmin, fmax):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney'), transposed to
    [n_fft/2+1, n_mels] as torchlibrosa's melW."""
    bins = n_fft // 2 + 1
    fft_freqs = torch.linspace(0, sr / 2, bins, dtype=torch.float64)
    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    mel_f = torch.tensor([mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)],
                         dtype=torch.float64)
    fdiff = mel_f[1:] - mel_f[:-1]
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.T.contiguous().float()


class STFT(nn.Module):
    """torchlibrosa STFT as conv1d: periodic Hann, centred with reflect padding."""

    def __init__(self, n_fft, hop):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        n = torch.arange(n_fft, dtype=torch.float64)
        window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n[None, :] / n_fft
        self.conv_real = nn.Conv1d(1, n_fft // 2 + 1, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, n_fft // 2 + 1, n_fft, stride=hop, bias=False)
        self.conv_real.weight.data = (torch.cos(angle) * window)[:, None, :].float()
        self.conv_imag.weight.data = (-torch.sin(angle) * window)[:, None, :].float()

    def forward(self, x):  # [B, N] -> real, imag [B, 1, T, F]
        x = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.conv_real(x).transpose(1, 2)[:, None], self.conv_imag(x).transpose(1, 2)[:, None]


class Spectrogram(nn.Module):
    def __init__(self, n_fft, hop):
        super().__init__()
        self.stft = STFT(n_fft, hop)

    def forward(self, x):
        real, imag = self.stft(x)
        return real ** 2 + imag ** 2


class LogmelFilterBank(nn.Module):
    def __init__(self, c):
        super().__init__()
        melw = slaney_mel(c["sample_rate"], c["window_size"], c["mel_bins"], c["fmin"], c["fmax"])
        self.melW = nn.Parameter(melw, requires_grad=False)

    def forward(self, x):
        mel = torch.matmul(x, self.melW)
        # ref 1.0, amin 1e-10, top_db None: 10 log10(max(x, amin)) - 10 log10(max(amin, ref)).
        return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))


# ----------------------------------------------------------------------------------------------------
# Cnn14_emb512 (pytorch/models.py).
class ConvBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)

    def forward(self, x, pool_size):
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class Cnn14Emb512(nn.Module):
    def __init__(self, c=FULL):
        super().__init__()
        self.spectrogram_extractor = Spectrogram(c["window_size"], c["hop_size"])
        self.logmel_extractor = LogmelFilterBank(c)
        self.bn0 = nn.BatchNorm2d(c["mel_bins"])
        c_in = 1
        for i, w in enumerate(c["widths"]):
            setattr(self, f"conv_block{i + 1}", ConvBlock(c_in, w))
            c_in = w
        self.fc1 = nn.Linear(c["widths"][-1], c["emb_dim"], bias=True)
        self.fc_audioset = nn.Linear(c["emb_dim"], c["classes_num"], bias=True)

    def forward(self, waveform):
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # [B, 1, T, mel]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, pool_size=(2, 2) if i < 5 else (1, 1))
            x = F.dropout(x, p=0.2, training=self.training)
        x = torch.mean(x, dim=3)
        x = torch.max(x, dim=2)[0] + torch.mean(x, dim=2)
        x = F.dropout(x, p=0.5, training=self.training)
        embedding = F.relu_(self.fc1(x))
        return {"embedding": embedding, "clipwise_output": torch.sigmoid(self.fc_audioset(embedding))}


def time_torch(videos, seconds, batch):
    torch.manual_seed(0)
    model = Cnn14Emb512().eval()
    samples = int(seconds * FULL["sample_rate"])
    batch = max(1, min(batch, videos))
    x = torch.randn(batch, samples) * 0.1
    with torch.inference_mode():
        out = model(x)["embedding"]
        assert out.shape == (batch, FULL["emb_dim"]), out.shape
        start, done = time.perf_counter(), 0
        while done < videos:
            n = min(batch, videos - done)
            model(x[:n])["embedding"].sum().item()
            done += n
        wall = time.perf_counter() - start
    return {"name": f"torch_cnn14_forward_b{batch}", "videos": videos, "batch": batch, "wall_s": wall,
            "videos_per_s": videos / wall}


def read_safetensors(path):
    """The tensors of a safetensors file (F32 only), without the safetensors package."""
    import struct
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header, base = json.loads(data[8:8 + n]), 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        lo, hi = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[base + lo:base + hi]), dtype=torch.float32).reshape(info["shape"])
    return out


def verify(fixture):
    """The restated model against the official one: the reduced fixture checkpoint (written by PANNs'
    own Cnn14_emb512 and torchlibrosa) loads with strict=True, its frozen front-end tensors equal the
    ones computed here, and its embedding equals the official output."""
    cfg = json.load(open(os.path.join(fixture, "config.json")))["constructor"]["kwargs"]
    cfg = dict(cfg, widths=tuple(cfg["widths"]))
    state = torch.load(os.path.join(fixture, "Cnn14_emb512_reduced.pth"), map_location="cpu",
                       weights_only=False)["model"]
    model = Cnn14Emb512(cfg).eval()
    ours = model.state_dict()
    worst = 0.0
    for name in ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                 "logmel_extractor.melW"):
        d = (ours[name] - state[name]).abs().max().item()
        worst = max(worst, d)
        print(f"{name:48} max abs diff {d:.2e}")
    model.load_state_dict(state, strict=True)
    io = read_safetensors(os.path.join(fixture, "panns_io.safetensors"))
    with torch.inference_mode():
        out = model(io["waveform"])
    for name in ("embedding", "clipwise_output"):
        d = (out[name] - io[name]).abs().max().item()
        worst = max(worst, d)
        print(f"{name:48} max abs diff {d:.2e}")
    ok = worst < 1e-4
    print("verified: the restated Cnn14_emb512 gives the official outputs" if ok else "MISMATCH")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avkd", default=os.environ.get("AVKD", "target/release/avkd"))
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="runs/bench-extract-data")
    ap.add_argument("--torch-only", action="store_true")
    ap.add_argument("--model-only", action="store_true", help="skip avkd's end-to-end extract rows")
    ap.add_argument("--json")
    ap.add_argument("--verify", nargs="?", const=FIXTURE, metavar="FIXTURE_DIR",
                    help=f"check the restated model against the official fixture ({FIXTURE}) and stop")
    args = ap.parse_args()
    if args.verify:
        sys.exit(0 if verify(args.verify) else 1)
    batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, {args.threads} threads, {args.videos} waveforms of "
          f"{args.seconds} s at 32 kHz", file=sys.stderr)
    rows = [time_torch(args.videos, args.seconds, b) for b in batches]
    avkd_rows = []
    if not args.torch_only:
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), RUST_LOG="warn")
        cmd = [args.avkd, "bench", "extract", "--json", "--videos", str(args.videos), "--seconds",
               str(args.seconds), "--batches", args.batches, "--data", args.data]
        if args.model_only:
            cmd.append("--model-only")
        avkd_rows = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                              text=True).stdout)
    torch_by_batch = {r["batch"]: r for r in rows}
    print(f"{'row':28} {'videos/s':>9} {'vs torch':>9}")
    for r in rows:
        print(f"{r['name']:28} {r['videos_per_s']:9.3f}")
    for r in avkd_rows:
        t = torch_by_batch.get(r["batch"])
        ratio = r["videos_per_s"] / t["videos_per_s"] if t else float("nan")
        r["ratio_vs_torch"] = ratio
        print(f"{r['name']:28} {r['videos_per_s']:9.3f} {ratio:8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "torch_rows": rows,
                       "avkd_rows": avkd_rows}, f, indent=1)


if __name__ == "__main__":
    main()
