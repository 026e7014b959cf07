"""The self-contained HTML report in a real browser (headless Chromium, tests/browser.py): it
fits the window at 1280 and 800 px, loads every image, shows figure labels at a readable size,
fetches nothing beyond the file, sorts and filters as the template promises, reads with
scripts off and prints without overflow. Screenshots of each width are kept as artifacts."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.browser import NAME_JS, SHOWN_JS, Chromium, png_size, require_browser
from tests.helpers import REPO, TINY_CONFIG

pytestmark = pytest.mark.e2e

WIDTHS = (1280, 800)
HEIGHT = 900
MIN_LABEL_PX = 10  # the smallest axis or tick label as shown, in CSS px
# A remote reference in an attribute or in CSS: the report must carry all it shows.
REMOTE_REF = re.compile(
    r"""(?:\b(?:src|href|srcset)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])\s*https?://""",
    re.IGNORECASE,
)
LEADING_NUMBER = re.compile(r"[+\-−]?(?:\d+\.?\d*|\.\d+)(?:e[+\-−]?\d+)?", re.IGNORECASE)

IMAGES_JS = f"""{NAME_JS}
return [document.images.length, [...document.images]
  .filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => name(i) + ' alt=' + JSON.stringify(i.alt))];"""
LABELS_JS = f"""{SHOWN_JS}{NAME_JS}
return [...document.querySelectorAll('figure img')].filter(shown)
  .map(i => [i.alt || name(i), i.getAttribute('data-label-px'), i.clientWidth, i.naturalWidth]);"""
# Each sortable table, the body column under each of its header cells (rowspan and colspan
# laid out as the browser does) and the cell texts of its first body.
SORTABLE_JS = f"""{NAME_JS}
return [...document.querySelectorAll('table.sortable')].map(table => {{
  const grid = [], heads = [];
  [...(table.tHead ? table.tHead.rows : [])].forEach((row, r) => {{
    let c = 0;
    for (const th of row.cells) {{
      while ((grid[r] = grid[r] || [])[c]) c++;
      for (let i = 0; i < th.rowSpan; i++)
        for (let j = 0; j < th.colSpan; j++) (grid[r + i] = grid[r + i] || [])[c + j] = th;
      if (th.colSpan === 1) heads.push([th, c]);
      c += th.colSpan;
    }}
  }});
  const where = (table.closest('section[id]') || {{id: '?'}}).id;
  return {{table, heads, name: name(table) + ' in section#' + where}};
}});"""
ROWS_JS = """const body = arguments[0].tBodies[0];
return body ? [...body.rows].map(tr => [...tr.cells].map(c => c.textContent.trim())) : [];"""
FILTERS_SHOWN_JS = f"""{SHOWN_JS}
const filters = document.getElementById('filters');
return filters ? shown(filters) : null;"""
FILTERED_JS = f"""{SHOWN_JS}{NAME_JS}
const attr = arguments[0];
return [...document.querySelectorAll('[' + attr + ']')].filter(el => !el.closest('#filters'))
  .map(el => [name(el), el.getAttribute(attr), shown(el)]);"""
NO_SCRIPT_JS = f"""{SHOWN_JS}{NAME_JS}
return {{
  cards: [...document.querySelectorAll('.verdict-card')]
    .map(c => [name(c) + '[data-scenario=' + c.dataset.scenario + ']', shown(c)]),
  hiddenRows: [...document.querySelectorAll('table tr')].filter(tr => !shown(tr))
    .map(tr => name(tr) + ': ' + tr.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60)),
}};"""


@pytest.fixture(scope="session", autouse=True)
def browser_installed():
    """Skip (or fail, under DUALBENCH_REQUIRE_BROWSER) before the pipeline fixture runs."""
    require_browser()


@pytest.fixture(scope="module")
def report(pipeline) -> Path:
    return pipeline / "results/report/report.html"


