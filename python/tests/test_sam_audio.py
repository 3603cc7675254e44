"""A text-prompted model (SAM-Audio) from Python: the reference run's draws
give the reference's target and residual (python/tools/parity_sam_audio.py's
data, Meta's code on a tiny seeded model)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import splitsound as ss

DIR = Path(__file__).resolve().parents[2] / "core/tests/data/neural/sam-audio"


def ref(name):
    index = json.loads((DIR / "refs/index.json").read_text())["arrays"][name]
    a = np.fromfile(DIR / "refs" / index["file"], dtype="<f4").reshape(index["shape"])
    return a, index["params"]


@pytest.fixture(scope="module")
def package():
    if not os.environ.get("SPLITSOUND_ORT_LIB"):
        pytest.fail("SPLITSOUND_ORT_LIB is not set: run the tests through scripts/test-python.sh")
    return str(DIR / "sam-audio-tiny.json")


def test_reference_draws_give_the_reference_output(package):
    x, params = ref("input_1")
    noise, _ = ref("ode_noise")
    message, _ = ref("watermark_message")
    sep = ss.Separator(package, description=params["prompt"], ode_noise=noise[1:2],
                       watermark_message=message[2:].astype(np.int64))
    assert sep.stems == ["target", "residual"]
    out = sep.separate(x, 48000)
    for stem in ("target", "residual"):
        want = ref(f"{stem}_1")[0][: x.size]
        err = np.abs(out[stem] - want).max() / np.abs(want).max()
        assert err < 1e-5, (stem, err)


def test_stereo_keeps_its_layout_and_sums_back(package):
    x, _ = ref("input_0")
    stereo = np.stack([x, 0.5 * x])
    out = ss.Separator(package, description="the piano", seed=1).separate(stereo, 48000)
    assert out["target"].shape == stereo.shape
    np.testing.assert_allclose(out["target"] + out["residual"], stereo, atol=1e-5 * np.abs(stereo).max())


def test_descriptions_it_cannot_take(package):
    sep = ss.Separator(package)
    with pytest.raises(ss.InvalidArgumentError, match="description"):
        sep.separate(np.zeros(4800, np.float32), 48000)
    with pytest.raises(ss.InvalidArgumentError, match="description"):
        ss.Separator(package, description="犬が吠える").separate(np.zeros(4800, np.float32), 48000)
    with pytest.raises(ss.InvalidArgumentError, match="ODE noise"):
        ss.Separator(package, description="the piano", ode_noise=np.zeros((2, 3, 16), np.float32))\
            .separate(np.zeros(4800, np.float32), 48000)


def test_the_description_can_change_and_fixed_stem_models_refuse_one(package, model):
    x, _ = ref("input_0")
    sep = ss.Separator(package, description="the piano", seed=2)
    a = sep.separate(x, 48000)["target"]
    sep.set_description("a dog barking")
    b = sep.separate(x, 48000)["target"]
    sep.set_description("the piano")
    np.testing.assert_array_equal(sep.separate(x, 48000)["target"], a)
    assert np.abs(a - b).max() > 0
    with pytest.raises(ss.InvalidArgumentError, match="description"):
        sep.set_description("")
    with pytest.raises(ss.InvalidArgumentError, match="description"):
        ss.Separator("builtin:hpss", description="a dog")
    with pytest.raises(ss.InvalidArgumentError):
        ss.Separator(str(model), description="a dog")
    with pytest.raises(ss.InvalidArgumentError, match="description"):
        ss.Separator("builtin:hpss").set_description("a dog")
