"""A real browser for the page tests: Debian's Chromium, driven by Playwright (never a
downloaded browser: ``playwright install`` fails offline)."""

from __future__ import annotations

import os
import shutil

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
