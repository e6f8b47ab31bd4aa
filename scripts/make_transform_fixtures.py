"""Reference outputs for avkd's video transforms (tests/data_transforms.rs).

Pillow gives the u8 references (resize BILINEAR after a crop, timm's RandAugment ops with the
arguments timm computes at magnitude 7, and torchvision's PIL ColorJitter / grayscale ops); numpy re-implements torch's
F.interpolate(mode="bilinear", align_corners=False) in float32 (torch is not installed here).

Run: python3 scripts/make_transform_fixtures.py  (needs pillow, numpy) -> tests/fixtures/transforms/
"""
import json
import math
import os

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "transforms")
FILL = (128, 128, 128)
BIL = Image.BILINEAR


def make_input():
    rng = np.random.default_rng(0)
    h, w = 30, 40
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[..., 0] = 40 + 150 * x / w
    img[..., 1] = 30 + 170 * y / h
    img[..., 2] = 120 + 60 * np.sin(x / 4.0) * np.cos(y / 5.0)
    img[8:16, 10:22] = [230, 40, 60]
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def affine(img, m):
    return img.transform(img.size, Image.AFFINE, m, resample=BIL, fillcolor=FILL)


def ops(img):
    m = 7 / 10.0
    w, h = img.size
    yield "autocontrast", "AutoContrast", 0.0, ImageOps.autocontrast(img)
    yield "equalize", "Equalize", 0.0, ImageOps.equalize(img)
    yield "invert", "Invert", 0.0, ImageOps.invert(img)
    bits = 4 - int(m * 4)
    yield "posterize", "PosterizeIncreasing", bits, ImageOps.posterize(img, bits)
    thr = 256 - int(m * 256)
    yield "solarize", "SolarizeIncreasing", thr, ImageOps.solarize(img, thr)
    add = int(m * 110)
    yield "solarize_add", "SolarizeAdd", add, solarize_add(img, add)
    for sign, tag in ((1, "pos"), (-1, "neg")):
        f = 1.0 + sign * m * 0.9
        yield f"color_{tag}", "ColorIncreasing", f, ImageEnhance.Color(img).enhance(f)
        yield f"contrast_{tag}", "ContrastIncreasing", f, ImageEnhance.Contrast(img).enhance(f)
        yield f"brightness_{tag}", "BrightnessIncreasing", f, ImageEnhance.Brightness(img).enhance(f)
        yield f"sharpness_{tag}", "SharpnessIncreasing", f, ImageEnhance.Sharpness(img).enhance(f)
        deg = sign * m * 30.0
        yield f"rotate_{tag}", "Rotate", deg, img.rotate(deg, resample=BIL, fillcolor=FILL)
        s = sign * m * 0.3
        yield f"shear_x_{tag}", "ShearX", s, affine(img, (1, s, 0, 0, 1, 0))
        yield f"shear_y_{tag}", "ShearY", s, affine(img, (1, 0, 0, s, 1, 0))
        p = sign * m * 0.45
        yield f"translate_x_{tag}", "TranslateXRel", p, affine(img, (1, 0, p * w, 0, 1, 0))
        yield f"translate_y_{tag}", "TranslateYRel", p, affine(img, (1, 0, 0, 0, 1, p * h))


