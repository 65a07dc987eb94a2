"""Training when things go wrong: a full disk, weights cut short by an older release, a
--records that is not a records folder, output redirected to a file (issue 19)."""

import errno
import io
import json

import keras
import pytest
from test_train import MODEL, FakeFactory, config, write_tiny_shards

from emotf.cli.train import main as train_main
from emotf.configs import ModelConfig, TrainConfig
from emotf.runs.folder import Run
from emotf.training.run_state import read_log, weights_problem
from emotf.training.train import fit_verbose, train_all_folds, train_fold


def cli_args(tmp_path, out, records="unused", epochs=3):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(
        json.dumps(
            {
                "model": MODEL.to_dict(),
                "batch_size": 8,
                "learning_rate": 0.05,
                "lr_schedule": "constant",
                "early_stopping_patience": 0,
                "export": False,
                "verbose": 0,
            }
        )
    )
    return [
        "--records",
        str(records),
        "--fold",
        "3",
        "--out",
        str(out),
        "--config",
        str(cfg_file),
        "--epochs",
        str(epochs),
    ]


def weights_files(folder):
    """Every .weights.h5 / .keras under a run folder, temporaries (dot names) included."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".weights.h5", ".keras")))


def test_a_full_disk_ends_in_one_line_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    import emotf.training.train as train_module

    monkeypatch.setattr(train_module, "records_dataset", FakeFactory())
    real_save = keras.Model.save_weights
    saves = []

    def half_then_full(self, filepath, overwrite=True, **kwargs):
        """The disk fills up during the second epoch's backup: half the file, then ENOSPC."""
        saves.append(str(filepath))
        real_save(self, filepath, overwrite=overwrite, **kwargs)
        if "latest" in str(filepath) and sum("latest" in s for s in saves) == 2:
            with open(filepath, "r+b") as f:
                f.truncate(len(f.read()) // 2)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save_weights", half_then_full)
    out = tmp_path / "run"
    assert train_main(cli_args(tmp_path, out)) == 1
    err = capsys.readouterr().err
    backup = out / "backup" / "latest.weights.h5"
    assert err.strip().splitlines() == [f"emotf-train: error: {backup}: no space left on device"]
    # No half file under a real name, no temporary left behind: the backup is epoch 1's.
    files = weights_files(out)
    assert sorted(p.name for p in files) == ["best.weights.h5", "latest.weights.h5"], files
    assert all(weights_problem(p) is None for p in files)
    assert Run(out).completed_epochs() == 1

    monkeypatch.setattr(keras.Model, "save_weights", real_save)  # space again
    assert train_main(cli_args(tmp_path, out)) == 0
    metrics = Run(out).read_metrics()
    assert metrics["epochs_run"] == 3 and Run(out).completed_epochs() == 3
    # Epoch 2 was logged before its backup failed, and logged again when rerun: kept once.
    assert [row["epoch"] for row in read_log(out / "training_log.csv")] == [0, 1, 2]


@pytest.mark.parametrize("victim", ["best.weights.h5", "backup/latest.weights.h5"])
def test_a_truncated_weights_file_of_an_old_release_is_named_and_does_not_block(tmp_path, victim):
    cfg = config(tmp_path, epochs=1)
    train_fold(cfg, FakeFactory())
    path = tmp_path / "run" / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what a full disk left under an older release
    assert weights_problem(path) is not None
    with pytest.warns(UserWarning, match=f"{path}: unreadable weights") as said:
        metrics = train_fold(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}), FakeFactory())
    assert len([w for w in said if str(path) in str(w.message)]) == 1
    assert metrics["epochs_run"] == 2
    assert weights_problem(tmp_path / "run" / "best.weights.h5") is None
    assert weights_problem(tmp_path / "run" / "backup" / "latest.weights.h5") is None


def test_the_records_are_checked_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    a_file = tmp_path / "records.txt"
    a_file.write_text("not records")
    empty = tmp_path / "empty"
    empty.mkdir()
    for records, problem in (
        (tmp_path / "missing", "no such records folder"),
        (a_file, "a file, not a records folder"),
        (empty, "neither a manifest.json nor a record shard"),
    ):
        assert train_main(cli_args(tmp_path, out, records, epochs=1)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"emotf-train: error: {records}: {problem}" + err[0].split(problem, 1)[1]]
        assert not out.exists()  # nothing written: no config.json, no backup/
    with pytest.raises(ValueError, match="no such records folder"):  # --fold all: no CV folder
        train_all_folds(config(tmp_path, records=str(tmp_path / "missing")))
    assert not out.exists()

    # The corrected rerun into the same --out is a fresh run (no "another configuration").
    records = tmp_path / "records"
    write_tiny_shards(records)
    model = ModelConfig(
        num_segments=2,
        frame_size=32,
        video_stem_width=4,
        video_widths=(4,),
        audio_widths=(4, 4),
        fc_units=4,
    )
    metrics = train_fold(
        config(tmp_path, records=str(records), epochs=1, batch_size=4, model=model)
    )
    assert metrics["epochs_run"] == 1 and metrics["records_verified"]


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bars_only_on_a_terminal():
    """Keras' bar (verbose 1) rewrites its line with ANSI codes: one line per epoch (2) into a
    file or a pipe, unless verbose was chosen."""
    assert fit_verbose(None, Stream(tty=False)) == 2 and fit_verbose("auto", Stream(False)) == 2
    assert fit_verbose(None, Stream(tty=True)) == 1
    assert fit_verbose(None, io.StringIO()) == 2  # a redirected stdout
    for chosen in (0, 1, 2):
        assert fit_verbose(chosen, Stream(tty=False)) == chosen


def test_a_weights_file_is_never_started_on_a_disk_without_room_for_it(tmp_path, monkeypatch):
    """HDF5 crashes the process (a segfault after screens of tracebacks) when the disk fills
    while it writes: emotf refuses first, in one OSError naming the file, and writes nothing."""
    import collections
    import shutil

    from emotf.model import build_model
    from emotf.training.run_state import save_weights, weights_bytes

    model = build_model(MODEL)
    path = tmp_path / "best.weights.h5"
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9, weights_bytes(model)))
    with pytest.raises(OSError) as error:
        save_weights(model, path)
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(path))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 0, 10**9))
    save_weights(model, path)
    assert weights_problem(path) is None and [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "error, full",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (
            RuntimeError(
                "Can't decrement id ref count (file write failed: errno = 28, error message = "
                "'No space left on device')"
            ),
            True,
        ),
        (OSError("Unable to synchronously create file (No space left on device)"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("No space left"), False),
    ],
)
def test_a_full_disk_is_recognised_in_its_wrapped_forms(error, full):
    from emotf.training.run_state import is_no_space

    assert is_no_space(error) is full


def test_a_log_that_is_not_one_is_named(tmp_path, monkeypatch):
    import emotf.training.run_state as run_state
    from emotf.training.run_state import read_log

    log = tmp_path / "training_log.csv"
    log.write_bytes(b"epoch,loss\n0,\xff\xfe\n")
    with pytest.raises(ValueError, match=f"{log}: not a training log"):
        read_log(log)
    log.write_text("epoch,loss\n0,abc\n")
    with pytest.raises(ValueError, match=f"{log}: not a training log"):
        read_log(log)
    monkeypatch.setattr(run_state, "MAX_LOG_BYTES", 8)  # larger than a log can be: never read
    log.write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match=str(log)):
        read_log(log)
