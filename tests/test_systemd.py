"""contrib/systemd: the units pass ``systemd-analyze verify``, are hardened, and the command they run
behaves as a service must (logs for the journal, a clean stop on SIGTERM)."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, rss, wait_for

UNITS = ROOT / "contrib" / "systemd"
SERVICE = UNITS / "news-monitor.service"
WORKER = UNITS / "news-monitor-worker@.service"
INSTALLED_AT = "/opt/news-monitor/bin/monitor"


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: install the Debian package `systemd` (apt-get install systemd)"
    return tool


def settings(unit: Path) -> dict[str, str]:
    """``{key: value}`` of a unit file (the last assignment wins, as in systemd)."""
    out = {}
    for line in unit.read_text().splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def here(tmp_path: Path, unit: Path, name: str | None = None, edit=lambda text: text) -> Path:
    """A copy of ``unit`` whose ExecStart names this checkout's ``monitor`` (verify checks it exists)."""
    monitor = Path(sys.executable).parent / "monitor"
    assert monitor.is_file(), f"{monitor}: news-monitor is not installed in this environment"
    copy = tmp_path / (name or unit.name)
    copy.write_text(edit(unit.read_text().replace(INSTALLED_AT, str(monitor))))
    return copy


def verify(*units: Path) -> subprocess.CompletedProcess:
    return subprocess.run([analyze(), "verify", *map(str, units)], capture_output=True, text=True, timeout=120,
                          cwd=units[0].parent)


def test_both_units_verify_without_a_warning(tmp_path):
    done = verify(here(tmp_path, SERVICE), here(tmp_path, WORKER, "news-monitor-worker@asia.service"))
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


def test_verify_catches_what_we_would_get_wrong(tmp_path):
    # A typo only warns (exit 0): that is why the test above wants an empty stderr.
    typo = verify(here(tmp_path, SERVICE, edit=lambda t: t.replace("KillSignal=", "KillSignl=")))
    assert "Unknown key 'KillSignl'" in typo.stderr
    missing = verify(here(tmp_path, SERVICE, edit=lambda t: t.replace(str(Path(sys.executable).parent), "/nowhere")))
    assert missing.returncode != 0 and "is not executable" in missing.stderr


@pytest.mark.parametrize("unit", [SERVICE, WORKER], ids=lambda u: u.name)
def test_the_units_are_hardened_and_stop_gracefully(unit, tmp_path):
    found = settings(unit)
    assert found["DynamicUser"] == "yes" and found["NoNewPrivileges"] == "yes"
    assert found["ProtectSystem"] == "strict" and found["ReadWritePaths"] == "/var/lib/news-monitor"
    assert "--db /var/lib/news-monitor/" in found["ExecStart"]  # the one writable place
    assert found["Restart"] == "on-failure" and found["RestartPreventExitStatus"] == "2"
    assert found["KillSignal"] == "SIGTERM" and found["TimeoutStopSec"] == "90s"
    name = "news-monitor-worker@asia.service" if "@" in unit.name else None
    report = subprocess.run([analyze(), "security", "--offline=yes", "--no-pager", str(here(tmp_path, unit, name))],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", report.stdout).group(1))
    assert exposure <= 2.5, report.stdout[-2000:]


def _exec_start(tmp_path: Path, config: Path) -> list[str]:
    """The unit's ExecStart with the installed paths moved into the test's folder."""
    line = settings(SERVICE)["ExecStart"]
    line = line.replace(INSTALLED_AT, str(Path(sys.executable).parent / "monitor"))
    line = line.replace("/etc/news-monitor/monitor.toml", str(config))
    return line.replace("/var/lib/news-monitor/monitor.db", str(tmp_path / "service.db")).split()


def test_the_service_command_logs_for_the_journal_and_stops_on_sigterm(feed_server, make_config, tmp_path):
    url = feed_server.serve("/wire.xml", rss([{"title": "Pyongyang test", "link": "http://news.test/1"}]))
    config = make_config(f'[sources.wire]\nurl = "{url}"\n[sources.dead]\nurl = "http://127.0.0.1:9/x"\n')
    read_end, write_end = os.pipe()
    stat = os.fstat(write_end)
    # What systemd sets for a service whose stderr is the journal's stream.
    env = {**os.environ, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(_exec_start(tmp_path, config), stdout=subprocess.DEVNULL, stderr=write_end,
                               env=env, cwd=tmp_path)
    os.close(write_end)
    lines: list[str] = []
    reader = os.fdopen(read_end, "r", encoding="utf-8")
    try:
        def polled_both() -> bool:
            line = reader.readline()
            lines.append(line)
            return any("wire:" in x for x in lines) and any("dead:" in x for x in lines)

        wait_for(polled_both, timeout=60, interval=0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0  # within the unit's TimeoutStopSec
        lines.extend(reader.read().splitlines())
    finally:
        if process.poll() is None:
            process.kill()
        reader.close()
    logged = [line.rstrip("\n") for line in lines if line.strip()]
    assert any(line.startswith("<6>INFO monitor") for line in logged), logged
    assert any(line.startswith("<4>WARNING monitor.pipeline: dead:") for line in logged), logged
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in logged), logged


def test_logs_keep_their_timestamps_elsewhere(make_config, tmp_path):
    config = make_config('[sources.dead]\nurl = "http://127.0.0.1:9/x"\n')
    # JOURNAL_STREAM inherited from a service, but stderr is now a pipe of ours: not the journal.
    env = {**os.environ, "JOURNAL_STREAM": "1:1"}
    done = subprocess.run([sys.executable, "-m", "monitor", "once", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    warning = next(line for line in done.stderr.splitlines() if "dead:" in line)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING monitor.pipeline: dead:", warning), warning


FLEET = UNITS / "news-monitor-fleet@.service"


def test_the_fleet_worker_unit_verifies_and_is_hardened(tmp_path):
    unit = here(tmp_path, FLEET, "news-monitor-fleet@1.service")
    (tmp_path / "fleet.env").write_text("MONITOR_POSTGRES_URL=postgresql://monitor@db.invalid/monitor\n")
    done = verify(unit)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr
    found = settings(FLEET)
    assert found["DynamicUser"] == "yes" and found["ProtectSystem"] == "strict"
    assert "--db ${MONITOR_POSTGRES_URL}" in found["ExecStart"] and found["KillSignal"] == "SIGTERM"
    report = subprocess.run([analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", report.stdout).group(1))
    assert exposure <= 2.5, report.stdout[-2000:]
