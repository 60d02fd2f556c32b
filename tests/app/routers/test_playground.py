"""The playground at ``/``, end to end in a real browser: Debian's headless Chromium driven by
Playwright against a real ``seqlab serve``. Every request the page makes is recorded, and any
host but the service is refused (so a CDN asset would break the page) and fails the test.

Skipped when Chromium or Playwright is missing (``apt-get install -y chromium``).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.app.browser import CHROMIUM_FLAGS, find_chromium
from tests.app.service_process import ServiceProcess

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium (Debian: apt-get install -y chromium)"
)
KEY = "playground-test-key"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def start(tmp_path: Path, settings: dict[str, str] | None = None) -> ServiceProcess:
    return ServiceProcess(tmp_path / "data", settings).start()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = start(tmp_path_factory.mktemp("playground"))
    yield service
    service.stop()


class Page:
    """A browser tab on the playground that records where every request went."""

    def __init__(self, browser, base: str, width: int = 1280, height: int = 900) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []
        own = urlsplit(base).netloc

        def route(route) -> None:
            url = route.request.url
            if url.startswith("data:") or urlsplit(url).netloc == own:
                route.continue_()
            else:
                self.foreign.append(url)
                route.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A bug caught by the page's own handlers reaches the console; a refused request (a 4xx
        # a test asks for) is the browser's "Failed to load resource" and is not a bug.
        self.page.on(
            "console",
            lambda message: (
                message.type == "error"
                and not message.text.startswith("Failed to load resource")
                and self.errors.append(message.text)
            ),
        )

    def open(self) -> Page:
        self.page.goto(self.base + "/")
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def plot_data(self, selector: str) -> list[dict]:
        """The traces plotly drew in ``selector`` (waits for them)."""
        self.page.wait_for_function(f"document.querySelector({selector!r})?.data?.length > 0")
        return self.page.evaluate(f"document.querySelector({selector!r}).data")

    def close(self) -> None:
        self.context.close()
        assert not self.foreign, f"the page asked other hosts: {self.foreign}"
        assert not self.errors, f"the page threw: {self.errors}"
        assert all(
            urlsplit(u).netloc == urlsplit(self.base).netloc
            for u in self.requests
            if not u.startswith("data:")
        )


@pytest.fixture
def tab(browser, service) -> Iterator[Page]:
    page = Page(browser, service.base).open()
    yield page
    page.close()


def test_the_page_is_served_at_the_root_with_links_to_the_docs(service):
    response = httpx.get(service.base + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/docs"' in response.text
    assert 'href="/redoc"' in response.text
    plotly = httpx.get(
        service.base + "/playground/vendor/plotly.min.js", headers={"accept-encoding": "gzip"}
    )
    assert plotly.status_code == 200
    assert plotly.headers["content-encoding"] == "gzip"
    assert plotly.content.startswith(b"/**\n* plotly.js v")  # httpx decompressed it
    again = httpx.get(
        service.base + "/playground/vendor/plotly.min.js",
        headers={"if-none-match": plotly.headers["etag"]},
    )
    assert again.status_code == 304


def test_pages_ignore_query_parameters_and_modules_are_revalidated(service):
    page = httpx.get(service.base + "/?utm_source=x")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    unchanged = httpx.get(service.base + "/", headers={"if-none-match": page.headers["etag"]})
    assert unchanged.status_code == 304
    module = httpx.get(service.base + "/playground/main.js")
    assert module.status_code == 200
    assert module.headers["cache-control"] == "no-cache"
    again = httpx.get(
        service.base + "/playground/main.js", headers={"if-none-match": module.headers["etag"]}
    )
    assert again.status_code == 304
    plain = httpx.get(
        service.base + "/playground/vendor/plotly.min.js", headers={"accept-encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    gzipped = httpx.get(service.base + "/playground/vendor/plotly.min.js")
    assert plain.headers["etag"] != gzipped.headers["etag"]  # two representations, two tags
    assert plain.content == gzipped.content  # (httpx decompressed the second)
    weak = httpx.get(
        service.base + "/playground/vendor/plotly.min.js",
        headers={"if-none-match": f'"other", W/{gzipped.headers["etag"]}'},
    )
    assert weak.status_code == 304
    # API operations stay strict about unknown query parameters.
    assert httpx.get(service.base + "/models?utm_source=x").status_code == 422


def test_an_unknown_sample_is_a_404_problem(service):
    response = httpx.get(service.base + "/playground/samples/nope.txt")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "no sample 'nope.txt'" in response.json()["detail"]
    for escape in ("..%2Fsettings.py", "..%2F..%2Fpyproject.toml"):
        response = httpx.get(service.base + "/playground/samples/" + escape)
        assert response.status_code == 404
        assert "[project]" not in response.text
    response = httpx.get(service.base + "/playground/..%2Frouters%2Fplayground.py")
    assert response.status_code == 404


def test_segment_shows_the_lesson_sentence_as_chips_with_ids(tab):
    page = tab.page
    page.click("#segment-form button[type=submit]")
    page.wait_for_selector("#segment-result .chip")
    tokens = page.locator("#segment-result .chip .token").all_inner_texts()
    assert tokens == ["我", "爱", "学习", "自然语言", "处理"]
    answer = httpx.post(
        tab.base + "/tokenize", json={"model": "lesson-rnn", "text": "我爱学习自然语言处理"}
    ).json()
    assert page.locator("#segment-result .chip .id").all_inner_texts() == [
        str(i) for i in answer["ids"][0]
    ]
    # An OOV token is marked, and the request is shown beside the picture as curl.
    page.fill("#segment-text", "我爱量子计算")
    page.click("#segment-form button[type=submit]")
    page.wait_for_selector("#segment-result .chip.oov")
    # Offsets count code points: a character outside the BMP keeps the gaps in their place.
    page.uncheck("#segment-ids")
    page.check("#segment-drop-punctuation")
    page.fill("#segment-text", "𠀀我，爱学习")
    page.click("#segment-form button[type=submit]")
    page.wait_for_selector("#segment-result .chips .gap")
    assert page.locator("#segment-result .chips .gap").all_inner_texts() == ["，"]
    assert "curl -s" in page.text_content("#segment-result .request pre")
    assert "/tokenize" in page.text_content("#segment-result .request pre")


def test_the_rnn_preset_draws_3_by_5_states_for_every_layer(tab):
    page = tab.page
    page.click("#rnn-preset")
    expected = httpx.post(
        tab.base + "/rnn/forward",
        json={
            "rnn": {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0},
            "input": [
                [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
                [[0.9, 1.0, 1.1, 1.2], [1.3, 1.4, 1.5, 1.6]],
                [[1.7, 1.8, 1.9, 2.0], [2.1, 2.2, 2.3, 2.4]],
            ],
            "return_states": True,
        },
    ).json()["states"]["values"]
    for layer in (0, 1):
        for text in (0, 1):
            traces = tab.plot_data(f"[data-testid=rnn-layer-{layer}-text-{text}]")
            z = traces[0]["z"]
            assert len(z) == 3
            assert all(len(row) == 5 for row in z)
            assert z == [step[text] for step in expected[layer]]
    # Drawn, not only computed: plotly rendered a heatmap layer.
    assert page.locator("[data-testid=rnn-layer-0-text-0] .hm").count() >= 1
    assert "output [3, 2, 5]" in page.inner_text("#rnn-result .shapes")
    assert "hn [2, 2, 5]" in page.inner_text("#rnn-result .shapes")
    assert "✓" in page.inner_text("[data-testid=rnn-fact-0]")
    assert page.locator("#rnn-result details.weights .plot").count() == 8  # 4 per layer


def test_two_texts_side_by_side_show_their_padding(tab):
    page = tab.page
    page.check("#rnn-batch-first")
    page.fill("#rnn-text-1", "我爱学习自然语言处理")
    page.fill("#rnn-text-2", "我爱")
    page.click("#rnn-form button[type=submit]")
    long_text = tab.plot_data("[data-testid=rnn-layer-1-text-0]")[0]
    short_text = tab.plot_data("[data-testid=rnn-layer-1-text-1]")[0]
    assert len(long_text["z"]) == len(short_text["z"]) == 5
    labels = [html.unescape(label.split("·")[1]) for label in short_text["y"]]
    assert labels == ["我", "爱", "<pad>", "<pad>", "<pad>"]
    assert all(value == 0 for row in short_text["z"][2:] for value in row)
    assert "batch_first true" in page.inner_text("#rnn-result .shapes")
    assert "output[1] == hn[-1]" in page.inner_text("[data-testid=rnn-fact-1]")


def test_embeddings_heatmap_and_the_neighbours_of_a_clicked_word(tab):
    page = tab.page
    page.click("#embed-form button[type=submit]")
    heatmap = tab.plot_data("#embed-plot")[0]
    assert len(heatmap["z"]) == 5
    assert len(heatmap["z"][0]) == 4
    page.locator("#vocab-list button", has_text="学习").first.click()
    bars = tab.plot_data("#neighbours-plot")[0]
    expected = httpx.get(
        tab.base + "/models/lesson-rnn/neighbours", params={"token": "学习", "k": 10}
    ).json()
    assert [html.unescape(y) for y in bars["y"]] == [n["token"] for n in expected["neighbours"]]
    assert page.inner_text("#vocab-size").startswith("559 tokens")


def test_windows_are_drawn_as_aligned_rows_coloured_by_batch(tab):
    page = tab.page
    page.click("#windows-form button[type=submit]")
    page.wait_for_selector("#windows-result .windows .x")
    answer = httpx.post(
        tab.base + "/dataset/preview",
        json={
            "model": "lesson-rnn",
            "texts": ["我爱学习自然语言处理，我爱机器学习"],
            "seq_len": 3,
            "stride": 1,
            "batch_size": 2,
            "shuffle": False,
            "seed": 0,
        },
    ).json()
    assert page.locator("#windows-result .windows .x").count() == 3 * len(answer["windows"])
    assert page.locator("#windows-result .windows .y").count() == 3 * len(answer["windows"])
    # Window 1's y starts where its x does, one position later: aligned under the sequence.
    x_columns = page.eval_on_selector_all(
        "#windows-result .windows .x", "cells => cells.map(c => c.style.gridColumnStart)"
    )
    y_columns = page.eval_on_selector_all(
        "#windows-result .windows .y", "cells => cells.map(c => c.style.gridColumnStart)"
    )
    assert [int(c) + 1 for c in x_columns[:3]] == [int(c) for c in y_columns[:3]]
    assert str(answer["num_windows"]) in page.inner_text("#windows-result p.muted")


def test_training_draws_its_curve_live_then_the_model_predicts(tab):
    page = tab.page
    page.wait_for_function("document.getElementById('train-text').value.length > 1000")
    page.fill("#train-model", "page-lm")
    page.fill("#train-epochs", "60")
    page.fill("#train-max-seconds", "30")
    page.click("#train-form button[type=submit]")
    # Points drawn while the page itself still says the job is running: they came from the
    # live stream, not from the history sent once it had finished.
    page.wait_for_function(
        "document.getElementById('train-status').textContent.includes(' · running · ')"
        " && document.getElementById('train-loss-plot').data?.[0]?.x.length > 1"
    )
    job_id = page.inner_text("#train-status").split(" ")[0]
    page.wait_for_function(
        "document.getElementById('train-status').textContent.includes('succeeded')",
        timeout=180_000,
    )
    finished = httpx.get(f"{tab.base}/train/{job_id}").json()
    loss = tab.plot_data("#train-loss-plot")
    assert loss[0]["y"] == [s["loss"] for s in finished["metrics"]["history"]["steps"]]
    perplexity = tab.plot_data("#train-perplexity-plot")
    assert perplexity[1]["name"] == "unigram baseline"
    assert perplexity[1]["y"][0] == pytest.approx(finished["metrics"]["unigram_perplexity"])
    # The published version is picked for the other sections, and listed with the models.
    assert page.input_value("#model") == "page-lm"
    page.wait_for_selector("#models-table td code:text-is('page-lm')")
    page.click("#predict-form button[type=submit]")
    bars = tab.plot_data("#predict-result .plot")[0]
    assert len(bars["y"]) == 10
    page.click("#generate-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#generate-result p.muted')?.textContent.includes('finish_reason')"
    )
    page.click("#score-form button[type=submit]")
    page.wait_for_selector("[data-testid=surprisal] .token")
    assert "perplexity" in page.inner_text("#score-result")


def test_a_problem_detail_is_shown_in_the_page(tab):
    page = tab.page
    page.fill("#model", "no-such-model")
    page.click("#predict-form button[type=submit]")
    problem = page.wait_for_selector("#predict-result .problem")
    assert "404" in problem.inner_text()
    assert "'no-such-model' does not exist" in problem.inner_text()
    page.fill("#model", "lesson-rnn")
    page.fill("#rnn-text-1", "")
    page.fill("#rnn-text-2", "")
    page.click("#rnn-form button[type=submit]")
    assert "422" in page.wait_for_selector("#rnn-result .problem").inner_text()


def test_phone_width_has_no_sideways_scrolling(browser, service):
    phone = Page(browser, service.base, width=390, height=844).open()
    try:
        phone.page.click("#rnn-preset")
        phone.plot_data("[data-testid=rnn-layer-1-text-1]")
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
    finally:
        phone.close()


def test_with_an_api_key_the_page_uses_the_key_field(browser, tmp_path):
    service = start(tmp_path, {"SEQLAB_API_KEY": KEY, "SEQLAB_PROTECT_READS": "true"})
    tab = Page(browser, service.base).open()
    try:
        page = tab.page
        # Without the key: the problem's detail, in the page.
        page.click("#segment-form button[type=submit]")
        assert "401" in page.wait_for_selector("#segment-result .problem").inner_text()
        assert page.inner_text("#vocab-size") == ""  # reads are protected: nothing loaded
        assert "API key" in page.inner_text("#service-status")
        page.fill("#api-key", KEY)
        page.dispatch_event("#api-key", "change")
        # The key reloads what the page could not read without it.
        page.wait_for_function("document.getElementById('vocab-size').textContent !== ''")
        page.click("#segment-form button[type=submit]")
        page.wait_for_selector("#segment-result .chip")
        assert page.locator("#segment-result .problem").is_hidden()
        # A job started and followed (its event stream needs the key too), then cancelled.
        page.fill("#train-epochs", "500")
        page.wait_for_function("document.getElementById('train-text').value.length > 1000")
        page.click("#train-form button[type=submit]")
        page.wait_for_function(
            "document.getElementById('train-status').textContent.includes('running')"
        )
        page.click("#train-cancel")
        page.wait_for_function(
            "document.getElementById('train-status').textContent.includes('cancelled')"
        )
        # The key lives in this tab's sessionStorage only, and is never printed in a request.
        assert page.evaluate("sessionStorage.getItem('seqlab-api-key')") == KEY
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate("document.cookie") == ""
        assert KEY not in page.text_content("#segment-result .request pre")
        assert "$SEQLAB_API_KEY" in page.text_content("#segment-result .request pre")
    finally:
        tab.close()
        service.stop()
