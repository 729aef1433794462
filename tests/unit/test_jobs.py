"""Long-running jobs: liveness by pid and start time, and logs rotated by the run-logged wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_tweets.jobs import RotatingFile, job_status
from stackbase.processes import process_identity
from stackbase.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {"STREAMINGDB_URL": "postgresql://streaming@127.0.0.1:55432/streamingdb", "KAFKA_BOOTSTRAP_SERVERS": "h:1",
       "MLFLOW_TRACKING_URI": "http://m:1", "MODEL_SERVING_URL": "http://s:1", "LABEL_STUDIO_URL": "http://l:1",
       "AIRFLOW_URL": "http://a:1"}


def settings_in(tmp_path: Path, **extra: str):
    return load_settings({**ENV, "DATA_DIR": str(tmp_path), **extra})


def test_a_pid_counts_as_the_job_only_with_its_start_time(tmp_path):
    settings = settings_in(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    me = os.getpid()
    (run / "job.pid").write_text(f"{me} {process_identity(me)} 0\n")
    assert job_status("job", settings)["state"] == "running"
    # the same pid, another process (reused after the job died, or after a reboot)
    (run / "job.pid").write_text(f"{me} {process_identity(me).split(':')[0]}:1 0\n")
    assert job_status("job", settings)["state"] == "dead"
    (run / "job.pid").write_text(f"{me}\n")  # the old pid-only form: the pid is all there is
    assert job_status("job", settings)["state"] == "running"
    assert job_status("other", settings)["state"] == "stopped"


def test_rotating_file_keeps_a_bounded_number_of_bounded_files(tmp_path):
    log = tmp_path / "job.log"
    out = RotatingFile(log, max_bytes=1_000, backups=2)
    for index in range(100):
        out.write(f"line {index:04d} {'x' * 80}\n".encode())
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["job.log", "job.log.1", "job.log.2"]
    assert all((tmp_path / name).stat().st_size <= 1_000 for name in files)
    assert "line 0099" in log.read_text() and "line 0000" not in "".join((tmp_path / n).read_text() for n in files)


def test_run_logged_rotates_a_job_s_output_and_returns_its_exit_code(tmp_path):
    log = tmp_path / "job.log"
    code = "import sys\nfor i in range(5000): print(f'message {i:05d}', flush=True)\nsys.exit(3)"
    result = subprocess.run([sys.executable, "-m", "ai_tweets.jobs", "run-logged", "--log", str(log), "--max-bytes",
                             "20000", "--backups", "3", "--", sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": str(ROOT / "include")}, timeout=60)
    assert result.returncode == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.log", "job.log.1", "job.log.2", "job.log.3"]
    assert log.read_text().splitlines()[-1].endswith("exited with 3")
    # the last line may open a fresh file: the job's last message is in the newest two
    assert "message 04999" in (tmp_path / "job.log.1").read_text() + log.read_text()


@pytest.mark.parametrize(("variable", "value"), [("STREAMINGDB_STATEMENT_TIMEOUT", "0"),
                                                 ("STREAMINGDB_LOCK_TIMEOUT", "1s"),
                                                 ("CLASSIFY_STALL_SECONDS", "5"),
                                                 ("QUARANTINE_RETENTION_DAYS", "-1")])
def test_bad_timeouts_and_retentions_name_the_variable(tmp_path, variable, value):
    with pytest.raises(SettingsError, match=f"^{variable}="):
        settings_in(tmp_path, **{variable: value})
