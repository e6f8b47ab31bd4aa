#!/usr/bin/env python3
"""Writes the LinearSVC fixtures of tests/eval_linear.rs (tests/fixtures/eval/svm_*.safetensors).

A small multi-class problem (300 train / 100 test samples, 32 features, 5 overlapping Gaussian
classes) and a binary one are stored as float32; scikit-learn's LinearSVC is fitted on exactly those
float32 values (liblinear sees them as float64) with the dual coordinate-descent solver
(`dual=True`, the solver XKD's sklearn versions used by default) for C in {0.01, 0.1, 1}:

  * "tight" runs: tol=1e-10, max_iter=200000, so that the (unique) optimum is reached and any
    converged solver must give the same coef_/intercept_/decision_function;
  * "paper" runs: the XKD setting (tol=1e-4, max_iter=1000, random_state=99999), whose accuracy is
    recorded too.

Usage: python3 scripts/make_svm_fixture.py [out_dir]   (needs numpy, scikit-learn, safetensors)
"""
import sys
import warnings

import numpy as np
import sklearn
from safetensors.numpy import save_file
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/eval"
rng = np.random.default_rng(20240601)


def blobs(n, d, k, spread):
    centers = rng.normal(0.0, 1.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    x = centers[y] + spread * rng.normal(0.0, 1.0, size=(n, d))
    return x.astype(np.float32), y.astype(np.int64)


def problem(name, k, spread):
    x, y = blobs(400, 32, k, spread)
    # Same class centres for train and test: split one draw.
    return {
        "x_train": x[:300],
        "y_train": y[:300],
        "x_test": x[300:],
        "y_test": y[300:],
    }


data = {"multi": problem("multi", 5, 1.6), "binary": problem("binary", 2, 2.2)}
for name, d in data.items():
    save_file(d, f"{out}/svm_{name}_data.safetensors", metadata={"sklearn": sklearn.__version__})

for name, d in data.items():
    for c in [0.01, 0.1, 1.0]:
        tensors = {}
        for tag, tol, max_iter in [("tight", 1e-10, 200000), ("paper", 1e-4, 1000)]:
            svm = LinearSVC(C=c, dual=True, tol=tol, max_iter=max_iter, random_state=99999)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(d["x_train"].astype(np.float64), d["y_train"])
            dec = svm.decision_function(d["x_test"].astype(np.float64))
            acc = float((svm.predict(d["x_test"].astype(np.float64)) == d["y_test"]).mean())
            # coef_ of a multi-class LinearSVC is Fortran-ordered, which safetensors' numpy writer
            # would store transposed: make every array C-contiguous.
            tensors[f"{tag}.coef"] = np.ascontiguousarray(svm.coef_, dtype=np.float64)
            tensors[f"{tag}.intercept"] = svm.intercept_.astype(np.float64)
            tensors[f"{tag}.decision"] = np.asarray(dec, dtype=np.float64)
            tensors[f"{tag}.accuracy"] = np.array([acc], dtype=np.float64)
            tensors[f"{tag}.n_iter"] = np.array([int(np.max(svm.n_iter_))], dtype=np.int64)
            print(f"{name} C={c} {tag}: acc={acc:.4f} n_iter={svm.n_iter_}")
        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        save_file(tensors, f"{out}/svm_{name}_C{c}.safetensors", metadata={"C": str(c), "sklearn": sklearn.__version__})
