"""One flag syntax for every config field (emotf/cli/flags.py), on every console script."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from emotf.bounds import bound_of, describe
from emotf.cli import build_records, demo, make_sample, train
from emotf.cli.flags import ConfigFlags, Leaf, leaves
from emotf.configs import ModelConfig, SamplingConfig, TrainConfig

DERIVED = {  # SamplingConfig fields TrainConfig takes from the model: set both, or be refused
    "sampling.num_segments": "model.num_segments",
    "sampling.frame_size": "model.frame_size",
}
SPECIAL = {  # values a generic rule cannot choose
    "TrainConfig.split": "ogm",
    "TrainConfig.strategy": "one_device",
    "BuildConfig.runner": "beam",
    "BuildConfig.classes": "calm,tense",
    "TuneConfig.search": "momentum,dropout",
    "SamplingConfig.time_bins": None,  # derived from model.spectrogram_shape: tested there
    "SamplingConfig.freq_bins": None,
}


def _tune():
    from emotf.cli import tune

    return tune


def _parse_train(argv):
    return train.parse_config(["--records", "r", *argv])[0]


def _parse_tune(argv, tmp_path):
    return _tune().parse_config(["--out", str(tmp_path / "search"), *argv])


# cli name -> (its ConfigFlags, argv -> config); the required flags are given by the lambdas
def _clis(tmp_path):
    return {
        "emotf-train": (train.TRAIN_FLAGS, _parse_train),
        "emotf-tune": (_tune().tune_flags(), lambda argv: _parse_tune(argv, tmp_path)),
        "emotf-build-records": (
            build_records.build_flags(),
            lambda argv: build_records.parse_args(["--data-dir", "d", "--out", "o", *argv]),
        ),
        "emotf-make-sample": (
            make_sample.SAMPLE_FLAGS,
            lambda argv: make_sample.parse_config(["--out", "o", *argv])[0],
        ),
        "emotf-demo": (demo.DEMO_FLAGS, demo.parse_config),
    }


CLIS = ("emotf-train", "emotf-tune", "emotf-build-records", "emotf-make-sample", "emotf-demo")


def _changed(flags: ConfigFlags, leaf: Leaf, default):
    """A valid value of the field other than its default (inside its declared bound):
    (flag text, expected to_dict value)."""
    if leaf.qualname in SPECIAL:
        text = SPECIAL[leaf.qualname]
        return text, text.split(",") if text and "," in text else text
    choices = flags.choices_of(leaf)
    if choices:
        other = next(c for c in choices if c != default)
        return str(other), other
    annotation = leaf.annotation
    args = typing.get_args(annotation)
    if type(None) in args:  # X | None: a value where the default is None
        (annotation,) = [a for a in args if a is not type(None)]
        if default is None:
            value = {int: 3, float: 7000.5, bool: True}[annotation]
            return str(value).lower(), value
    if annotation is bool:
        return str(not default).lower(), not default
    if annotation is str:
        return f"{default}x", f"{default}x"
    bound = bound_of(leaf.field)
    # ints step by 2: SampleConfig.width and height must stay even
    step = 2 if annotation is int or typing.get_origin(annotation) is tuple else 0.25
    for candidate in (step, -step):
        if typing.get_origin(annotation) is tuple:
            value = [v + candidate for v in default]
            if bound is None or all(bound.contains(v) for v in value):
                return ",".join(str(v) for v in value), value
        elif bound is None or bound.contains(default + candidate):
            return repr(default + candidate), default + candidate
    raise AssertionError(f"no other valid value for {leaf.qualname}")


def _at(tree: dict, key: str):
    for name in key.split("."):
        tree = tree[name]
    return tree


def _linked(key: str) -> set[str]:
    """Keys that change with `key` (TrainConfig derives the sampling shapes from the model)."""
    pairs = {
        **DERIVED,
        **{v: k for k, v in DERIVED.items()},
        "model.spectrogram_shape": "sampling.time_bins sampling.freq_bins",
    }
    for end, others in pairs.items():
        if key.endswith(end):
            return {key, *(key[: -len(end)] + other for other in others.split())}
    return {key}


@pytest.mark.parametrize("form", ["full", "short"])
@pytest.mark.parametrize("cli", CLIS)
def test_every_field_is_reachable_by_its_dotted_flag_and_round_trips(cli, form, tmp_path):
    """`--ROOT.KEY VALUE` (and `--KEY VALUE`) sets that field, and only it, to VALUE."""
    flags, parse = _clis(tmp_path)[cli]
    reference = parse([]).to_dict()
    checked = 0
    for leaf in flags.leaves:
        if leaf.qualname in SPECIAL and SPECIAL[leaf.qualname] is None:
            continue
        default = _at(reference, leaf.key)
        text, expected = _changed(
            flags, leaf, tuple(default) if isinstance(default, list) else default
        )
        flag = f"--{flags.name}.{leaf.key}"
        if form == "short" and f"--{leaf.key}" in flags.flags[leaf.key]:  # not an older alias's
            flag = f"--{leaf.key}"
        argv = [flag, text]
        for derived, source in DERIVED.items():
            if leaf.key.endswith(derived):
                argv += [f"--{flags.name}.{leaf.key[: -len(derived)]}{source}", text]
        got = parse(argv).to_dict()
        assert _at(got, leaf.key) == pytest.approx(expected), (cli, argv)
        for other in flags.leaves:
            if other.key not in _linked(leaf.key):
                assert _at(got, other.key) == _at(reference, other.key), (cli, argv, other.key)
        checked += 1
    assert checked == len(flags.leaves) - 2 * any(
        k.endswith("sampling.time_bins") for k in flags.by_key
    )


def test_leaves_cover_every_field_of_the_nested_configs():
    keys = {leaf.key for leaf in leaves(TrainConfig)}
    expected = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "sampling"}
    expected |= {f"model.{f.name}" for f in dataclasses.fields(ModelConfig)}
    expected |= {f"sampling.{f.name}" for f in dataclasses.fields(SamplingConfig)}
    assert keys == expected


def test_types_from_the_annotations():
    config = _parse_train(
        [
            "--jit_compile",
            "none",
            "--steps_per_epoch",
            "none",
            "--sampling.upper_edge_hertz",
            "7000",
            "--model.spectrogram_shape",
            "96x60",
            "--deterministic",
            "false",
            "--cache-records",
        ]
    )
    assert config.jit_compile is None and config.steps_per_epoch is None
    assert config.sampling.upper_edge_hertz == 7000.0
    assert config.model.spectrogram_shape == (96, 60) and config.sampling.time_bins == 96
    assert config.deterministic is False and config.cache_records is True  # bare = true
    assert _parse_train(["--jit_compile", "true"]).jit_compile is True


@pytest.mark.parametrize(
    "argv, received",
    [
        (["--model.modalities", "audiovisual"], "invalid choice: 'audiovisual'"),
        (["--model.spec_augment", "maybe"], "expected true or false. Received: 'maybe'"),
        (["--epochs", "0"], "TrainConfig.epochs must be in [1, 100000]. Received: epochs=0"),
        (["--model.num_segments", "two"], "invalid int value: 'two'"),
        (["--sampling.num_segments", "4"], "sampling shapes come from the model config"),
        (["--sampling", "windw_seconds=1.0"], "unknown SamplingConfig field 'windw_seconds'"),
        (
            ["--model.num_segmnts", "4"],
            "--model.num_segmnts 4 (did you mean --model.num_segments?)",
        ),
        (["--train.epoch", "4"], "--train.epoch 4 (did you mean --train.epochs?)"),
    ],
)
def test_a_bad_flag_fails_before_anything_is_written_naming_it(argv, received, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--records", "r", "--fold", "1", "--out", str(out), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emotf-train: error: ") and err.count("\n") == 0, err
    assert received in err, err
    assert not out.exists()


def test_a_typo_in_a_config_file_key_fails_naming_it(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"epochs": 2, "model": {"num_segmnts": 4}}))
    with pytest.raises(SystemExit):
        train.main(["--config", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown ModelConfig field 'num_segmnts'" in err, err
    assert not (tmp_path / "run").exists()


def test_build_records_typo_fails_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "records"
    with pytest.raises(SystemExit):
        build_records.main(
            ["--data-dir", str(tmp_path), "--out", str(out), "--tracker.margn", "0.4"]
        )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--tracker.margn" in err and "--tracker.margin?" in err, err
    assert not out.exists()


def test_config_file_gives_defaults_that_flags_override(tmp_path):
    run_config = {"config": TrainConfig(epochs=5, model=ModelConfig(fc_units=8)).to_dict()}
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(run_config))  # a RUN/config.json as is, sampling shapes included
    config = _parse_train(["--config", str(cfg), "--epochs", "2", "--model.num_segments", "4"])
    assert config.epochs == 2 and config.model.fc_units == 8
    assert config.model.num_segments == config.sampling.num_segments == 4


@pytest.mark.parametrize(
    "argv, key, expected",
    [
        (["--batch-size", "8"], "batch_size", 8),
        (["--lr", "0.01"], "learning_rate", 0.01),
        (["--patience", "3"], "early_stopping_patience", 3),
        (["--num-segments", "4"], "model.num_segments", 4),
        (["--video-widths", "8,16"], "model.video_widths", [8, 16]),
        (["--branch-weights", "independent"], "model.branch_weights", "independent"),
        (["--sampling", "window_seconds=1.0"], "sampling.window_seconds", 1.0),
        (["--sampling", "upper_edge_hertz=null"], "sampling.upper_edge_hertz", None),
        (["--fold", "3"], "fold", 3),
        (["--records", "recs"], "records", "recs"),
        (["--out", "runs/x"], "out", "runs/x"),
        (["--cache-records"], "cache_records", True),
        (["--cache-records", "false"], "cache_records", False),
        (["--verbose", "2"], "verbose", 2),
        (["--train.verbose", "0"], "verbose", 0),
        (["--lr-schedule", "cosine"], "lr_schedule", "cosine"),
    ],
)
def test_train_older_flags_still_work(argv, key, expected):
    assert _at(_parse_train(argv).to_dict(), key) == expected


def test_train_fold_all():
    config, run_all = train.parse_config(["--records", "r", "--fold", "all"])
    assert run_all and config.fold == 0


@pytest.mark.parametrize(
    "argv, key, expected",
    [
        (["--max-trials", "3"], "max_trials", 3),
        (["--tuner-seed", "9"], "seed", 9),
        (["--tune.seed", "9"], "seed", 9),
        (["--seed", "4"], "train.seed", 4),  # as in emotf-train
        (["--epochs", "2"], "train.epochs", 2),
        (["--model.fc_units", "8"], "train.model.fc_units", 8),
        (["--train.model.fc_units", "8"], "train.model.fc_units", 8),
        (["--sampling.window_seconds", "1.0"], "train.sampling.window_seconds", 1.0),
        (["--sampling", "window_seconds=1.0"], "train.sampling.window_seconds", 1.0),
        (["--batch-size", "4"], "train.batch_size", 4),
        (["--search", "momentum,dropout"], "search", ["momentum", "dropout"]),
        (["--tuner", "hyperband"], "tuner", "hyperband"),
        (["--fold", "3"], "train.fold", 3),
    ],
)
def test_tune_flags_and_older_names(argv, key, expected, tmp_path):
    assert _at(_parse_tune(argv, tmp_path).to_dict(), key) == expected


def test_tune_config_file_is_the_base_train_config(tmp_path):
    cfg = tmp_path / "best_config.json"
    cfg.write_text(json.dumps(TrainConfig(epochs=3, fold=4).to_dict()))
    config = _parse_tune(["--config", str(cfg), "--max-trials", "2"], tmp_path)
    assert config.train.epochs == 3 and config.train.fold == 4 and config.max_trials == 2
    assert config.out == str(tmp_path / "search")


@pytest.mark.parametrize(
    "argv, key, expected",
    [
        (["--workers", "2"], "workers", 2),
        (["--margin", "0.4"], "tracker.margin", 0.4),
        (["--tracker.margin", "0.4"], "tracker.margin", 0.4),
        (["--jpeg-quality", "80"], "tracker.jpeg_quality", 80),
        (["--keyframe-interval", "5"], "tracker.keyframe_interval", 5),
        (["--detect-scale", "0.25"], "tracker.detect_scale", 0.25),
        (["--min-confidence", "0.8"], "tracker.min_confidence", 0.8),
        (["--smoothing", "0"], "tracker.smoothing", 0.0),
        (["--stages", "face_detection_only"], "tracker.stages", "face_detection_only"),
        (["--min-duration", "0.3"], "min_duration_s", 0.3),
        (["--max-duration", "8"], "max_duration_s", 8.0),
        (["--clips-per-shard", "8"], "clips_per_shard", 8),
        (["--fold-seed", "2"], "fold_seed", 2),
        (["--stratify-by-sex"], "stratify_by_sex", True),
        (["--limit", "4"], "limit", 4),
        (["--strict"], "strict", True),
        (["--overwrite"], "overwrite", True),
        (["--no-progress"], "progress", False),
        (["--no-verify-media"], "verify_media", False),
        (["--sample_rate", "8000"], "sample_rate", 8000),
    ],
)
def test_build_records_flags_and_older_names(argv, key, expected):
    config = build_records.parse_args(["--data-dir", "d", "--out", "o", *argv]).to_dict()
    assert _at(config, key) == expected
    assert config["data_dir"] == "d" and config["out_dir"] == "o"


def test_build_records_names_a_missing_required_field(capsys):
    with pytest.raises(SystemExit):
        build_records.parse_args(["--out", "o"])
    err = capsys.readouterr().err
    assert "BuildConfig needs data_dir" in err and "--data-dir" in err


def test_make_sample_older_flags_and_tiny_preset():
    config, args = make_sample.parse_config(
        ["--out", "o", "--tiny", "--actors", "1", "--clips-per-actor", "2", "--seed", "5"]
    )
    assert (config.num_actors, config.clips_per_actor, config.seed) == (1, 2, 5)
    assert config.max_duration == 1.5 and args.out == "o"  # the rest of the tiny preset
    config, _ = make_sample.parse_config(["--out", "o", "--sample.snr_db", "10,20"])
    assert config.snr_db == (10.0, 20.0)


def test_demo_model_flag_keeps_the_demo_model():
    from emotf.demo import DEMO_MODEL

    config = demo.parse_config(
        [
            "--model.fc_units",
            "16",
            "--actors",
            "4",
            "--verbose",
            "0",
            "--clips-per-actor",
            "3",
            "--epochs",
            "2",
            "--fold",
            "1",
        ]
    )
    assert config.model == dataclasses.replace(DEMO_MODEL, fc_units=16)
    assert (config.num_actors, config.verbose, config.clips_per_actor) == (4, 0, 3)
    assert (config.epochs, config.fold) == (2, 1)


@pytest.mark.parametrize("cli", CLIS)
def test_help_lists_the_dotted_flags(cli, tmp_path, capsys):
    flags, _ = _clis(tmp_path)[cli]
    main = {
        "emotf-train": train.main,
        "emotf-tune": _tune().main,
        "emotf-build-records": build_records.main,
        "emotf-make-sample": make_sample.main,
        "emotf-demo": demo.main,
    }[cli]
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for leaf in flags.leaves:
        assert f"--{flags.name}.{leaf.key}" in text, leaf.key
    assert "--config" in text


def test_help_gives_each_fields_default_and_description(capsys):
    with pytest.raises(SystemExit):
        build_records.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert (
        "BuildConfig.clips_per_shard (default 64, in [1, 100000]): clips per shard (each "
        "shard holds one fold)"
    ) in text
    assert "FaceTrackerConfig.margin (default 0.3" in text and "context around the face" in text
    assert (
        "BuildConfig.data_dir (required, a non-empty string): folder with `VideoFlash/` and "
        "`AudioWAV/`"
    ) in text
    assert "BuildConfig.runner (default 'local', one of 'local', 'beam'): local" in text


def test_an_alias_naming_no_field_is_refused():
    with pytest.raises(
        ValueError, match="alias --lr names no field of TrainConfig: 'learning_rat'"
    ):
        ConfigFlags(TrainConfig, "train", aliases={"--lr": "learning_rat"})


# === Bounds: every flag says its valid values; out-of-range values are refused in one line ===


def _root_flags(tmp_path):
    return {
        cli: flags
        for cli, (flags, _) in _clis(tmp_path).items()
        if cli in ("emotf-train", "emotf-tune", "emotf-build-records", "emotf-demo")
    }


@pytest.mark.parametrize("cli", ["emotf-train", "emotf-tune", "emotf-build-records", "emotf-demo"])
def test_help_describes_every_field_and_shows_its_bound(cli, tmp_path):
    flags = _root_flags(tmp_path)[cli]
    for leaf in flags.leaves:
        line = flags.help_line(leaf)
        head, _, about = line.partition("): ")
        assert about.strip(), f"{leaf.qualname} has no description in --help"
        bound = describe(leaf.field)
        if bound:
            assert bound in head, (leaf.qualname, line)


def _exit_status(main, argv) -> int:
    """The status of a console script run in-process: its return value or its SystemExit's."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def _config_file(tmp_path, values) -> str:
    path = tmp_path / "given.json"
    path.write_text(json.dumps(values))
    return str(path)


