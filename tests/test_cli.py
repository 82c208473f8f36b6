"""The topobrain command: help, version, sys-info, errors on one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from topobrain import __version__
from topobrain.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "localize", "compare", "stimuli", "sys-info"):
        assert command in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: topobrain" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"topobrain {__version__}"


def test_sys_info(capsys):
    assert main(["sys-info"]) == 0
    out = capsys.readouterr().out
    assert "topobrain" in out and "numpy" in out


def test_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: x\nlearning_rate: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Unknown training config fields ['learning_rate']" in err
    assert "Traceback" not in err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "topobrain", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
