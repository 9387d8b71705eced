"""`medreq inbox` as a command: the install hint without Textual, a clear refusal for patients."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import medreq.cli.inbox  # noqa: F401  (registers the command until medreq.cli imports it)
from medreq.cli.app import app
from medreq.client import Profile, ProfileStore


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(tmp_path))
    return tmp_path


def test_inbox_without_textual_prints_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "textual", None)  # import textual now raises ImportError
    result = CliRunner().invoke(app, ["inbox"])
    assert result.exit_code == 1
    assert "pip install 'medreq[tui]'" in result.output


def test_inbox_refuses_a_patient_profile_clearly() -> None:
    ProfileStore().save(
        Profile(
            name="me", url="http://127.0.0.1:1", username="alice", account_id=1, role="patient", access="x"
        )
    )
    result = CliRunner().invoke(app, ["inbox", "--profile", "me"])
    assert result.exit_code == 1
    assert "patient account 'alice'" in result.output
    assert "Traceback" not in result.output


def test_importing_the_command_does_not_import_textual() -> None:
    code = "import sys, medreq.cli.inbox; assert 'textual' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