BAD_VALUES = [  # (console script, argv, JSON config or None, what the one line names)
    ("emotf-train", ["--epochs", "0"], None, "TrainConfig.epochs must be in [1, 100000]"),
    (
        "emotf-train",
        [],
        {"epochs": True},
        "TrainConfig.epochs must be an integer. Received: epochs=True",
    ),
    ("emotf-train", [], {"fold": 2.0}, "TrainConfig.fold must be an integer"),
    (
        "emotf-train",
        [],
        {"model": {"video_widths": [8.5]}},
        "ModelConfig.video_widths each element",
    ),
    (
        "emotf-train",
        ["--model.num_segments", "0"],
        None,
        "ModelConfig.num_segments must be in [1, 64]",
    ),
    ("emotf-train", ["--model.num_segments", "65"], None, "Received: num_segments=65"),
    (
        "emotf-train",
        ["--sampling.window_seconds", "1e-9"],
        None,
        "window_seconds=1e-09 gives a window of 0 samples",
    ),
    ("emotf-train", ["--sampling.window_seconds", "11"], None, "window_seconds must be in (0, 10]"),
    ("emotf-train", ["--learning_rate", "nan"], None, "learning_rate must be a finite number"),
    ("emotf-train", ["--lr", "inf"], None, "learning_rate must be a finite number"),
    ("emotf-train", ["--lr=-inf"], None, "learning_rate must be a finite number"),
    ("emotf-train", ["--momentum", "1"], None, "TrainConfig.momentum must be in [0, 1)"),
    ("emotf-train", ["--fold", "10"], None, "TrainConfig.fold must be in [0, 9]"),
    ("emotf-train", ["--verbose", "3"], None, "invalid choice: 3"),
    (
        "emotf-train",
        ["--worker_timeout_seconds", "0"],
        None,
        "worker_timeout_seconds must be in (0, 86400]",
    ),
    ("emotf-train", ["--sampling.upper_edge_hertz", "9000"], None, "above the Nyquist frequency"),
    ("emotf-tune", ["--max_trials", "0"], None, "TuneConfig.max_trials must be in [1, 100000]"),
    (
        "emotf-tune",
        ["--oracle_timeout_seconds", "inf"],
        None,
        "oracle_timeout_seconds must be a finite",
    ),
    ("emotf-tune", [], {"epochs": True}, "TrainConfig.epochs must be an integer"),
    ("emotf-build-records", ["--workers", "0"], None, "BuildConfig.workers must be in [1, 1024]"),
    (
        "emotf-build-records",
        ["--min-duration", "5", "--max-duration", "4"],
        None,
        "min_duration_s must be at most max_duration_s",
    ),
    (
        "emotf-build-records",
        ["--worker_timeout_seconds=-1"],
        None,
        "worker_timeout_seconds must be in",
    ),
    (
        "emotf-build-records",
        ["--sample_rate", "0"],
        None,
        "BuildConfig.sample_rate must be in [1000, 192000]",
    ),
    ("emotf-build-records", [], {"strict": "yes"}, "BuildConfig.strict must be true or false"),
    ("emotf-demo", ["--epochs", "0"], None, "DemoConfig.epochs must be in [1, 100000]"),
    ("emotf-demo", ["--num_actors", "92"], None, "DemoConfig.num_actors must be in [1, 91]"),
    ("emotf-demo", ["--learning_rate", "nan"], None, "DemoConfig.learning_rate must be a finite"),
    ("emotf-demo", [], {"fold": True}, "DemoConfig.fold must be an integer"),
]


