"""Redo the playground's screenshots in docs/screenshots/ (linked from the README).

Starts a fresh ``seqlab serve`` on a temp data dir, waits for its demo model ``xiyouji`` to be
trained (about a minute on two cores), then drives each section of ``/`` in headless Chromium
(Debian's, via Playwright) and saves one picture per section. Chinese text needs a CJK font
(``apt-get install -y fonts-noto-cjk``); without one the pictures show boxes.

    python -m scripts.screenshots
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.browser import CHROMIUM_FLAGS, chromium
from bench.servers import start_server, stop_server

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TRAINING_TIMEOUT = 600


def wait_for_demo_model(base: str) -> None:
    deadline = time.monotonic() + TRAINING_TIMEOUT
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/train") as answer:
            jobs = json.load(answer)["jobs"]
        if jobs and all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs):
            return
        print(f"  waiting for the demo model: {[j['status'] for j in jobs]}", flush=True)
        time.sleep(5)
    sys.exit("the demo model was not trained in time")


def shoot(page, section: str, name: str) -> None:
    path = OUTPUT / f"{name}.png"
    page.locator(f"#{section}").screenshot(path=str(path))
    print(f"  {path.relative_to(OUTPUT.parent.parent)}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    if not fonts.strip():
        print("warning: no CJK font (apt-get install -y fonts-noto-cjk): Chinese shows as boxes")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(
            "seqlab", "", {"SEQLAB_DATA_DIR": data_dir}, Path(data_dir), seqlab_serve=True
        )
        try:
            wait_for_demo_model(server.url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium(), args=CHROMIUM_FLAGS
                )
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready=true]")
                page.wait_for_function("window.Plotly !== undefined")

                page.click("#segment-form button[type=submit]")
                page.wait_for_selector("#segment-result .chip")
                shoot(page, "segment", "1-segment")

                page.click("#embed-form button[type=submit]")
                page.wait_for_function("document.getElementById('embed-plot').data")
                page.locator("#vocab-list button", has_text="学习").first.click()
                page.wait_for_function("document.getElementById('neighbours-plot').data")
                shoot(page, "embeddings", "2-embeddings")

                page.check("#rnn-batch-first")
                page.click("#rnn-form button[type=submit]")
                page.wait_for_selector("[data-testid=rnn-layer-0-text-1] .hm")
                shoot(page, "rnn", "3-rnn-texts")
                page.click("#rnn-preset")
                page.wait_for_function(
                    "document.querySelector('#rnn-result .shapes').textContent.includes('seed 0')"
                )
                page.wait_for_selector("[data-testid=rnn-layer-0-text-1] .hm")
                page.click("#rnn-result details.weights summary")
                shoot(page, "rnn", "3-rnn-lesson-preset")

                page.click("#windows-form button[type=submit]")
                page.wait_for_selector("#windows-result .windows .x")
                shoot(page, "windows", "4-windows")

                page.fill("#model", "xiyouji")
                page.dispatch_event("#model", "change")
                page.click("#predict-form button[type=submit]")
                page.wait_for_function("document.querySelector('#predict-result .plot')?.data")
                page.click("#generate-form button[type=submit]")
                page.wait_for_function(
                    "document.querySelector('#generate-result p.muted')"
                    "?.textContent.includes('finish_reason')"
                )
                page.click("#score-form button[type=submit]")
                page.wait_for_selector("[data-testid=surprisal] .token")
                shoot(page, "next-word", "5-next-word")

                page.fill("#train-model", "lesson-lm")
                page.wait_for_function("document.getElementById('train-text').value.length > 1000")
                page.click("#train-form button[type=submit]")
                page.wait_for_function(
                    "document.getElementById('train-status').textContent.includes('succeeded')"
                )
                shoot(page, "train", "6-train")

                page.click("#models-refresh")
                page.wait_for_selector("#models-table td code:text-is('lesson-lm')")
                shoot(page, "models", "7-models")
                browser.close()
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
