"""The web atlas in a real browser: Debian's chromium, driven by Playwright, against the real server
(`deepatlas serve`) and the static site (`deepatlas site build`). See conftest.py for the fixtures."""

from __future__ import annotations

import json
import re

import pytest

from deepatlas.catalog import load_catalog
from deepatlas.store import Store

pytestmark = pytest.mark.browser


def open_graph(page, url: str) -> int:
    page.goto(url + "#/graph")
    page.wait_for_selector("#cy[data-node-count]")
    return int(page.get_attribute("#cy", "data-node-count"))


def tap(page, card_id: str) -> None:
    page.evaluate("id => { window.atlas.cy.getElementById(id).emit('tap'); }", card_id)


def test_genealogy_draws_every_card_and_traces_lineage(live_server, page):
    cat = load_catalog()
    assert open_graph(page, live_server.url) == len(cat)
    assert page.evaluate("window.atlas.cy.edges().length") > len(cat) / 2

    # Selecting a node lights its lineage and fades the rest; selecting it again opens its card.
    tap(page, "resnet")
    page.wait_for_selector(".detail-panel:not([hidden])")
    lit = page.evaluate("window.atlas.cy.nodes().not('.faded').map(n => n.id())")
    assert {"resnet", "vgg", "alexnet", "densenet"} <= set(lit)
    assert len(lit) < len(cat)
    tap(page, "resnet")
    page.wait_for_function("location.hash === '#/card/resnet'")

    # Filters: one stage, then one kind.
    open_graph(page, live_server.url)
    page.select_option("#stage-filter", "2")
    stage2 = sum(c.stage == 2 for c in cat)
    page.wait_for_function(f"document.querySelector('#cy')?.dataset.visibleCount === '{stage2}'")
    page.select_option("#stage-filter", "")
    page.uncheck(".filters input[value='architecture']")
    others = sum(c.kind != "architecture" for c in cat)
    page.wait_for_function(f"document.querySelector('#cy')?.dataset.visibleCount === '{others}'")

    # Search marks the matches.
    page.fill("#graph-search", "transformer")
    assert page.evaluate("window.atlas.cy.getElementById('transformer').hasClass('match')")

    # A card's "show in genealogy" link selects it there, clearing filters that hide it.
    page.goto(live_server.url + "#/card/transformer")
    page.click("a[href='#/graph/transformer']")
    page.wait_for_function("document.querySelector('#cy')?.dataset.visibleCount === String(window.atlas.cy.nodes().length)")
    assert "Transformer" in page.inner_text(".detail-panel")


def test_card_shows_formulas_verdicts_lineage_and_source(live_server, page):
    page.goto(live_server.url + "#/card/resnet")
    page.wait_for_selector(".card-page .katex")
    assert page.locator(".equation .katex").count() >= 2
    assert page.locator(".verdict").count() >= 3
    assert page.locator(".claim .verdict.verdict-not-checkable").count() == 1
    assert page.locator(".claim .evidence").count() >= 3
    assert page.locator(".section-lineage a[href='#/card/vgg']").count() == 1
    assert page.locator(".paper a[href='https://arxiv.org/abs/1512.03385']").count() == 1
    assert page.locator(".lab-box[data-lab='resnet/degradation'] .run-button").count() == 2
    page.click(".source summary")
    page.wait_for_selector(".source code.hljs .hljs-keyword")

    page.goto(live_server.url + "#/card/no-such-card")
    page.wait_for_selector(".notice.error")
    assert "unknown card" in page.inner_text(".notice.error")


def test_language_switch_applies_everywhere_and_persists(live_server, page):
    page.goto(live_server.url + "#/card/resnet")
    page.wait_for_selector(".card-head .title")
    assert page.inner_text(".card-head .title") == "ResNet"
    page.click("#lang-toggle")
    page.wait_for_function("document.querySelector('.card-head .title').textContent === '残差网络'")
    assert "更深的普通网络" in page.inner_text(".claims")
    page.reload()
    page.wait_for_selector(".card-head .title")
    assert page.inner_text(".card-head .title") == "残差网络"
    assert page.inner_text(".nav a[data-page='graph']") == "谱系"
    open_graph(page, live_server.url)
    assert page.evaluate("window.atlas.cy.getElementById('resnet').data('label')") == "残差网络"
    page.click("#lang-toggle")
    page.wait_for_function("window.atlas.cy.getElementById('resnet').data('label') === 'ResNet'")


