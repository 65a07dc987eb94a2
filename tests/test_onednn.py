"""emotf-predict runs with oneDNN's convolutions unless the user says otherwise; others as TF."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import sys; sys.argv[0] = {prog!r}; import emotf.cli, os; "
    "from tensorflow.python.util import _pywrap_util_port as port; "
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled())"
)


def probe(prog: str, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(prog=prog)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


@pytest.mark.parametrize(
    ("prog", "env", "expected"),
    [
        ("/usr/bin/emotf-predict", {}, ["1", "True"]),
        ("/usr/bin/emotf-predict", {"TF_ENABLE_ONEDNN_OPTS": "0"}, ["0", "False"]),
    ],
)
def test_onednn_is_on_for_emotf_predict_unless_the_user_says_otherwise(prog, env, expected):
    assert probe(prog, **env) == expected


def test_other_console_scripts_leave_it_to_tensorflow():
    # TensorFlow's own default depends on the CPU: only the variable is checked here.
    assert probe("/usr/bin/emotf-train")[0] == "None"
