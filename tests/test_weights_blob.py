"""Weights in a separate, checked blob (`tinyc compile --weights-blob`), loaded and checked by the
generated code on the emulated target: corrupt, truncated and mismatched blobs are refused with
their own error; a retrained model's blob is accepted and gives the retrained model's outputs."""
from __future__ import annotations

import importlib.util
import json
import struct
import zlib

import numpy as np
import onnx
import pytest

from tests.conftest import ROOT, need_arm, run_cli, shared_model
from tinyc import interpreter
from tinyc.codegen import generate
from tinyc.codegen.blob import HEADER_BYTES, fingerprint
from tinyc.compiler import prepare
from tinyc.emulator import build_firmware, run_firmware
from tinyc.errors import TinycError
from tinyc.targets import get_target

DIGITS = ROOT / "examples" / "digits"


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """The digits MLP trained again from another random start: same architecture, new weights."""
    spec = importlib.util.spec_from_file_location("digits_train", DIGITS / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    x_train, _, y_train, _ = train_test_split(x, d.target, test_size=0.2, random_state=train.SEED, stratify=d.target)
    clf = MLPClassifier(hidden_layer_sizes=(48, 24), max_iter=300, random_state=7).fit(x_train, y_train)
    path = tmp_path_factory.mktemp("retrained") / "digits_retrained.onnx"
    onnx.save(train.export(clf), path)
    return path


def _samples(n=8):
    pixels = np.load(DIGITS / "digits_test.npz")["pixels"][:n]
    return [{"pixels": p.reshape(1, 64)} for p in pixels]


def _build(model_path, target, build_dir, name="digits"):
    g = prepare(model_path, progress=False).graph
    m = generate(g, target, name=name, weights_blob=True)
    return g, m, build_firmware(m, target, build_dir)


def _refused(m, target, program, blob, samples=None) -> str:
    with pytest.raises(TinycError) as e:
        run_firmware(m, target, program, samples or _samples(1), timeout=60, blob=blob)
    return str(e.value)


@pytest.mark.parametrize("target_name", ["cortex-m4", "host"])
def test_blob_checks_and_field_update(target_name, retrained, tmp_path):
    if target_name != "host":
        need_arm()
    target = get_target(target_name)
    g, m, program = _build(DIGITS / "digits_mlp.onnx", target, tmp_path / "a")
    blob = m.binaries["digits_weights.bin"]
    samples = _samples()
    # its own blob: the outputs of the model
    got = run_firmware(m, target, program, samples, timeout=60).outputs
    for s, o in zip(samples, got):
        np.testing.assert_allclose(o["probs"], interpreter.run(g, s)["probs"], rtol=1e-5, atol=1e-6)

    # header as documented; the CRC is zlib's over the payload
    magic, version, hdr, payload, crc = struct.unpack_from("<4sHHII", blob)
    assert (magic, version, hdr, payload) == (b"TCWB", 1, HEADER_BYTES, len(blob) - HEADER_BYTES)
    assert crc == zlib.crc32(blob[HEADER_BYTES:]) and payload >= m.report["weights_bytes"]

    # one byte flipped in the payload, in the fingerprint, in the magic; cut short; another model's blob
    flipped = bytearray(blob)
    flipped[HEADER_BYTES + payload // 2] ^= 0x01
    assert "corrupt (CRC-32 mismatch)" in _refused(m, target, program, bytes(flipped))
    wrong_fp = bytearray(blob)
    wrong_fp[20] ^= 0x80
    assert "different model" in _refused(m, target, program, bytes(wrong_fp))
    assert "bad magic" in _refused(m, target, program, b"XXXX" + blob[4:])
    assert "shorter than" in _refused(m, target, program, blob[:-1])
    assert "shorter than" in _refused(m, target, program, blob[:10])
    other = generate(prepare(DIGITS / "digits_cnn.onnx", progress=False).graph, target, name="digits",
                     weights_blob=True).binaries["digits_weights.bin"]
    assert "different model" in _refused(m, target, program, other)

    # retrained weights, same architecture: same code, so the deployed firmware accepts the new
    # blob and computes what the reference computes for the retrained model
    g2 = prepare(retrained, progress=False).graph
    m2 = generate(g2, target, name="digits", source="digits_mlp.onnx", weights_blob=True)
    assert fingerprint(m2.files["digits.c"]) == fingerprint(m.files["digits.c"])
    new = run_firmware(m, target, program, samples, timeout=60, blob=m2.binaries["digits_weights.bin"]).outputs
    for s, o, old in zip(samples, new, got):
        np.testing.assert_allclose(o["probs"], interpreter.run(g2, s)["probs"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.stack([o["probs"] for o in new]), np.stack([o["probs"] for o in got]), atol=1e-3)


def test_int8_kws_blob_bit_exact_on_m4(tmp_path):
    """The DSP kernels' own weight layouts travel in the blob too; outputs stay bit-exact."""
    need_arm()
    target = get_target("cortex-m4")
    samples = np.load(shared_model("mlperf-tiny/samples.npz"))
    feeds = [{"input_1": samples["kws_int8"].reshape(1, 49, 10, 1)}]
    g, m, program = _build(shared_model("mlperf-tiny/kws_int8.onnx"), target, tmp_path, name="kws")
    got = run_firmware(m, target, program, feeds, timeout=120).outputs[0]
    assert np.array_equal(got["Identity"], interpreter.run(g, feeds[0])["Identity"])
    assert "weights blob was refused" in _refused(m, target, program, m.binaries["kws_weights.bin"][:-4096], feeds)


def test_compile_weights_blob_cli(tmp_path):
    """The CLI writes the blob next to the code; the code holds no weight values; report.json
    names the blob, its size, fingerprint and CRC; the header documents the API."""
    out = tmp_path / "out"
    r = run_cli("compile", str(DIGITS / "digits_mlp.onnx"), "-t", "cortex-m4", "-o", str(out), "--weights-blob")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    info = report["weights_blob"]
    data = (out / info["file"]).read_bytes()
    assert len(data) == info["bytes"] and f"{zlib.crc32(data[HEADER_BYTES:]):08x}" == info["crc32"]
    assert data[16:48].hex() == info["fingerprint_sha256"]
    header = (out / "digits_mlp.h").read_text()
    assert "digits_mlp_load_weights(const void *blob, size_t size)" in header
    assert "DIGITS_MLP_BLOB_BAD_CHECKSUM (-6)" in header
    code = (out / "digits_mlp.c").read_text()
    w = prepare(DIGITS / "digits_mlp.onnx", progress=False).graph.tensors["fc0.weight"].data
    assert "%.8e" % float(w.reshape(-1)[0]) not in code  # no weight values in the code
    assert report["flash_bytes"] >= info["bytes"]  # the blob's partition counts towards flash


def test_verify_weights_blob_build(tmp_path):
    """`tinyc verify --weights-blob`: the firmware loads and checks the blob, then matches the
    reference; the code in the ELF (with the blob check) is what report.json says."""
    need_arm()
    r = run_cli("verify", str(shared_model("mlperf-tiny/kws_int8.onnx")), "-t", "cortex-m4", "--weights-blob")
    assert r.returncode == 0, r.stderr
    assert "bit-exact" in r.stdout and "PASS" in r.stdout
    assert "code" in r.stdout and "!=" not in r.stdout
