"""How fast the playground becomes usable, in headless Chromium (Debian's, via Playwright).

Against a warm ``seqlab serve`` on this machine, each run opens ``/`` in a fresh browser context
(empty cache) and measures:

* first contentful paint (the browser's own ``paint`` timing),
* interactive: the page's modules have run and its controls answer (``body[data-ready]``),
* the RNN heatmap after the click on "lesson preset": click → every layer's picture drawn
  (plotly.js already loaded in the background, as for a user who reads before clicking),
* the bytes the page loaded (transfer sizes: plotly.js is sent gzipped).

A second visit in the same context (the browser cache warm) is measured too. The baseline in the
same run is ``/docs`` (Swagger UI, served by the same service): its first paint and bytes.

    python -m bench.page [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.browser import CHROMIUM_FLAGS, chromium
from bench.servers import start_server, stop_server

PAINT = "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
BYTES = (
    "performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, 0)"
    " + performance.getEntriesByType('navigation')[0].transferSize"
)


def visit(page, url: str, *, heatmap: bool) -> dict[str, float]:
    started = time.perf_counter()
    page.goto(url)
    result: dict[str, float] = {}
    if heatmap:
        page.wait_for_selector("body[data-ready=true]")
        result["interactive_ms"] = (time.perf_counter() - started) * 1000
        page.wait_for_function("window.Plotly !== undefined")
        clicked = time.perf_counter()
        page.click("#rnn-preset")
        page.wait_for_function(
            "[...document.querySelectorAll('[data-testid^=rnn-layer-]')].length === 4 &&"
            " [...document.querySelectorAll('[data-testid^=rnn-layer-]')]"
            ".every(e => e.querySelector('.hm'))"
        )
        result["heatmap_after_click_ms"] = (time.perf_counter() - clicked) * 1000
    else:
        page.wait_for_load_state("load")
    page.wait_for_function(f"{PAINT} !== null")
    result["first_paint_ms"] = page.evaluate(PAINT)
    page.wait_for_load_state("networkidle")
    result["kilobytes"] = page.evaluate(BYTES) / 1024
    return result


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(
            "seqlab",
            "",
            {"SEQLAB_DATA_DIR": data_dir, "SEQLAB_TRAIN_DEMO_MODEL": "false"},
            Path(data_dir),
            seqlab_serve=True,
        )
        rows: dict[str, list[dict[str, float]]] = {"/": [], "/ (cached)": [], "/docs": []}
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium(), args=CHROMIUM_FLAGS
                )
                # A warm service, as the goal says: one untimed visit of each page first (the
                # first request compresses plotly.js, the first forward loads the layer).
                warm = browser.new_context()
                visit(warm.new_page(), server.url + "/", heatmap=True)
                visit(warm.new_page(), server.url + "/docs", heatmap=False)
                warm.close()
                for _ in range(arguments.runs):  # interleaved: page, docs, page, docs…
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    rows["/"].append(visit(page, server.url + "/", heatmap=True))
                    rows["/ (cached)"].append(visit(page, server.url + "/", heatmap=True))
                    context.close()
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    rows["/docs"].append(
                        visit(context.new_page(), server.url + "/docs", heatmap=False)
                    )
                    context.close()
                browser.close()
        finally:
            stop_server(server)
    columns = ("first_paint_ms", "interactive_ms", "heatmap_after_click_ms", "kilobytes")
    print(f"playground in headless Chromium, {arguments.runs} runs each: median (min–max)")
    print(f"| page | {' | '.join(columns)} | first paint vs /docs |")
    print("|---|" + "---:|" * (len(columns) + 1))
    docs_paint = statistics.median(r["first_paint_ms"] for r in rows["/docs"])
    for name, results in rows.items():
        cells = []
        for column in columns:
            values = [r[column] for r in results if column in r]
            cells.append(
                f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"
                if values
                else "—"
            )
        paint = statistics.median(r["first_paint_ms"] for r in results)
        print(f"| {name} | {' | '.join(cells)} | {paint / docs_paint:.2f}× |")


if __name__ == "__main__":
    main()
