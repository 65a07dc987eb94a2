"""Caps on every read (SECURITY.md): zip bombs, lying zip headers, oversize JSON and metadata
are refused in one line naming the file, quickly and with flat memory."""

from __future__ import annotations

import json
import time
import tracemalloc
import zipfile
import zlib

import pytest

from emotf import storage
from emotf.cli.export import main as export_main
from emotf.configs import ModelConfig, TrainConfig
from emotf.runs import model_io
from emotf.runs.model_io import ModelLoadError, check_archive, load_model_file, load_run_model
from emotf.serving.export import read_metadata
from emotf.serving.metadata import MAX_METADATA_BYTES
from emotf.storage import FileTooLargeError, as_path, read_json
from tests.helpers_crafted import craft_zip_bomb, write_zip

TINY = ModelConfig(
    num_segments=2, video_stem_width=4, video_widths=(8,), audio_widths=(4, 8), fc_units=8
)
FAST_SECONDS = 3.0  # the bomb ran for a minute and reached 4 GB
FLAT_BYTES = 32 << 20


def _refused_fast(call, error=ModelLoadError, match=None) -> str:
    """Run `call`, expecting `error`; assert it came quickly with flat Python memory."""
    as_path("/").is_dir()  # TensorFlow's filesystem loaded before measuring
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error, match=match) as caught:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - start
    assert seconds < FAST_SECONDS, seconds
    assert peak < FLAT_BYTES, peak
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """The issue's file: ~3 MB on disk, config.json inflating to 3000 MiB."""
    path = craft_zip_bomb(tmp_path_factory.mktemp("bomb") / "model.keras")
    assert path.stat().st_size < 4 << 20
    return path


@pytest.mark.parametrize(
    "loader", [check_archive, load_model_file, lambda p: load_run_model(p, TINY)]
)
def test_a_zip_bomb_is_refused_quickly_with_flat_memory(bomb, loader):
    message = _refused_fast(lambda: loader(bomb))
    assert str(bomb) in message and "'config.json'" in message and "zip bomb" in message


def test_emotf_export_refuses_a_zip_bomb_in_one_line(bomb, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(bomb.read_bytes())
    config = TrainConfig(records=str(tmp_path / "records"), out=str(run), model=TINY)
    (run / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    start = time.perf_counter()
    assert export_main([str(run), "--out", str(tmp_path / "served")]) == 1
    assert time.perf_counter() - start < 30  # includes building the tiny model
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.keras" in err and "config.json" in err
    assert not (tmp_path / "served" / "1").exists()


@pytest.mark.parametrize("declared", [1000, 10 << 20])
def test_a_lying_zip_header_is_refused(tmp_path, declared):
    """Headers that declare a small config.json over a stream inflating to 3000 MiB: reading
    stops at the declared size (and at the cap), never inflating the rest."""
    path = craft_zip_bomb(tmp_path / "model.keras", declared=declared)
    message = _refused_fast(lambda: check_archive(path))
    assert str(path) in message and "config.json" in message


def test_a_weights_bomb_and_too_many_members_are_refused_before_reading(tmp_path):
    config = (b"{}", 0, 2, zlib.crc32(b"{}"))
    weights = zlib.compress(bytes(1 << 20))[2:-4]
    bomb = write_zip(
        tmp_path / "ratio.keras",
        {"config.json": config, "model.weights.h5": (weights, 8, 500 << 20, 0)},
    )
    message = _refused_fast(lambda: check_archive(bomb))
    assert "'model.weights.h5'" in message and "100:1" in message
    big = write_zip(
        tmp_path / "member.keras",
        {
            "config.json": config,
            "model.weights.h5": (weights, 8, model_io.MAX_MEMBER_BYTES + 1, 0, 20 << 20),
        },
    )
    assert "'model.weights.h5' inflates to 1024.0 MiB" in _refused_fast(lambda: check_archive(big))
    # Each member within its caps (headers claim 11 MiB compressed), together over the total.
    total = {f"w{i}": (weights, 8, model_io.MAX_MEMBER_BYTES, 0, 11 << 20) for i in range(3)}
    total["config.json"] = config
    message = _refused_fast(lambda: check_archive(write_zip(tmp_path / "total.keras", total)))
    assert "in all" in message
    many = {f"m{i}": (b"", 0, 0, 0) for i in range(model_io.MAX_ARCHIVE_MEMBERS + 1)}
    message = _refused_fast(lambda: check_archive(write_zip(tmp_path / "many.keras", many)))
    assert f"{model_io.MAX_ARCHIVE_MEMBERS + 1} members" in message


def test_a_genuine_archive_passes_the_caps(tmp_path):
    from emotf.model import build_model

    path = tmp_path / "model.keras"
    build_model(TINY).save(str(path))
    check_archive(path)


def test_a_config_nested_too_deep_is_one_line(tmp_path):
    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "[" * 200_000 + "]" * 200_000)
    assert "nested too deep" in _refused_fast(lambda: check_archive(path))


def test_an_oversize_model_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    with open(path, "wb") as f:  # sparse: no disk
        f.truncate(model_io.MAX_ARCHIVE_BYTES + 1)
    assert "cap" in _refused_fast(lambda: check_archive(path))


# === JSON and metadata ===


def test_oversize_json_is_refused_naming_the_file_before_reading(tmp_path):
    path = tmp_path / "manifest.json"
    with open(path, "wb") as f:  # sparse: a 65 MiB file that costs no disk
        f.truncate(storage.MAX_JSON_BYTES + 1)
    message = _refused_fast(lambda: read_json(path), FileTooLargeError)
    assert str(path) in message and "64.0 MiB cap" in message


def test_a_file_larger_than_its_stat_says_is_cut_off_at_the_cap(tmp_path, monkeypatch):
    """A filesystem whose stat is wrong (or a file that grows): the read stops at the cap."""
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"x": "y" * 5000}))
    monkeypatch.setattr(storage.StoragePath, "size", lambda self: 10)
    with pytest.raises(FileTooLargeError, match="at least"):
        read_json(path, max_bytes=1000)


def test_json_nested_too_deep_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match=f"{path}: not readable JSON .nested too deep"):
        read_json(path)


def test_caps_hold_on_ram_filesystems():
    path = as_path("ram://emotf-caps/blob.bin")
    path.write_bytes(b"x" * 5000)
    assert path.read_bytes(5000) == b"x" * 5000
    with pytest.raises(FileTooLargeError, match="ram://emotf-caps/blob.bin"):
        path.read_bytes(4999)


def test_oversize_serving_metadata_is_refused(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    (tmp_path / "assets.extra").mkdir()
    metadata = tmp_path / "assets.extra" / "emotf.json"
    metadata.write_text(json.dumps({"pad": "x" * MAX_METADATA_BYTES}))
    with pytest.raises(FileTooLargeError, match="emotf.json"):
        read_metadata(tmp_path)