@pytest.mark.parametrize(
    "cli, argv, values, received",
    BAD_VALUES,
    ids=[f"{c}:{' '.join(a) or json.dumps(v)}" for c, a, v, _ in BAD_VALUES],
)
def test_an_out_of_range_value_is_refused_in_one_line_before_anything_is_written(
    cli, argv, values, received, tmp_path, capsys
):
    out = tmp_path / "out"
    config = ["--config", _config_file(tmp_path, values)] if values is not None else []
    main, required = {
        "emotf-train": (train.main, ["--records", "r", "--out", str(out)]),
        "emotf-tune": (lambda a: _tune().main(a), ["--records", "r", "--out", str(out)]),
        "emotf-build-records": (
            build_records.main,
            ["--data-dir", str(tmp_path), "--out", str(out)],
        ),
        "emotf-demo": (demo.main, ["--out", str(out)]),
    }[cli]
    assert _exit_status(main, [*required, *config, *argv]) in (1, 2)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{cli}: error: ") and err.count("\n") == 0, err
    assert received in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["given.json"] if values else [])


def test_a_run_config_written_before_the_deadline_fields_still_loads(tmp_path):
    """A RUN/config.json of the release before `worker_timeout_seconds` (and a tune_config.json
    before `oracle_timeout_seconds`, a build config before the build's deadline) loads, with the
    new field at its default."""
    from emotf.records.config import BuildConfig
    from emotf.tuning.config import TuneConfig

    old = TrainConfig(epochs=5, model=ModelConfig(fc_units=8)).to_dict()
    del old["worker_timeout_seconds"]
    loaded = TrainConfig.from_dict(old)
    assert loaded == TrainConfig(epochs=5, model=ModelConfig(fc_units=8))
    assert loaded.worker_timeout_seconds == 300.0
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"config": old}))  # RUN/config.json as the current release writes it
    assert train.parse_config(["--config", str(cfg)])[0] == loaded
    tune_old = TuneConfig(train=TrainConfig(epochs=3)).to_dict()
    del tune_old["oracle_timeout_seconds"], tune_old["train"]["worker_timeout_seconds"]
    assert TuneConfig.from_dict(tune_old).oracle_timeout_seconds == 300.0
    build_old = BuildConfig(data_dir="d", out_dir="o", workers=1).to_dict()
    del build_old["worker_timeout_seconds"]
    assert BuildConfig.from_dict(build_old).worker_timeout_seconds == 1800.0


