"""TrainConfig and its sections (issue 20): TaskConfig, TrainerConfig and RuntimeConfig declare
every field once; TrainConfig stays the flat object that flags, JSON files and config.json
name; a config.json written before the split still loads; one model -> sampling derivation."""

import dataclasses
import json
import shutil
import typing
from pathlib import Path

import pytest

from emotf.cli.train import parse_config
from emotf.configs import (
    SAMPLING_SHAPES,
    ModelConfig,
    RuntimeConfig,
    SamplingConfig,
    TaskConfig,
    TrainConfig,
    TrainerConfig,
    model_sampling,
)
from emotf.runs.folder import Run

# RUN/config.json as emotf-train 0.1.0 (commit 84d0a65, before the sections) wrote it, every
# field away from its default: `Run.write_config` of a TrainConfig made with that code.
OLD_CONFIG_JSON = Path(__file__).parent / "data" / "config_v0.1.0.json"
SECTIONS = {"task": TaskConfig, "trainer": TrainerConfig, "runtime": RuntimeConfig}


def _check_fixture_values(config: TrainConfig) -> None:
    assert (config.records, config.fold, config.validation_folds) == ("records/cremad", 3, 2)
    assert (config.split, config.validation_fraction, config.seed) == ("actors", 0.2, 11)
    assert (config.labels, config.cache_records, config.allow_incomplete) == (
        "perceived",
        True,
        True,
    )
    assert (config.epochs, config.batch_size, config.steps_per_epoch) == (7, 8, 5)
    assert (config.learning_rate, config.momentum, config.lr_schedule) == (0.01, 0.5, "cosine")
    assert (config.decay_steps, config.decay_rate, config.early_stopping_patience) == (20, 0.5, 4)
    assert (config.precision, config.jit_compile) == ("float32", False)
    assert (config.out, config.strategy, config.deterministic) == (
        "runs/fixture",
        "one_device",
        False,
    )
    assert (config.verbose, config.export, config.worker_timeout_seconds) == (2, False, 120.0)
    assert config.model == ModelConfig(
        num_segments=3,
        num_classes=6,  # the fixture's (a config of the release before corpora sized models)
        frame_size=32,
        spectrogram_shape=(16, 8),
        video_stem_width=4,
        video_widths=(4, 8),
        audio_widths=(4, 8),
        fc_units=8,
        dropout=0.25,
        branch_weights="independent",
        spec_augment=True,
    )
    sampling = config.sampling
    assert (sampling.num_segments, sampling.frame_size) == (3, 32)
    assert (sampling.time_bins, sampling.freq_bins) == (16, 8)
    assert (sampling.window_seconds, sampling.max_offset_seconds) == (0.5, 0.02)
    assert (sampling.num_mel_bins, sampling.normalization, sampling.upper_edge_hertz) == (
        40,
        "none",
        7000.0,
    )


