"""The worker's parts that need no server: imports, configuration, the process limit."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tascade_worker.config import ConfigError, WorkConfig, load
from tascade_worker.procs import run_command


def test_the_worker_package_imports_no_django():
    """Guards against the runner pulling in the server (an agent's machine has no Django)."""
    code = (
        "import sys, tascade_worker, tascade_worker.cli, tascade_worker.demo, "
        "tascade_worker.fake_agent; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'rest_framework', 'orchestration', 'governance', 'tascade', 'metrics'}); "
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_file_is_read_and_flags_override_it(tmp_path):
    (tmp_path / ".tascade").mkdir()
    (tmp_path / ".tascade" / "worker.toml").write_text(
        '[work]\nagent = "my-agent"\nvalidate = ["make test"]\nconcurrency = 3\nmax-duration = 60\n'
    )
    config = load(WorkConfig, "work", tmp_path, {"concurrency": 5, "agent": None})
    assert config.agent == "my-agent"
    assert config.validate == ("make test",)
    assert config.concurrency == 5
    assert config.max_duration == 60.0


@pytest.mark.parametrize(
    "line",
    ['concurrency = "two"', 'validate = "make test"', "max_duration = -1", "colour = 1"],
)
def test_a_bad_setting_is_refused_with_its_name(tmp_path, line):
    (tmp_path / ".tascade").mkdir()
    (tmp_path / ".tascade" / "worker.toml").write_text(f"[work]\n{line}\n")
    with pytest.raises(ConfigError, match=line.split()[0]):
        load(WorkConfig, "work", tmp_path, {})


def test_the_time_limit_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "survived"
    # The child outlives its parent's SIGTERM unless the group is killed.
    command = f"(sleep 3 && touch {marker}) & trap '' TERM; sleep 30"
    started = time.monotonic()
    outcome = run_command(
        command,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        log=tmp_path / "log",
        limit=0.5,
        grace=0.5,
    )
    assert outcome.timed_out and outcome.returncode is None
    assert time.monotonic() - started < 5
    time.sleep(3.5)
    assert not marker.exists()
    assert "time limit" in (tmp_path / "log").read_text()


def test_a_stop_event_stops_the_command(tmp_path):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    outcome = run_command(
        "sleep 30",
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        log=Path(tmp_path, "log"),
        limit=None,
        stop=stop,
    )
    assert outcome.stopped and not outcome.ok


def test_tascade_work_refuses_a_bad_config_with_a_usage_error(tmp_path, capsys):
    from tascade_client.cli import main

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".tascade").mkdir()
    (tmp_path / ".tascade" / "worker.toml").write_text("[work]\nconcurrency = 'many'\n")
    argv = ["work", "--repo", str(tmp_path), "--project", "1", "--agent", "true"]

    code = main(argv, env={"TASCADE_API_KEY": "tsk_unused", "TASCADE_URL": "http://127.0.0.1:9"})

    assert code == 2
    assert "concurrency" in capsys.readouterr().err


def test_tascade_work_needs_an_agent_command(tmp_path, capsys):
    from tascade_client.cli import main

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    code = main(["work", "--repo", str(tmp_path), "--project", "1"], env={"TASCADE_API_KEY": "k"})
    assert code == 2
    assert "agent" in capsys.readouterr().err
