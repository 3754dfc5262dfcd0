"""The Chinese catalogue keeps up with the code: a string written with _() and not yet translated, or a
translation edited in a .po and not compiled, fails here and says what to run (README, "Translations")."""

import gettext
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import trans_real

BASE_DIR = Path(settings.BASE_DIR)
CATALOGUES = [
    BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES",
    BASE_DIR / "locale" / "vendor" / "zh_Hans" / "LC_MESSAGES",
]
GETTEXT_TOOLS = ["xgettext", "msgmerge", "msguniq", "msgattrib", "msgfmt"]
HOW_TO_FIX = (
    "run `make messages`, translate them in locale/zh_Hans/LC_MESSAGES/django.po, `make compilemessages`"
)

needs_gettext = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in GETTEXT_TOOLS),
    reason="GNU gettext (xgettext, msgmerge, msgfmt…) is not installed: apt-get install gettext",
)


def makemessages_ignores() -> list[str]:
    """The directories `make messages` leaves out, read from the Makefile so both agree."""
    line = re.search(r"^MESSAGES_IGNORE :=(.*)$", (BASE_DIR / "Makefile").read_text(), re.MULTILINE)
    return line.group(1).split()


def makemessages(directory: Path, *options: str) -> None:
    """makemessages in directory: with its manage.py (our project), or without settings (a package)."""
    if (directory / "manage.py").exists():
        command, env = [sys.executable, "manage.py"], None
    else:
        command = [sys.executable, "-m", "django"]
        env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    subprocess.run(
        [*command, "makemessages", "--locale", "zh_Hans", "--no-location", *options],
        cwd=directory,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def msgids(po: Path, *msgattrib_options: str) -> list[str]:
    """The msgids of po's entries that msgattrib selects (the header excluded)."""
    selected = subprocess.run(
        ["msgattrib", "--no-obsolete", "--no-wrap", *msgattrib_options, str(po)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [m for m in re.findall(r'^msgid "(.*)"$', selected, re.MULTILINE) if m]


def catalogue(mo: Path) -> dict:
    with mo.open("rb") as file:
        return gettext.GNUTranslations(file)._catalog


@needs_gettext
def test_every_string_of_the_code_has_a_chinese_translation(tmp_path):
    """makemessages runs on a copy of the project, as `make messages` would, merging into the committed
    .po: a new string comes out untranslated, a changed one fuzzy."""
    project = tmp_path / "project"
    shutil.copytree(
        BASE_DIR,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".data", "__pycache__", "*_cache", "node_modules", "*.mo"
        ),
    )

    makemessages(project, "--no-obsolete", *[f"--ignore={pattern}" for pattern in makemessages_ignores()])

    merged = project / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    assert msgids(merged, "--untranslated") == [], f"strings without a Chinese translation: {HOW_TO_FIX}"
    assert msgids(merged, "--only-fuzzy") == [], f"strings whose English changed (fuzzy): {HOW_TO_FIX}"


@needs_gettext
@pytest.mark.parametrize("directory", CATALOGUES, ids=["ours", "vendor"])
def test_each_committed_mo_is_its_po_compiled(directory, tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(
        ["msgfmt", "--check-format", "-o", str(compiled), str(directory / "django.po")], check=True
    )

    assert catalogue(directory / "django.mo") == catalogue(compiled), (
        "run `make compilemessages` and commit the .mo"
    )


@needs_gettext
@pytest.mark.parametrize("package", ["unfold", "axes"])
def test_every_string_of_a_package_without_chinese_has_a_translation(package, tmp_path):
    """django-unfold (the admin theme) and django-axes (sign-in lockouts) ship no Chinese: locale/vendor
    fills in what no other catalogue translates. An upgrade that adds strings fails here until they are
    added there."""
    source = tmp_path / package
    shutil.copytree(
        Path(importlib.import_module(package).__file__).parent,
        source,
        ignore=shutil.ignore_patterns("__pycache__", "static", "locale"),
    )
    (source / "locale").mkdir()
    makemessages(source)
    extracted = (source / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po").read_text()

    trans_real._translations.clear()  # a fresh merge of every catalogue on LOCALE_PATHS and of the apps
    with translation.override("zh-hans"):
        chinese = trans_real.translation("zh-hans")._catalog
    untranslated = []
    for entry in re.split(r"\n\n+", extracted)[1:]:
        context = re.search(r'^msgctxt "(.*)"$', entry, re.MULTILINE)
        msgid = "".join(re.findall(r'"(.*)"', entry.split("msgid ", 1)[1].split("\nmsg", 1)[0]))
        msgid = msgid.encode().decode("unicode_escape").encode("latin-1").decode()
        key = f"{context.group(1)}\x04{msgid}" if context else msgid
        if "msgid_plural" in entry:
            key = (key, 0)
        if key not in chinese:
            untranslated.append(msgid)

    assert untranslated == [], (
        "add these to locale/vendor/zh_Hans/LC_MESSAGES/django.po, then `make compilemessages`"
    )