def test_roadmap_marks_progress_shared_with_the_cli(live_server, page):
    page.goto(live_server.url + "#/roadmap")
    row = page.locator(".road-card[data-card='perceptron']")
    row.locator("button[data-state='done']").click()
    page.wait_for_selector(".road-card[data-card='perceptron'] button[data-state='done'][aria-pressed='true']")
    page.wait_for_function("document.querySelector('#overall-percent').textContent !== '0%'")

    progress = json.loads(live_server.cli("progress", "--format", "json"))
    assert progress["cards"]["perceptron"] == "done"
    assert progress["overall_percent"] > 0

    live_server.cli("mark", "sigmoid", "learning")  # and the other way round
    page.reload()
    page.wait_for_selector(".road-card[data-card='sigmoid'] button[data-state='learning'][aria-pressed='true']")
    markdown = page.request.get(page.locator("#export-md").evaluate("a => a.href")).text()
    assert re.search(r"\[x\].*Perceptron", markdown)


def job_in_view(page, other: str = "") -> str:
    page.wait_for_function("other => /^#\\/labs\\/.+/.test(location.hash) && location.hash !== '#/labs/' + other", arg=other)
    return page.evaluate("decodeURIComponent(location.hash.split('/')[2])")


def test_lab_queue_cancel_and_a_live_quick_run_that_lands_on_its_card(live_server, page):
    # A long lab first: the quick one waits in the queue until the long one is cancelled.
    page.goto(live_server.url + "#/labs")
    page.click("tr[data-lab='lstm/adding-problem'] button[data-scale='default']")
    slow = job_in_view(page)
    page.click("tr[data-lab='perceptron/xor'] button[data-scale='quick']")
    job_id = job_in_view(page, slow)
    page.wait_for_selector(f".queue-table tr[data-job='{job_id}'][data-state='queued']")
    page.click(f".queue-table tr[data-job='{slow}'] .cancel")
    page.wait_for_selector(f".queue-table tr[data-job='{slow}'][data-state='cancelled']", timeout=30_000)

    page.wait_for_function("Number(document.querySelector('#job-chart')?.dataset.points) > 0", timeout=60_000)
    page.wait_for_selector(".job[data-state='done']", timeout=60_000)
    page.wait_for_selector(".job-result .verdict")

    runs = Store(live_server.home / "deepatlas.sqlite").runs("perceptron/xor")
    assert [(r.scale, r.status) for r in runs] == [("quick", "ok")]
    page.click("#job-card-link")
    page.wait_for_selector(f".lab-box[data-lab='perceptron/xor'] .your-runs li.run[data-run='{runs[0].id}']")


def test_static_site_shows_the_map_without_live_parts(static_site, page):
    cat = load_catalog()
    assert open_graph(page, static_site.url) == len(cat)
    assert page.is_visible("#mode")
    page.goto(static_site.url + "#/card/resnet")
    page.wait_for_selector(".card-page .katex")
    assert page.locator(".verdict").count() >= 3
    assert page.locator(".run-button, .your-runs").count() == 0
    page.goto(static_site.url + "#/roadmap")
    page.wait_for_selector(".road-card")
    assert page.locator(".state-btn").count() == 0
    page.goto(static_site.url + "#/labs")
    page.wait_for_selector(".labs-table")
    assert page.locator("button.start, .queue, .job").count() == 0
    page.goto(static_site.url + "#/mindmap")
    page.click("#expand-all")
    assert page.locator(".tree li.leaf a").count() == len(cat)


def test_narrow_screen(live_server, phone):
    cat = load_catalog()
    assert open_graph(phone, live_server.url) == len(cat)
    box = phone.locator("#filters").bounding_box()
    assert not phone.is_visible("#filters") or box["x"] + box["width"] <= 0
    phone.click(".filters-toggle")
    phone.wait_for_function("document.querySelector('#filters').getBoundingClientRect().x >= 0")
    assert phone.is_visible("#stage-filter")
    for route, shown in (("#/card/transformer", ".card-page .katex"), ("#/roadmap", ".road-card"),
                         ("#/mindmap", ".tree"), ("#/labs", ".labs-table")):
        phone.goto(live_server.url + route)
        phone.wait_for_selector(shown)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, route
