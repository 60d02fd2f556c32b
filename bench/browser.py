"""Debian's headless Chromium for the page benchmark and the screenshots (driven by
Playwright; never a downloaded browser). The same flags as the browser tests
(``tests/app/browser.py``)."""

from __future__ import annotations

import shutil
import sys

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium() -> str:
    """The Chromium executable, or exit with one line saying how to install it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("error: no Chromium (Debian: apt-get install -y chromium)")
