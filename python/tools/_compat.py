"""Import helpers for the reference packages under PyPI's torch.

openunmix imports torchaudio at module level (for file loading and resampling we
do not use), and `import torchaudio` fails next to PyPI's CUDA torch. A stand-in
module lets `import openunmix` succeed; anything that really calls torchaudio
raises.
"""
import sys
import types


def stub_torchaudio():
    if "torchaudio" in sys.modules:
        return
    mod = types.ModuleType("torchaudio")

    def missing(name):
        raise AttributeError(f"torchaudio.{name} is not available (stubbed by python/tools/_compat.py)")

    mod.__getattr__ = missing
    sys.modules["torchaudio"] = mod