@pytest.fixture(scope="module")
def url(report) -> str:
    return report.as_uri()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    browser = Chromium(tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def chromium_no_js(tmp_path_factory):
    browser = Chromium(tmp_path_factory.mktemp("chromium-no-js"), javascript=False)
    # Prove the setting holds: DevTools calls run regardless, so a page's own script must not.
    browser.open("data:text/html," + quote("<script>document.title = 'ran'</script>"), 800)
    assert browser.driver.title != "ran", "scripts still run in the browser started without"
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """test-artifacts/browser/ at the repository root, or browser/ under $DUALBENCH_ARTIFACTS."""
    folder = Path(os.environ.get("DUALBENCH_ARTIFACTS") or REPO / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def leading_number(text: str) -> float | None:
    match = LEADING_NUMBER.match(text.strip().replace(",", ""))
    return float(match.group().replace("−", "-")) if match else None


@pytest.mark.parametrize("width", WIDTHS)
def test_no_console_errors(chromium, url, width):
    chromium.open(url, width, HEIGHT)
    errors = chromium.logs().console_errors
    assert not errors, f"console errors at {width}px:\n" + "\n".join(errors)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_overflow(chromium, url, width):
    chromium.open(url, width, HEIGHT)
    found = chromium.overflow()
    assert found.scroll_width <= found.inner_width and not found.offenders, (
        f"horizontal overflow at {width}px: {found.describe()}"
    )


def test_every_image_loads(chromium, url):
    chromium.open(url, WIDTHS[0], HEIGHT)
    count, broken = chromium.js(IMAGES_JS)
    assert count, "the report has no img"
    assert not broken, f"{len(broken)} of {count} images did not load: {broken}"


@pytest.mark.parametrize("width", WIDTHS)
def test_figure_labels_are_readable(chromium, url, width):
    chromium.open(url, width, HEIGHT)
    images = chromium.js(LABELS_JS)
    assert images, f"no figure img is shown at {width}px"
    missing = [alt for alt, label, _, _ in images if label is None]
    assert not missing, f"figure images without data-label-px ({len(missing)}): {missing}"
    small = [
        f"{alt}: {label}px at {natural}px natural width, shown {shown}px wide -> "
        f"{float(label) * shown / natural:.1f}px"
        for alt, label, shown, natural in images
        if float(label) * shown / natural < MIN_LABEL_PX
    ]
    assert not small, f"labels under {MIN_LABEL_PX}px at {width}px:\n" + "\n".join(small)


def test_no_request_leaves_the_file(chromium, url):
    remote = []
    for width in WIDTHS:
        chromium.open(url, width, HEIGHT)
        requests = chromium.logs().requests
        assert requests, "no Network.requestWillBeSent in the performance log"
        remote += [
            f"{width}px: {u[:120]}" for u in requests if not u.startswith(("file:", "data:"))
        ]
    assert not remote, "requests beyond the file:\n" + "\n".join(remote)


def test_html_references_nothing_remote(report):
    html = report.read_text(encoding="utf-8")
    found = [html[max(m.start() - 30, 0) : m.end() + 60] for m in REMOTE_REF.finditer(html)]
    assert not found, "remote references in the HTML:\n" + "\n".join(found)


def test_sortable_table_sorts_numbers_by_value(chromium, url):
    chromium.open(url, WIDTHS[0], HEIGHT)
    tables = chromium.js(SORTABLE_JS)
    assert tables, "no table.sortable in the report"
    # A column of numbers on two rows or more, preferably one out of order: the clicks must
    # then move rows.
    candidates = []
    for t in tables:
        rows = chromium.js(ROWS_JS, t["table"])
        if len(rows) < 2 or len({len(r) for r in rows}) != 1:
            continue
        for th, col in t["heads"]:
            numbers = [leading_number(r[col]) for r in rows] if col < len(rows[0]) else [None]
            if None not in numbers and len(set(numbers)) > 1:
                candidates.append((numbers == sorted(numbers), t, th, col, rows))
    names = [t["name"] for t in tables]
    assert candidates, f"no sortable table with 2 rows or more and a numeric column in {names}"
    _, table, th, col, before = min(candidates, key=lambda c: c[0])
    where = f"{table['name']}, column {col} ({th.text!r})"
    for order in ("ascending", "descending"):
        th.click()
        rows = chromium.js(ROWS_JS, table["table"])
        values = [r[col] for r in rows]
        numbers = [leading_number(v) for v in values]
        assert th.get_attribute("aria-sort") == order, (
            f"{where}: aria-sort is {th.get_attribute('aria-sort')!r} after a click for {order}"
        )
        assert numbers == sorted(numbers, reverse=order == "descending"), (
            f"{where}: not {order} by value: {values}"
        )
        assert sorted(rows) == sorted(before), f"{where}: sorting changed the rows themselves"
    errors = chromium.logs().console_errors
    assert not errors, "console errors while sorting:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("select_id", "attr"),
    [("filter-scenario", "data-scenario"), ("filter-precision", "data-precision")],
)
def test_filter_shows_only_the_chosen_value(chromium, url, select_id, attr):
    chromium.open(url, WIDTHS[0], HEIGHT)
    shown = chromium.js(FILTERS_SHOWN_JS)
    assert shown is not None, "no #filters in the report"
    assert shown, "#filters is still hidden after the page's script ran"
    assert chromium.find(f"#filters select#{select_id}"), f"no select#{select_id} in #filters"
    values = chromium.choose(select_id, "")
    assert values[0] == "" and len(values) > 1, f"select#{select_id} options: {values}"
    wrong = []
    for value in [*values[1:], ""]:
        chromium.choose(select_id, value)
        elements = chromium.js(FILTERED_JS, attr)
        if value and not any(v == value for _, v, _ in elements):
            wrong.append(f"{value!r}: no element has {attr}={value!r}")
        wrong += [
            f"{value or 'all'!r}: {name}[{attr}={v}] is {'shown' if seen else 'hidden'}"
            for name, v, seen in elements
            if seen != (v == value or not value)
        ]
    assert not wrong, f"select#{select_id} filters wrongly:\n" + "\n".join(wrong)
    errors = chromium.logs().console_errors
    assert not errors, "console errors while filtering:\n" + "\n".join(errors)


def test_one_verdict_card_per_scenario(chromium, url):
    chromium.open(url, WIDTHS[0], HEIGHT)
    assert chromium.find("section#verdicts"), "no section#verdicts in the report"
    cards = chromium.js(
        "return [...document.querySelectorAll('section#verdicts .verdict-card')]"
        ".map(c => c.dataset.scenario ?? null);"
    )
    expected = sorted(TINY_CONFIG["scenarios"])
    assert sorted(cards, key=str) == expected, f"verdict cards {cards}, scenarios {expected}"


def test_readable_without_javascript(chromium_no_js, url):
    chromium_no_js.open(url, 800, HEIGHT)
    filters = chromium_no_js.js(FILTERS_SHOWN_JS)
    assert filters is not None, "no #filters in the report"
    assert not filters, "#filters is displayed without scripts (its controls do nothing then)"
    state = chromium_no_js.js(NO_SCRIPT_JS)
    assert state["cards"], "no .verdict-card without scripts"
    hidden = [card for card, seen in state["cards"] if not seen]
    assert not hidden, f"verdict cards hidden without scripts: {hidden}"
    assert not state["hiddenRows"], "table rows hidden without scripts:\n" + "\n".join(
        state["hiddenRows"]
    )
    found = chromium_no_js.overflow()
    assert found.scroll_width <= found.inner_width and not found.offenders, (
        f"horizontal overflow at 800px without scripts: {found.describe()}"
    )


def test_print_layout_fits(chromium, url):
    chromium.open(url, 800, HEIGHT)
    chromium.cdp("Emulation.setEmulatedMedia", media="print")
    found = chromium.overflow()
    assert found.scroll_width <= found.inner_width, (
        f"horizontal overflow in print media at 800px: {found.describe()}"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_screenshots(chromium, url, artifacts, width):
    chromium.open(url, width, HEIGHT)
    first = chromium.screenshot(artifacts / f"report-{width}-first-screen.png", full=False)
    full = chromium.screenshot(artifacts / f"report-{width}-full.png", full=True)
    height = chromium.js("return document.documentElement.scrollHeight")
    print(f"screenshots at {width}px: {first} {full}")
    assert png_size(first) == (width, HEIGHT), f"{first}: {png_size(first)}"
    # A page shorter than the window loses a horizontal scrollbar's height from the capture.
    assert png_size(full)[0] >= width and png_size(full)[1] >= height - 16, (
        f"{full}: {png_size(full)}, document {height}px high"
    )
