"""Every user-facing message has its Simplified Chinese translation, none fuzzy, and the catalogue compiles.

The messages are extracted afresh (``makemessages``, in a copy of the project so the checkout is not
touched) and merged with ``locale/zh_Hans``: an msgid in the code or templates that the catalogue
lacks shows up as untranslated, a changed one as fuzzy, and the test names them.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PO = Path("locale/zh_Hans/LC_MESSAGES/django.po")

pytestmark = pytest.mark.skipif(shutil.which("msgattrib") is None, reason="gettext tools (msgattrib) not installed")


def _entries(po: Path, flag: str) -> list[str]:
    out = subprocess.run(["msgattrib", flag, "--no-obsolete", "--no-wrap", str(po)], capture_output=True, text=True,
                         check=True).stdout
    return [line[len("msgid "):] for line in out.splitlines() if line.startswith("msgid ") and line != 'msgid ""']


def test_every_message_is_translated_and_none_is_fuzzy(tmp_path):
    copy = tmp_path / "project"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    shutil.copy2(ROOT / PO, copy / PO)  # the working copy's catalogue, committed or not
    result = subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-location"],
                            cwd=copy, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _entries(copy / PO, "--untranslated") == []
    assert _entries(copy / PO, "--only-fuzzy") == []
    checked = subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(copy / PO)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
