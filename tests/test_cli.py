"""The command line answers --help and bad requests without loading the pipeline or Prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cleansing.mapping import PRESETS_NAMES
from cleansing.preflight import DEFAULT_OUT
from cleansing.state import DEFAULT_STATE
from flows import cli

from .conftest import ROOT

HEAVY = ("polars", "prefect", "pandera", "pandas", "rapidfuzz", "email_validator", "cleansing.pipeline")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    return set(out.stdout.split())


def test_the_parser_defaults_are_the_modules_defaults() -> None:
    assert tuple(cli.PRESET_CHOICES) == PRESETS_NAMES
    assert cli.DEFAULT_OUT == str(DEFAULT_OUT) and cli.DEFAULT_STATE == str(DEFAULT_STATE)


def test_help_loads_neither_polars_nor_prefect() -> None:
    modules = loaded_after(
        "import contextlib, io\n"
        "from flows import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['--help'])"
    )
    assert not [m for m in HEAVY if m in modules]


def test_a_missing_source_is_answered_without_the_pipeline_or_prefect(tmp_path: Path) -> None:
    modules = loaded_after(
        "from flows import cli\n"
        f"assert cli.main(['run', {str(tmp_path / 'nope.csv')!r}, '--state', {str(tmp_path / 's.sqlite')!r}]) == 2"
    )
    assert modules and "prefect" not in modules and "cleansing.pipeline" not in modules and "pandera" not in modules


@pytest.mark.parametrize("command", ["run", "dedupe", "forget", "report", "serve"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert "usage: cleanse" in capsys.readouterr().out


def test_the_command_exits_with_mains_code_and_its_whole_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.csv"
    command = [sys.executable, "-m", "flows.cli", "run", str(missing), "--state", str(tmp_path / "s.sqlite")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "nope.csv" in done.stderr and done.stderr.endswith("\n") and done.stdout == ""
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    in_process = capsys.readouterr().out
    helped = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert helped.returncode == 0 and helped.stdout == in_process


def test_the_command_waits_for_a_thread_that_is_still_working(tmp_path: Path) -> None:
    mark = tmp_path / "finished"
    probe = (
        "import threading, time\n"
        "from flows import cli\n"
        "cli.main = lambda: 3\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), open({str(mark)!r}, 'w').write('x'))).start()\n"
        "cli.entry()"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 3 and mark.read_text() == "x"
