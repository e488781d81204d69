"""Bad input: exit status 2 and one line on stderr naming what is wrong and what is valid."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args, results=None):
    cmd = [sys.executable, "-m", "harness.cli", "eval", *args, "--no-progress"]
    if results is not None:
        cmd += ["--results", str(results)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def assert_usage_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--policy", "expert", "--suite", "libero_spatail"], ["unknown suite 'libero_spatail'", "did you mean 'libero_spatial'", "libero_object"]),
        (["--policy", "expret", "--suite", "libero_spatial"], ["unknown policy 'expret'", "did you mean 'expert'", "noop"]),
        (["--policy", "noop", "--suite", "libero_spatial", "--tasks", "0,12"], ["task index 12 out of range", "0..9"]),
        (["--policy", "noop", "--suite", "libero_spatial", "--episodes", "51"], ["EPISODES must be in 1..50"]),
        (["--policy", "noop", "--suite", "libero_spatial", "--tasks", "a,b"], ["TASKS must be comma-separated"]),
        (["--policy", "noop", "--suite", "libero_spatial", "--workers", "0"], ["WORKERS must be >= 1"]),
        (["--policy", "nosuchmodule:Thing", "--suite", "libero_spatial"], ["cannot import policy"]),
        (["--policy", "expert", "--suite", "libero_spatial", "--checkpoint", "x"], ["policy 'expert' takes no checkpoint"]),
        (["--policy", "teacher", "--suite", "libero_spatial", "--checkpoint", "/nonexistent/ckpt"],
         ["checkpoint /nonexistent/ckpt: missing model.safetensors"]),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, fragments):
    assert_usage_error(run_cli(*args, results=tmp_path), *fragments)


def test_unwritable_results_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a path under a regular file cannot be created, even by root
    proc = run_cli("--policy", "noop", "--suite", "libero_spatial", results=blocker / "results")
    assert_usage_error(proc, "is not writable")
