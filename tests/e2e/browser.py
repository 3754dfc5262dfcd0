"""What every browser test shares: Debian's chromium (never Playwright's own download) and its marks."""

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
NO_CHROMIUM = "Debian's chromium is not installed (apt-get install chromium)"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# pytestmark of a browser test module: a live server needs committed data, and no chromium means skip.
BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM),
]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
