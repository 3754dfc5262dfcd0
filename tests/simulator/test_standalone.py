"""The simulator stands in for real machines: it runs without Django, in a process that never loads it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_EVERY_MODULE = """
import pkgutil, sys
import simulator
for module in pkgutil.walk_packages(simulator.__path__, "simulator.", onerror=lambda name: sys.exit(name)):
    __import__(module.name)
django = sorted(name for name in sys.modules if name == "django" or name.startswith("django."))
assert not django, django
print(len([name for name in sys.modules if name.startswith("simulator.")]))
"""


def python(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run this Python in the repo with no DJANGO_* variable (no DJANGO_SETTINGS_MODULE) around."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("DJANGO")}
    return subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_the_simulator_and_every_module_of_it_import_without_django():
    done = python("-c", IMPORT_EVERY_MODULE)

    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10, "every module was imported"


def test_python_m_simulator_runs_on_its_own():
    done = python("-m", "simulator", "--help")

    assert done.returncode == 0, done.stderr
    assert "--secret" in done.stdout and "--misbehave" in done.stdout
