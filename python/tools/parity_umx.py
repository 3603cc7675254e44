#!/usr/bin/env python3
"""Build the CI Open-Unmix package and the reference outputs of `openunmix.Separator`.

Writes core/tests/data/neural/umx/: two random-weight targets (vocals, drums; a
small hidden size, umxhq's shape otherwise) exported by export_umx.py, and refs/
with inputs and `openunmix.model.Separator(...)(audio)` outputs (run in float64) for several
Wiener filter settings (niter, softmask, residual, wiener_win_len), with mono
input duplicated to stereo as `openunmix.utils.preprocess` does.
    /opt/ssref/bin/python python/tools/parity_umx.py   # torch, onnxruntime, openunmix (no-deps)
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _refio import Refs, test_signal  # noqa: E402
import export_umx  # noqa: E402  (stubs torchaudio, imports openunmix)
from openunmix.model import Separator  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "neural", "umx")
TARGETS = ["vocals", "drums"]


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    subprocess.run([sys.executable, os.path.join(HERE, "export_umx.py"), "--config", "ci", "--seed", "0",
                    "--targets", ",".join(TARGETS), "--name", "umx-ci", "--out", OUT],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    export_umx.patch_forward()
    models = {t: export_umx.random_model(export_umx.CONFIGS["ci"], i) for i, t in enumerate(TARGETS)}

    # The graphs reproduce the torch models, at a frame count other than the export's.
    for t, m in models.items():
        x = torch.rand(1, 2, 2049, 57) * 3
        with torch.no_grad():
            want = m(x).numpy()
        got = ort.InferenceSession(os.path.join(OUT, f"umx-ci.{t}.onnx")).run(None, {"magnitude": x.numpy()})[0]
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 1e-4, f"{t}: ONNX differs from torch by {err}"
        print(f"graph check {t}: {err:.2e}")

    refs = Refs(os.path.join(OUT, "refs"))
    cases = [
        # name, channels, frames, niter, softmask, residual, wiener_win_len
        ("default", 2, 30000 + 123, 1, False, False, 300),
        ("mono", 1, 20000 + 7, 1, False, False, 300),
        ("softmask", 2, 25000 + 11, 0, True, False, 300),
        ("residual_em2", 2, 30000 + 555, 2, False, True, 8),
        ("whole", 2, 20000 + 3, 1, True, False, None),
    ]
    for i, (name, channels, frames, niter, softmask, residual, win) in enumerate(cases):
        x = test_signal(channels, frames, 40 + i)
        audio = torch.from_numpy(x)[None]
        if channels == 1:
            audio = torch.repeat_interleave(audio, 2, dim=1)
        sep = Separator(models, niter=niter, softmask=softmask, residual=residual, wiener_win_len=win,
                        n_fft=4096, n_hop=1024, nb_channels=2, filterbank="torch")
        sep.freeze()
        # In double precision, as openunmix's filtering docs advise: its float32
        # EM differs from its own float64 run by up to 3e-3 of the peak where the
        # 2×2 covariances are ill-conditioned (identical channels, short windows).
        with torch.no_grad():
            out = sep.double()(audio.double())[0].float().numpy()
        refs.save(f"{name}_input", x)
        refs.save(f"{name}_output", out, niter=niter, softmask=softmask, residual=residual,
                  wiener_win_len=win if win else 0)
        print(f"{name}: input {x.shape}, output {out.shape}")
    refs.close()


if __name__ == "__main__":
    main()
