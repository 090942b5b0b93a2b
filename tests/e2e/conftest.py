"""Fixtures of the end-to-end tests: one UML boot per pytest session.

They run only with ``SSTP_E2E=1`` (CI sets it); then a missing requirement
(linux.uml, pppd, sstpc, the sstpd venv: see scripts/setup-e2e.sh) is a
failure, not a skip. Otherwise every e2e test is skipped with that reason.

- ``lab`` (session): a started :class:`~.bed.Lab` (certificates + booted guest).
- ``case_dir`` (function): ``RUN_DIR/cases/NN-<test name>``; afterwards the
  server is stopped and every leftover guest process is ended, so each test
  starts clean. When a test fails, the tails of its logs are added to the report.
- ``sstp_server`` (function): ``lab.server`` started with the defaults
  (lab CA's server certificate on 192.0.2.1:443), stopped afterwards.
- ``timings`` (function): a :class:`Timings` stopwatch; its figures are
  written to ``case_dir/timings.json`` and listed at the end of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from sstp_pppd.plugin import build

from .bed import SSTPD, Lab, SstpServer, Timings
from .pluginlab import Sink, stop_sinks, tidy
from .uml import INIT, tail

E2E_ENV = "SSTP_E2E"
CASE_DIR = pytest.StashKey[Path]()
LAB = pytest.StashKey[Lab]()
_timings: list[tuple[str, dict[str, float]]] = []


def _missing() -> list[str]:
    missing = [p for p in ("linux.uml", "pppd", "sstpc", "ip", "openssl") if not shutil.which(p)]
    if not SSTPD.exists():
        missing.append(str(SSTPD))
    if not any(Path("/usr/lib/pppd").glob("*/sstp-pppd-plugin.so")):
        missing.append("sstp-pppd-plugin.so")
    if not INIT.exists():
        missing.append(str(INIT))
    return missing


# ----- the key plugin's cases (test_plugin.py, test_plugin_channel.py) -------------------


@pytest.fixture
def tidy_plugin_secrets(lab: Lab) -> Iterator[None]:
    """After each case: the pap-secrets and eaptls-server files some cases write, gone."""
    yield
    tidy(lab)


@pytest.fixture(scope="module")
def plugin(lab: Lab) -> Path:
    """sstp-pppd-keys.so for the installed pppd, in the run directory the guest sees."""
    return build.build_plugin(lab.run_dir / "plugin").path


@pytest.fixture
def sink_factory(lab: Lab, case_dir: Path) -> Iterator[list[Sink]]:
    """Key sinks a case starts; stopped after it."""
    sinks: list[Sink] = []
    yield sinks
    stop_sinks(sinks)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if os.environ.get(E2E_ENV) != "1":
        pytest.skip(f"end-to-end tests in User-Mode Linux run only with {E2E_ENV}=1")
    missing = _missing()
    if missing:
        pytest.fail(f"{E2E_ENV}=1 but missing: {', '.join(missing)} (run scripts/setup-e2e.sh)")
    lab = Lab()
    lab.start()
    request.config.stash[LAB] = lab
    _timings.append(("boot (certs + guest)", {"boot": lab.timings["start"]}))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def case_dir(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Path]:
    if not lab.guest.alive:
        pytest.fail(f"the UML guest is no longer running\n{lab.guest.tails()}")
    d = lab.new_case(request.node.name)
    request.node.stash[CASE_DIR] = d
    yield d
    if lab.guest.alive:
        lab.server.stop()
        left = lab.guest.kill_all(grace=2.0)
        if left:
            (d / "leftovers.txt").write_text("".join(f"{p.pid} {p.argv}\n" for p in left))


@pytest.fixture
def sstp_server(lab: Lab, case_dir: Path) -> Iterator[SstpServer]:
    lab.server.start(case_dir)
    yield lab.server
    lab.server.stop()


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> Iterator[Timings]:
    t = Timings()
    t0 = time.monotonic()
    yield t
    t.steps["total"] = time.monotonic() - t0
    _timings.append((request.node.name, dict(t.steps)))
    d = request.node.stash.get(CASE_DIR, None)
    if d is not None:
        (d / "timings.json").write_text(json.dumps(t.steps, indent=1))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    d = item.stash.get(CASE_DIR, None)
    if d is None or not rep.failed:
        return rep
    parts = [f"run directory: {d.parent.parent}"]
    for f in sorted(d.rglob("*")):
        if f.is_file() and f.stat().st_size:
            parts.append(f"--- {f.relative_to(d)}:\n{tail(f.read_text(errors='replace'), 25)}")
    lab = item.config.stash.get(LAB, None)
    if lab is not None:
        parts.append(lab.guest.tails(15))
    rep.sections.append(("e2e logs", "\n".join(parts)))
    return rep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _timings:
        return
    tr = terminalreporter
    tr.section("e2e timings (s)")
    for name, steps in _timings:
        tr.write_line(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