def test_a_search_begun_before_the_deadline_fields_continues(tmp_path):
    """A tune_config.json written before `oracle_timeout_seconds` and
    `train.worker_timeout_seconds` existed does not block continuing the search; nor does
    changing a deadline (it does not change what a trial means)."""
    from emotf.storage import write_json
    from emotf.tuning.config import TuneConfig
    from emotf.tuning.search import check_resume

    out = tmp_path / "search-dir"
    (out / "search").mkdir(parents=True)
    config = TuneConfig(out=str(out))
    old = config.to_dict()
    del old["oracle_timeout_seconds"], old["train"]["worker_timeout_seconds"]
    write_json(out / "tune_config.json", {"config": old})
    check_resume(str(out), config)
    check_resume(str(out), dataclasses.replace(config, oracle_timeout_seconds=60.0))


@pytest.mark.parametrize(
    "content, received",
    [
        ("[1, 2]", "expected a JSON dict. Received: list"),
        ("{bad", "not readable JSON"),
        (None, "no such file or directory"),
        ("folder", "is a directory"),
    ],
)
def test_a_config_file_that_is_not_a_json_object_is_refused_in_one_line(
    content, received, tmp_path, capsys
):
    path = tmp_path / "given.json"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    status = _exit_status(train.main, ["--config", str(path), "--out", str(tmp_path / "run")])
    assert status in (1, 2)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"emotf-train: error: {path}") and err.count("\n") == 0, err
    assert received in err
    assert not (tmp_path / "run").exists()