def torch_bilinear(x, oh, ow):
    """upsample_bilinear2d, align_corners=False, scale = in/out in float32, on [H, W] float32."""
    ih, iw = x.shape

    def taps(i, o):
        scale = np.float32(i) / np.float32(o)
        src = scale * (np.arange(o, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
        src = np.maximum(src, np.float32(0))
        i0 = np.minimum(src.astype(np.int64), i - 1)
        i1 = np.where(i0 < i - 1, i0 + 1, i0)
        l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
        return i0, i1, (np.float32(1) - l1).astype(np.float32), l1

    y0, y1, h0, h1 = taps(ih, oh)
    x0, x1, w0, w1 = taps(iw, ow)
    top = x[y0][:, x0] * w0 + x[y0][:, x1] * w1
    bot = x[y1][:, x0] * w0 + x[y1][:, x1] * w1
    return (top * h0[:, None] + bot * h1[:, None]).astype(np.float32)


def adjust_hue(img, hue_factor):
    """torchvision.transforms._functional_pil.adjust_hue on an RGB image."""
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.int64(hue_factor * 255).astype(np.uint8)  # wraps, as torchvision
    h = Image.fromarray(np_h, "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def color_jitter(img, order, b, c, s, h):
    """ColorJitter.forward with fixed fn_idx and factors (torchvision's PIL functional ops)."""
    for i in order:
        if i == 0:
            img = ImageEnhance.Brightness(img).enhance(b)
        elif i == 1:
            img = ImageEnhance.Contrast(img).enhance(c)
        elif i == 2:
            img = ImageEnhance.Color(img).enhance(s)
        else:
            img = adjust_hue(img, h)
    return img


def color_fixtures(img, manifest):
    """Hue shifts, the HSV round trip, grayscale and full jitters on input.png and on
    color_input.png (uniform random colours, numpy seed 2, so every hue sector occurs)."""
    rng = np.random.default_rng(2)
    wheel = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")
    wheel.save(os.path.join(OUT, "color_input.png"))
    entries = []
    for src_name, src in (("input.png", img), ("color_input.png", wheel)):
        tag = src_name.split(".")[0]

        def put(name, out, **kw):
            fn = f"color_{tag}_{name}.png"
            out.save(os.path.join(OUT, fn))
            kind = name if name.startswith("hsv") else name.split("_")[0]
            entries.append({"input": src_name, "file": fn, "kind": kind, **kw})

        for hf, name in ((0.2, "p20"), (-0.2, "m20"), (0.05, "p05"), (-0.5, "m50"), (0.5, "p50")):
            put(f"hue_{name}", adjust_hue(src, hf), factor=hf)
        hsv = src.convert("HSV")
        put("hsv_raw", Image.frombytes("RGB", src.size, hsv.tobytes()))
        put("hsv_roundtrip", hsv.convert("RGB"))
        gray = src.convert("L")
        put("gray", Image.fromarray(np.dstack([np.array(gray)] * 3), "RGB"))
        for k, (order, fac) in enumerate((([3, 0, 2, 1], (1.23, 0.71, 1.37, -0.13)),
                                          ([1, 2, 0, 3], (0.64, 1.38, 0.62, 0.17)))):
            b, c, s, h = fac
            put(f"jitter_{k}", color_jitter(src, order, b, c, s, h), order=order,
                factors=[b, c, s, h])
    manifest["color"] = entries


def main():
    os.makedirs(OUT, exist_ok=True)
    img = make_input()
    img.save(os.path.join(OUT, "input.png"))
    manifest = {"ops": [], "resize": [], "torch_bilinear": []}
    for name, op, arg, out in ops(img):
        fn = f"op_{name}.png"
        out.save(os.path.join(OUT, fn))
        manifest["ops"].append({"file": fn, "op": op, "arg": float(arg)})
    # torchvision resized_crop on PIL: crop, then resize((w, h), BILINEAR).
    for rect, size in [((3, 2, 33, 25), (17, 13)), ((0, 0, 40, 30), (23, 17)),
                       ((5, 4, 20, 15), (50, 41)), ((0, 0, 40, 30), (40, 11)), ((7, 1, 13, 29), (9, 29))]:
        x, y, w, h = rect
        out = img.crop((x, y, x + w, y + h)).resize(size, BIL)
        fn = f"resize_{x}_{y}_{w}x{h}_to_{size[0]}x{size[1]}.png"
        out.save(os.path.join(OUT, fn))
        manifest["resize"].append({"file": fn, "rect": list(rect), "size": list(size)})
    rng = np.random.default_rng(1)
    plane = rng.normal(0, 1, (9, 13)).astype(np.float32)
    for oh, ow in [(5, 4), (20, 31), (9, 7), (4, 13)]:
        manifest["torch_bilinear"].append({"out": [oh, ow], "values": torch_bilinear(plane, oh, ow).ravel().tolist()})
    manifest["torch_bilinear_input"] = {"shape": [9, 13], "values": plane.ravel().tolist()}
    color_fixtures(img, manifest)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=0)


if __name__ == "__main__":
    main()
