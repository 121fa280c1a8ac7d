"""The READMEs stay in step with the code: every setting, command and error code is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyescreen.cli import build_parser
from eyescreen.settings import ENVIRONMENT_VARIABLES
from eyescreen.web.responses import ERROR_STATUS

ROOT = Path(__file__).resolve().parents[1]
READMES = [pytest.param(ROOT / "README.md", id="english"), pytest.param(ROOT / "README.zh-CN.md", id="chinese")]


@pytest.mark.parametrize("readme", READMES)
def test_readme_lists_every_setting(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")

    for variable, default, _ in ENVIRONMENT_VARIABLES.values():
        assert f"`{variable}`" in text, variable
        assert f"| `{variable}` | {default or ''}" in text or not default, variable


@pytest.mark.parametrize("readme", READMES)
def test_readme_lists_every_error_code(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")

    for _, status, code in ERROR_STATUS:
        assert f"`{code}`" in text, code
        assert f"| {status} |" in text, status


@pytest.mark.parametrize("readme", READMES)
def test_readme_has_no_placeholders(readme: Path) -> None:
    assert "@@" not in readme.read_text(encoding="utf-8")


def test_readme_names_every_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]

    for command in commands:
        assert f"eyescreen {command}" in text, command


@pytest.mark.parametrize("readme", READMES)
def test_readme_states_research_use_only(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")

    assert ("not a medical device" in text) or ("不是医疗器械" in text)
