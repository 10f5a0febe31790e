"""The CLI tests' fork server gives what a fresh ``python -m`` gives: exit codes, output,
working directory, ``sys.argv``/``sys.path``, environment, and timeouts that kill."""

import json
import os
import subprocess
import time

import pytest

from tests.helpers import FAST, env_drift, read_metrics, run_cli


def _assert_forked():
    drift = env_drift()
    assert not drift, (
        f"this worker's environment changed in {drift} since it started, so its CLI calls "
        "run from scratch; add keys that nothing reads at import to VOLATILE_ENV"
    )


def _both(module, *args, **kwargs):
    forked = run_cli(module, *args, check=False, **kwargs)
    fresh = run_cli(module, *args, check=False, fresh=True, **kwargs)
    return forked, fresh


def test_exit_codes_and_stderr_match_a_fresh_interpreter(tmp_path):
    missing = str(tmp_path / "missing.json")
    forked, fresh = _both("json.tool", missing)  # argparse error: exit 2, message on stderr
    assert forked.returncode == fresh.returncode == 2
    assert forked.stderr == fresh.stderr and "missing.json" in forked.stderr
    ok_file = tmp_path / "ok.json"
    ok_file.write_text('{"a": [1, 2]}')
    forked, fresh = _both("json.tool", str(ok_file))
    assert forked.returncode == fresh.returncode == 0 and forked.stdout == fresh.stdout


def test_an_uncaught_exception_exits_1_with_its_traceback(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("raise ValueError('boom 42')\n")
    forked, fresh = _both("boom", cwd=tmp_path)  # cwd is sys.path[0], as with `-m`
    assert forked.returncode == fresh.returncode == 1
    for proc in (forked, fresh):
        assert "ValueError: boom 42" in proc.stderr.splitlines()[-1]


def test_argv_cwd_path_and_environment_are_the_requested_ones(tmp_path):
    (tmp_path / "probe.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps([sys.argv, os.getcwd(), sys.path[0], __name__,"
        " os.environ['PYTEST_CURRENT_TEST']]))\n"
    )
    forked, fresh = _both("probe", "a=1", "b c", cwd=tmp_path)
    assert forked.returncode == fresh.returncode == 0, forked.stderr
    assert forked.stdout == fresh.stdout
    argv, cwd, path0, name, current = json.loads(forked.stdout)
    assert argv == [str(tmp_path / "probe.py"), "a=1", "b c"] and name == "__main__"
    assert cwd == path0 == str(tmp_path) and "test_argv_cwd_path" in current


def test_a_timeout_kills_the_run_and_everything_it_started(tmp_path):
    (tmp_path / "hang.py").write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open('child.pid', 'w').write(str(child.pid)); print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    _assert_forked()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_cli("hang", cwd=tmp_path, timeout=5)
    assert "started" in info.value.output
    pid = int((tmp_path / "child.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the grandchild went with its process group
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_training_through_the_server_gives_the_fresh_run_s_metrics(tmp_path):
    args = [*FAST, "data=copy", "trainer.max_epochs=1", "logger=none"]
    run_cli("rnnlab.train", *args, f"hydra.run.dir={tmp_path / 'forked'}")
    run_cli("rnnlab.train", *args, f"hydra.run.dir={tmp_path / 'fresh'}", fresh=True)
    forked, fresh = (read_metrics(tmp_path / d)["metrics"] for d in ("forked", "fresh"))
    assert forked == fresh and "test/acc" in forked


def test_a_changed_environment_gets_a_fresh_interpreter(tmp_path, monkeypatch):
    # The server imported torch under the worker's environment; a module that reads a
    # variable at import must see the one the test set, so such a call starts afresh.
    (tmp_path / "probe.py").write_text(
        "import os, sys\nprint('torch' in sys.modules, os.environ.get('RNNLAB_PROBE'))\n"
    )
    _assert_forked()
    assert run_cli("probe", cwd=tmp_path).stdout.split() == ["True", "None"]  # forked
    monkeypatch.setenv("RNNLAB_PROBE", "set")
    assert run_cli("probe", cwd=tmp_path).stdout.split() == ["False", "set"]