def test_a_config_json_of_the_previous_release_loads_with_its_values(tmp_path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    shutil.copy(OLD_CONFIG_JSON, run.config_path)
    config = run.train_config()
    _check_fixture_values(config)
    # The sections hold the same values.
    assert config.task == TaskConfig(
        records="records/cremad",
        fold=3,
        validation_folds=2,
        validation_fraction=0.2,
        seed=11,
        cache_records=True,
        allow_incomplete=True,
        labels="perceived",
        model=config.model,
        sampling=config.sampling,
    )
    assert config.trainer.lr_schedule == "cosine" and config.trainer.epochs == 7
    assert config.runtime == RuntimeConfig(
        out="runs/fixture",
        strategy="one_device",
        deterministic=False,
        verbose=2,
        export=False,
        worker_timeout_seconds=120.0,
    )
    # And it is written back as it was read: config.json keeps its flat layout.
    # (Fields added since the fixture was written come back at their defaults.)
    added = {"init_from": "", "freeze": "none", "remat": "auto", "remat_chunks": 16}
    assert config.to_dict() == {**json.loads(OLD_CONFIG_JSON.read_text())["config"], **added}


def test_the_old_config_file_and_flags_still_load_through_emotf_train():
    config, run_all = parse_config(["--config", str(OLD_CONFIG_JSON)])
    assert not run_all
    _check_fixture_values(config)
    config, _ = parse_config(
        [
            "--config",
            str(OLD_CONFIG_JSON),
            "--epochs",
            "9",
            "--batch-size",
            "4",
            "--lr",
            "0.02",
            "--model.num_segments",
            "4",
            "--sampling",
            "window_seconds=0.6",
            "--train.out",
            "elsewhere",
        ]
    )
    assert (config.trainer.epochs, config.trainer.batch_size) == (9, 4)
    assert config.trainer.learning_rate == 0.02 and config.runtime.out == "elsewhere"
    assert config.task.model.num_segments == 4 and config.task.sampling.num_segments == 4
    assert config.task.sampling.window_seconds == 0.6 and config.task.fold == 3


def test_every_train_config_field_is_declared_once_in_one_section():
    hints = typing.get_type_hints(TrainConfig)
    declared = {}
    for section in SECTIONS.values():
        section_hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):
            assert f.name not in declared, f"{f.name} declared in two sections"
            declared[f.name] = (section, f, section_hints[f.name])
    assert set(declared) == {f.name for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(TrainConfig):
        section, original, annotation = declared[f.name]
        assert hints[f.name] == annotation, f.name
        assert f.metadata == original.metadata, f.name  # the same bound and help
        assert f.default == original.default and f.default_factory == original.default_factory


def test_the_sections_follow_the_flat_fields():
    config = TrainConfig(epochs=3, fold=4, out="here", model=ModelConfig(num_segments=3))
    assert isinstance(config.task, TaskConfig) and config.task.fold == 4
    assert isinstance(config.trainer, TrainerConfig) and config.trainer.epochs == 3
    assert isinstance(config.runtime, RuntimeConfig) and config.runtime.out == "here"
    changed = dataclasses.replace(config, batch_size=32, fold=5)
    assert changed.trainer.batch_size == 32 and changed.task.fold == 5
    assert config.trainer.batch_size == 16  # the original is untouched
    assert changed.task.sampling.num_segments == 3
    rebuilt = TrainConfig.from_sections(config.task, config.trainer, config.runtime)
    assert rebuilt == config
    assert TrainConfig.from_sections(trainer=TrainerConfig(epochs=2)) == TrainConfig(epochs=2)


def test_errors_name_the_class_the_value_was_given_to():
    with pytest.raises(ValueError, match=r"^TrainConfig\.epochs must be in \[1, 100000\]"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match=r"^TrainerConfig\.epochs must be in \[1, 100000\]"):
        TrainerConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown TrainConfig.sampling field 'window_secs'"):
        TrainConfig(sampling={"window_secs": 1.0})
    with pytest.raises(ValueError, match="unknown TaskConfig.sampling field 'window_secs'"):
        TaskConfig(sampling={"window_secs": 1.0})


def test_the_sampling_shapes_come_from_the_model_in_one_function():
    model = ModelConfig(
        num_segments=3, frame_size=32, spectrogram_shape=(16, 8), audio_widths=(4, 8)
    )
    shapes = {"num_segments": 3, "frame_size": 32, "time_bins": 16, "freq_bins": 8}
    derived = model_sampling(model)
    assert {k: getattr(derived, k) for k in SAMPLING_SHAPES} == shapes
    # A config's shapes are replaced, its other settings kept.
    given = model_sampling(model, SamplingConfig(window_seconds=0.5, num_segments=7))
    assert given.window_seconds == 0.5 and given.num_segments == 3 and given.time_bins == 16
    # A dict's shape fields must agree with the model.
    assert model_sampling(model, {"num_segments": 3, "num_mel_bins": 40}).num_mel_bins == 40
    with pytest.raises(ValueError, match="sampling shapes come from the model config"):
        model_sampling(model, {"time_bins": 17})
    with pytest.raises(ValueError, match="must be a SamplingConfig or a JSON object"):
        model_sampling(model, "window_seconds=1")
    # TrainConfig and TaskConfig derive theirs with it.
    assert TrainConfig(model=model).sampling == derived == TaskConfig(model=model).sampling
