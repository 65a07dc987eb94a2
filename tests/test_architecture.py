"""The architecture contracts hold: layers, a core free of app imports, no import cycles, and
every config round-trips through the one generic `to_dict` / `from_dict`."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from emotf.configs import ModelConfig, SamplingConfig, TrainConfig
from emotf.demo import DemoConfig
from emotf.media.faces import FaceTrackerConfig
from emotf.records.config import BuildConfig
from emotf.synthetic.sample import SampleConfig
from emotf.tuning.config import TuneConfig

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is in the test extra"
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 kept, 0 broken" in result.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("emotf", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(num_segments=3, video_widths=(8, 16)),
        SamplingConfig(window_seconds=1.0),
        TrainConfig(model=ModelConfig(num_segments=3), sampling={"window_seconds": 1.0}, epochs=2),
        TuneConfig(train=TrainConfig(epochs=1), max_trials=3),
        FaceTrackerConfig(margin=0.4),
        BuildConfig(data_dir="d", out_dir="o", workers=1, tracker=FaceTrackerConfig(margin=0.4)),
        SampleConfig.tiny(num_actors=1, clips_per_actor=2),
        DemoConfig(),
    ],
)
def test_every_config_round_trips_and_refuses_unknown_keys(config):
    values = config.to_dict()
    assert type(config).from_dict(values) == config
    with pytest.raises(ValueError, match=r"unknown \w+ field 'typo'"):
        type(config).from_dict({**values, "typo": 1})


def test_train_config_types_and_derives_its_sampling():
    config = TrainConfig.from_dict(
        {"model": {"num_segments": 4}, "sampling": {"window_seconds": 1.0}}
    )
    assert isinstance(config.model, ModelConfig) and isinstance(config.sampling, SamplingConfig)
    assert config.sampling.num_segments == 4 and config.sampling.window_seconds == 1.0
    with pytest.raises(ValueError, match="unknown TrainConfig.sampling field 'window_secs'"):
        TrainConfig(sampling={"window_secs": 1.0})  # a typo fails at construction
    with pytest.raises(ValueError, match="unknown ModelConfig field 'num_segment'"):
        TrainConfig.from_dict({"model": {"num_segment": 4}})
