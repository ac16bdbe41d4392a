"""The book: `jupyter-book build book` with warnings as errors, no external URL in the HTML, and every page checked in
headless Chromium (Debian's /usr/bin/chromium, driven through the DevTools protocol over a pipe: no extra package):
it loads, its figures are non-empty, its results tables have the expected rows, and no request leaves localhost.
Screenshots of the main pages go to book/_build/screenshots/.

Two builds: the real book from results/ (whatever has run so far, possibly nothing), and a copy of the book built
from synthetic records in a temporary folder, which checks that tables, figures, the executed notebook and the
verdicts fill in from the records.
"""

import base64
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from skipvae import report

sys.path.insert(0, str(Path(__file__).parent))
from test_remedies import write_cell  # noqa: E402
from test_report import write_record, write_theory  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
CHROMIUM = "/usr/bin/chromium"
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
WIDTHS = (1400, 1920)  # viewport widths at which no table or caption may stick out of the text column
# Every verdict the ledger gives (skipvae.report.VERDICTS, and these whatever it holds): each needs a CSS rule.
VERDICT_NAMES = ("reproduced", "partly reproduced", "not reproduced", "inconclusive", "not tested at this scale",
                 "not tested yet", "smaller than the paper's effect", "not claimed by the paper's table")
# Sphinx's number before the paper's own name of a table or figure ("Table 23 Table 1: ...").
DOUBLE_NUMBER = re.compile(r"(Table|Fig\.) \d+\s+(Table|Figure) \d+")
MAIN_PAGES = ["intro", "methods", "experiments/mnist", "experiments/omniglot", "experiments/yahoo",
              "experiments/latent_dim", "experiments/depth", "experiments/collapse", "experiments/remedies",
              "experiments/theory", "claims",
              "reproducibility", "references"]
ALL_PAGES = MAIN_PAGES + [f"experiments/{e}_notebook" for e in report.EXPERIMENTS]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1280,900"]


def build(book: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.time()
    proc = subprocess.run([str(JUPYTER_BOOK), "build", str(book), "-W", "-n", "--keep-going"], cwd=book.parent,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    return proc, time.time() - t0


def assert_clean_build(proc: subprocess.CompletedProcess) -> None:
    """Built with return code 0 and no warning (build()'s 600 s subprocess timeout guards against a hang)."""
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0 and not warnings, "\n".join(warnings) or log[-3000:]


# ----------------------------------------------------------------------------- Chromium over DevTools

class Chromium:
    """Headless Chromium driven with the DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out;
    messages are JSON separated by NUL bytes)."""

    def __init__(self, profile_dir: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        cmd = " ".join([CHROMIUM, *[f"'{f}'" for f in CHROMIUM_FLAGS], f"--user-data-dir={profile_dir}",
                        "--remote-debugging-pipe", "about:blank"])
        self.proc = subprocess.Popen(["bash", "-c", f"exec {cmd} 3<&{to_chrome_r} 4>&{from_chrome_w}"],
                                     pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._id, self._replies, self.events = 0, {}, queue.Queue()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)

    def call(self, method: str, session: bool = False, timeout: float = 30, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: self._id in self._replies, timeout):
                raise TimeoutError(f"Chromium did not answer {method} in {timeout} s")
            reply = self._replies.pop(self._id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def drain(self) -> list[dict]:
        out = []
        while not self.events.empty():
            out.append(self.events.get())
        return out

    def open(self, url: str, timeout: float = 30) -> list[dict]:
        """Load `url`, wait for the load event and for MathJax; returns the DevTools events of the load."""
        self.drain()
        self.call("Page.navigate", session=True, url=url)
        events, deadline = [], time.time() + timeout
        while time.time() < deadline:
            try:
                event = self.events.get(timeout=1)
            except queue.Empty:
                continue
            events.append(event)
            if event["method"] == "Page.loadEventFired":
                break
        else:
            raise TimeoutError(f"{url} did not finish loading in {timeout} s")
        self.eval("window.MathJax && MathJax.startup && MathJax.startup.promise ? "
                  "MathJax.startup.promise.then(() => true) : true")
        time.sleep(0.1)
        return events + self.drain()

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1280, max_height: int = 6000) -> None:
        """A full-page PNG: the viewport is stretched to the page's height for the shot, then restored."""
        height = min(int(self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]["height"]), max_height)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        try:
            data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        finally:
            self.call("Emulation.clearDeviceMetricsOverride", session=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve(folder: Path):
    """A threaded http.server on 127.0.0.1 (a free port) serving `folder`; returns (server, base URL)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install it with `make browser-deps` (Debian's chromium package)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    browser = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


# --------------------------------------------------------------------------------- page checks in JS

PAGE_FACTS = """(() => {
  const imgs = [...document.querySelectorAll('article img, .bd-article img')];
  const tables = {};
  for (const t of document.querySelectorAll('table.skipvae-table')) {
    tables[t.id] = {head: [...t.querySelectorAll('thead th')].map(c => c.innerText.trim()),
                    rows: [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.innerText.trim()))};
  }
  return {
    title: document.title,
    h1: (document.querySelector('h1') || {innerText: ''}).innerText,
    images: imgs.map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})),
    figures: [...document.querySelectorAll('figure.skipvae-figure')].map(f => ({
      caption: (f.querySelector('figcaption') || {innerText: ''}).innerText,
      width: (f.querySelector('img') || {naturalWidth: 0}).naturalWidth})),
    tables: tables,
    notRun: document.querySelectorAll('.skipvae-not-run').length,
    math: document.querySelectorAll('mjx-container').length,
    verdicts: [...document.querySelectorAll('.skipvae-verdict')].map(v => v.innerText.trim()),
  };
})()"""


# Verdict colours and captions at the default width, then the layout at each of WIDTHS (the viewport is resized in
# place, checked by LAYOUT_FACTS, and restored): every .skipvae-verdict carries a verdict-* class that a style sheet
# has a rule for and that changes its colour or background; no caption has a second number.
STYLE_FACTS = r"""(() => {
  const selectors = [];
  const collect = rules => { for (const r of rules) { if (r.selectorText) selectors.push(r.selectorText);
                                                      if (r.cssRules) collect(r.cssRules); } };
  for (const sheet of document.styleSheets) { try { collect(sheet.cssRules); } catch (e) {} }
  const unstyled = [];
  for (const v of document.querySelectorAll('.skipvae-verdict')) {
    const classes = [...v.classList].filter(c => c.startsWith('verdict-'));
    const ruled = classes.filter(c => selectors.some(s => new RegExp('\\.' + c + '(?![\\w-])').test(s)));
    const plain = document.createElement('span');
    plain.className = 'skipvae-verdict';
    v.parentNode.appendChild(plain);
    const a = getComputedStyle(v), b = getComputedStyle(plain);
    const differs = a.color !== b.color || a.backgroundColor !== b.backgroundColor;
    plain.remove();
    if (!ruled.length || !differs) unstyled.push({text: v.innerText.trim(), classes: classes, differs: differs});
  }
  const captions = [...document.querySelectorAll('caption, figcaption')]
    .map(c => c.innerText.replace(/\s+/g, ' ').trim());
  return {unstyled: unstyled, captions: captions};
})()"""

LAYOUT_FACTS = """(() => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main');
  const box = column.getBoundingClientRect(), style = getComputedStyle(column);
  const right = box.right - parseFloat(style.paddingRight) + 1;  // the column's content box, 1 px of rounding
  const out = [];
  for (const t of column.querySelectorAll('table')) {
    for (const [what, el] of [['table', t], ['caption', t.querySelector(':scope > caption')]]) {
      if (el && el.getClientRects().length && el.getBoundingClientRect().right > right) {
        out.push({what: what, id: t.id, caption: (t.caption || {innerText: ''}).innerText.slice(0, 60),
                  right: Math.round(el.getBoundingClientRect().right), column: Math.round(right)});
      }
    }
  }
  return out;
})()"""


def check_style_and_layout(browser: Chromium, page: str) -> None:
    style = browser.eval(STYLE_FACTS)
    problems = []
    if style["unstyled"]:
        problems.append(f"verdicts without a CSS rule of their own: {style['unstyled']}")
    doubled = [c for c in style["captions"] if DOUBLE_NUMBER.match(c)]
    if doubled:
        problems.append(f"captions numbered twice: {doubled}")
    try:
        for width in WIDTHS:
            browser.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=900,
                         deviceScaleFactor=1, mobile=False)
            overflow = browser.eval(LAYOUT_FACTS)
            if overflow:
                problems.append(f"at {width} px, tables or captions past the text column: {overflow}")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)
    assert not problems, f"{page}: " + "; ".join(problems)


def requests_of(events: list[dict]) -> tuple[list[str], dict, list[str]]:
    """(URLs requested, status per URL, failures) from the DevTools Network events of a page load."""
    urls, status, failed = [], {}, []
    ids = {}
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Network.requestWillBeSent":
            urls.append(p["request"]["url"])
            ids[p["requestId"]] = p["request"]["url"]
        elif e["method"] == "Network.responseReceived":
            status[p["response"]["url"]] = p["response"]["status"]
        elif e["method"] == "Network.loadingFailed" and not p.get("canceled"):
            failed.append(f"{ids.get(p['requestId'])}: {p.get('errorText')}")
    return urls, status, failed


def check_page(browser: Chromium, base: str, page: str) -> dict:
    url = base + page + ".html"
    events = browser.open(url)
    urls, status, failed = requests_of(events)
    external = [u for u in urls if not u.startswith((base, "data:", "blob:", "about:"))]
    assert not external, f"{page}: requests leaving localhost: {external}"
    assert not failed, f"{page}: failed requests: {failed}"
    assert status.get(url) == 200, f"{page}: HTTP {status.get(url)}"
    errors = [e["params"]["exceptionDetails"] for e in events if e["method"] == "Runtime.exceptionThrown"]
    assert not errors, f"{page}: JavaScript errors {errors}"
    bad = {u: s for u, s in status.items() if s not in (200, 304) and u != base + "favicon.ico"}  # Chrome asks
    assert not bad, f"{page}: HTTP errors {bad}"
    facts = browser.eval(PAGE_FACTS)
    assert facts["title"].strip() and facts["h1"].strip(), f"{page}: no title"
    for img in facts["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, f"{page}: empty image {img['src']}"
    for fig in facts["figures"]:
        assert fig["width"] > 0 and "Profile" in fig["caption"] and "seeds" in fig["caption"], (page, fig)
    check_style_and_layout(browser, page)
    return facts


def expected_rows(name: str, root=None) -> list[str]:
    """The model column of an experiment's results table, as skipvae.report computes it."""
    table, _ = report.experiment_table(name, root)
    return list(table["model"])


# ----------------------------------------------------------------------------------- the real book

@pytest.fixture(scope="module")
def real_book():
    proc, seconds = build(BOOK)
    assert_clean_build(proc)
    print(f"book built in {seconds:.1f} s")
    return BOOK / "_build" / "html"


class Attributes(HTMLParser):
    """Every URL a page loads by itself: src/href of anything but <a>, and URLs inside inline scripts."""

    def __init__(self):
        super().__init__()
        self.urls, self._script = [], False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        if tag != "a":
            self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "data") and v]

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script and ("http://" in data or "https://" in data):
            self.urls.append(data.strip()[:200])


def test_book_builds_with_warnings_as_errors(real_book):
    for page in ALL_PAGES:
        assert (real_book / f"{page}.html").stat().st_size > 1000, page
    assert (real_book / "_static" / "mathjax" / "tex-chtml-full.js").stat().st_size > 100_000


CAPTION_NUMBER = re.compile(r'<span class="caption-number">([^<]*)</span><span class="caption-text">([^<]*)')


def test_captions_name_the_papers_tables_once(real_book):
    """Sphinx numbers our tables and figures; one named by the paper ("Table 3: ...") keeps only that name."""
    numbered, named = [], []
    for path in real_book.rglob("*.html"):
        text = path.read_text()
        numbered += [f"{path.name}: {n}{t}" for n, t in CAPTION_NUMBER.findall(text)]
        named += re.findall(r'<caption><span class="caption-text">((?:Table|Figure) \d+[^<]*)', text)
    doubled = [c for c in numbered if DOUBLE_NUMBER.match(c.split(": ", 1)[1])]
    assert numbered and not doubled, f"captions numbered twice: {doubled}"
    assert any(c.startswith("Table 1:") for c in named), "the rebuilt Table 1 lost its name"
    tables = sorted(int(n.split()[1]) for c in numbered for n in [c.split(": ", 1)[1]] if n.startswith("Table "))
    assert tables == list(range(1, len(tables) + 1)), "our tables are not numbered 1, 2, ... without gaps"


def test_bibliography(real_book):
    """book/references.bib through sphinxcontrib-bibtex: every entry has a URL, the references page lists them all,
    and the intro and methods pages cite them."""
    import pybtex.database

    entries = pybtex.database.parse_file(BOOK / "references.bib").entries
    assert {"dieng2019", "skipvaecode", "kim2018", "burda2016"} <= set(entries) and len(entries) >= 8
    assert all(e.fields.get("url", "").startswith("https://") for e in entries.values())
    references = (real_book / "references.html").read_text()
    assert references.count('role="doc-biblioentry"') == len(entries)
    assert "https://arxiv.org/abs/1807.04863" in references and "https://github.com/yoonkim/skip-vae" in references
    for page, keys in (("intro", ("dieng2019", "skipvaecode")), ("methods", ("kim2018", "burda2016"))):
        html = (real_book / f"{page}.html").read_text()
        cited = re.findall(r'href="references.html#[^"]*" title="([^"]*)"', html)
        for key in keys:
            url = entries[key].fields["url"]
            assert any(url in title for title in cited), f"{page} does not cite {key}"


def test_verdict_classes_are_styled():
    """Every verdict, the ledger's and the ones named here, has a class (verdict_class) with a rule in the CSS."""
    sys.path.insert(0, str(BOOK / "_ext"))
    from skipvae_book import verdict_class

    assert verdict_class("smaller than the paper's effect") == "verdict-smaller-than-the-papers-effect"
    assert verdict_class("not claimed by the paper\u2019s table") == "verdict-not-claimed-by-the-papers-table"
    css = (BOOK / "_assets" / "skipvae.css").read_text()
    for verdict in {*VERDICT_NAMES, *getattr(report, "VERDICTS", ())}:
        assert re.search(r"\." + verdict_class(verdict) + r"(?![\w-])[^{]*\{", css), f"no CSS rule for {verdict!r}"


def test_the_reliability_table_has_a_row_per_case():
    """The reliability-table directive's table (book/_ext), built without a book build."""
    sys.path.insert(0, str(BOOK / "_ext"))
    from docutils import nodes
    from skipvae_book import reliability_table

    from skipvae.reliability_cases import CASES

    table = reliability_table()
    body = next(table.findall(nodes.tbody))
    assert len(body.children) == len(CASES) and "skipvae-reliability" in table["classes"]
    assert "reliability" in (BOOK / "reproducibility.md").read_text() and "{reliability-table}" in \
        (BOOK / "reproducibility.md").read_text()


def external_urls(html: Path) -> dict:
    """{page: [external URLs it would load]} over every HTML file of a build."""
    found = {}
    for path in html.rglob("*.html"):
        parser = Attributes()
        parser.feed(path.read_text())
        external = [u for u in parser.urls if u.startswith(("http:", "https:", "//")) or "://" in u]
        if external:
            found[str(path.relative_to(html))] = external
    return found


def test_no_external_url_in_the_html(real_book):
    assert external_urls(real_book) == {}
    assert "mathjax/tex-chtml-full.js" in (real_book / "methods.html").read_text()


def test_every_page_in_chromium(real_book, chromium):
    server, base = serve(real_book)
    shots = BOOK / "_build" / "screenshots"
    try:
        facts = {}
        for page in ALL_PAGES:
            facts[page] = check_page(chromium, base, page)
            if page in MAIN_PAGES:
                chromium.screenshot(shots / f"{page.replace('/', '_')}.png")
    finally:
        server.shutdown()
    for name in report.EXPERIMENTS:
        page = facts[f"experiments/{name}"]
        if name == "theory":
            continue
        table = page["tables"][f"results-{name}".replace("_", "-")]
        rows, model = table["rows"], table["head"].index("model")
        if report.run_status(name)["ran"]:
            assert len(rows) == len(expected_rows(name)), (name, rows)
        else:
            assert [r[model] for r in rows] == expected_rows(name), rows
            assert all("not run yet" in r for r in rows) and page["notRun"] >= 1, name
    assert facts["methods"]["math"] > 20, "MathJax did not typeset the equations"
    assert facts["claims"]["verdicts"] == list(report.claims_ledger()["verdict"])
    assert len(facts["claims"]["tables"]["claims-ledger"]["rows"]) == 7
    for page in MAIN_PAGES:
        assert (shots / f"{page.replace('/', '_')}.png").stat().st_size > 10_000, page


def test_offline_from_disk(real_book, chromium):
    """book/_build/html opened from disk, with the network switched off, still renders pages and equations."""
    chromium.call("Network.emulateNetworkConditions", session=True, offline=True, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)
    try:
        events = chromium.open((real_book / "methods.html").as_uri())
        urls, _, failed = requests_of(events)
        assert all(u.startswith("file://") or u.startswith("data:") for u in urls), urls
        assert not failed, failed
        facts = chromium.eval(PAGE_FACTS)
        assert facts["h1"] == "Methods" and facts["math"] > 20
        chromium.open((real_book / "index.html").as_uri())
        assert chromium.eval("document.location.pathname").endswith("intro.html")
    finally:
        chromium.call("Network.emulateNetworkConditions", session=True, offline=False, latency=0,
                      downloadThroughput=-1, uploadThroughput=-1)


# ------------------------------------------------------------------------- a book from synthetic records

def synthetic_results(root: Path) -> None:
    """Three seeds of the MNIST models (skip models less collapsed; the four PixelCNN models at latent 20, the MLP
    pair, the PixelCNN pair at latent 50 with classification and t-SNE scores), a latent-dimension sweep, two
    remedies on MNIST (the plain ELBO and BN-VAE, with and without skips), the theory rows, one executed notebook
    and one notebook figure."""
    for seed in (0, 1, 2):
        for model, mi in zip(report.LATENT_MODELS, (0.5, 2.5, 1.0, 3.0)):
            write_record(root, "mnist", "mnist", model, seed=seed, mi=mi + 0.1 * seed, kl=mi + 1,
                         **{"au_0.01": 2 + 4 * model.startswith("skip")})
        for model, skip in (("vae", 0), ("skip-vae", 1)):
            write_record(root, "mnist", "mnist", model, seed=seed, arch="mlp", kl=20.0 + 3 * skip + 0.1 * seed,
                         **{"au_0.01": 12 + 8 * skip + seed}, n_examples=10_000,
                         classification={"mlp": 0.95 + 0.02 * skip, "logreg": 0.94, "knn1": 0.93, "knn5": 0.96})
            write_record(root, "mnist", "mnist", model, seed=seed, latent_dim=50, mi=2.0 + skip,
                         classification={"mlp": 0.95 + 0.02 * skip, "logreg": 0.95, "knn1": 0.9, "knn5": 0.96},
                         tsne_silhouette=0.1 + 0.2 * skip + 0.01 * seed, tsne_knn5_accuracy=0.6 + 0.2 * skip)
        for dim in (8, 32):
            for model in ("vae", "skip-vae"):
                write_record(root, "latent_dim", "mnist", model, seed=seed, latent_dim=dim, n_examples=10_000,
                             mi=(dim / 8 if model == "skip-vae" else 8 / dim) + 0.01 * seed)
    for model, gain in (("vae", 0.0), ("skip-vae", 1.0)):  # the remedies on MNIST: BN-VAE keeps more in z
        write_cell(root, "elbo", model, 1.0 + gain, 100.0)
        write_cell(root, "bn-vae", model, 3.0 + gain, 101.0)
    write_theory(root, [{"depth": d, "mi_no_skip": 1.0 / d, "mi_skip": 1.0} for d in (1, 2, 4)])
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# MNIST experiment\n", "Synthetic."]},
                    {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["print(6 * 7)"],
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": ["42\n"]},
                                 {"output_type": "stream", "name": "stderr", "text": ["progress 100%\n"]},
                                 {"output_type": "display_data", "metadata": {}, "data": {  # tqdm.auto's widget
                                     "application/vnd.jupyter.widget-view+json": {
                                         "model_id": "abc", "version_major": 2, "version_minor": 0},
                                     "text/plain": ["epoch 1/1: 100%"]}}]}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (root / "mnist" / "mnist.ipynb").write_text(json.dumps(nb))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    (root / "mnist" / "figures").mkdir()
    fig.savefig(root / "mnist" / "figures" / "tsne.png")
    plt.close(fig)
    (root / "mnist" / "figures" / "tsne.json").write_text(json.dumps({"profile": "cpu", "seeds": [0]}))


@pytest.fixture(scope="module")
def synthetic_book(tmp_path_factory):
    """A copy of book/ (and the files it includes) built from synthetic records: the real book is not touched."""
    tmp = tmp_path_factory.mktemp("synthetic")
    shutil.copytree(BOOK, tmp / "book", symlinks=True,
                    ignore=shutil.ignore_patterns("_build", "_generated", "*_notebook.*", "__pycache__"))
    for name in ("_config.yml", "requirements.txt"):
        shutil.copy(REPO / name, tmp / name)
    results = tmp / "results"
    synthetic_results(results)
    proc, _ = build(tmp / "book", env={"SKIPVAE_RESULTS": str(results)})
    assert_clean_build(proc)
    return tmp / "book" / "_build" / "html", results


def test_synthetic_records_fill_the_book(synthetic_book, chromium):
    html, results = synthetic_book
    assert external_urls(html) == {}
    server, base = serve(html)
    try:
        mnist = check_page(chromium, base, "experiments/mnist")
        table = mnist["tables"]["results-mnist"]
        assert table["head"][:2] == ["profile", "decoder"] and "NLL" in table["head"] and "MI" in table["head"]
        rows = [dict(zip(table["head"], r)) for r in table["rows"]]
        assert len(rows) == 4 + 2 + 2 and all(r["profile"] == "cpu" and r["seeds"] == "3" for r in rows)
        skip20 = [r for r in rows if r["model"] == "skip-vae" and r["latent dim"] == "20"][0]
        assert skip20["MI"] == "2.60 ± 0.10" and skip20["AU (0.01)"] == "6.0 ± 0.0"
        assert len(mnist["figures"]) == 2 and mnist["notRun"] == 0
        assert "Profile: cpu; seeds 0, 1, 2" in mnist["figures"][0]["caption"]
        classification = {r[0]: r for r in mnist["tables"]["results-classification"]["rows"]}
        assert classification["pixelcnn skip-vae"][3:5] == ["98.10", "97.00 ± 0.00"]  # after features, seeds, split
        assert "PCA-50 of the pixels (reference)" not in classification  # no reference records here
        assert mnist["verdicts"] == ["reproduced", "reproduced", "reproduced"]  # C3, C5, C6
        for profile in ("paper", "cpu"):  # Table 3 beside ours at each profile
            assert len(mnist["tables"][f"beside-table3-{profile}"]["rows"]) == 6

        latent = check_page(chromium, base, "experiments/latent_dim")
        assert len(latent["tables"]["results-latent-dim"]["rows"]) == 4 and len(latent["figures"]) == 1
        assert latent["verdicts"] == ["partly reproduced"]  # C1: MI above at 32 dimensions, the rest level
        beside = latent["tables"]["beside-table1"]
        assert len(beside["rows"]) == 10 and sum("not yet run" in " ".join(r) for r in beside["rows"]) == 10

        remedies = check_page(chromium, base, "experiments/remedies")
        grid = remedies["tables"]["remedies-mnist"]
        assert len(grid["rows"]) == 4 and all("3" in r for r in grid["rows"])  # 2 remedies x {plain, skip}
        differences = remedies["tables"]["remedies-mnist-differences"]
        assert any(r[1] == "VAE + BN-VAE − VAE" for r in differences["rows"])  # after the remedy column
        text = chromium.eval("document.querySelector('main').innerText")
        assert "BN-VAE keeps more information in z than the plain VAE" in text  # the generated sentences
        assert "not run yet" in " ".join(" ".join(r) for r in remedies["tables"]["remedies-yahoo"]["rows"])
        assert len(remedies["figures"]) >= 1

        theory = check_page(chromium, base, "experiments/theory")
        assert len(theory["tables"]["results-theory"]["rows"]) == 1 and theory["verdicts"] == ["inconclusive"]

        notebook = check_page(chromium, base, "experiments/mnist_notebook")
        assert notebook["h1"] == "MNIST experiment"
        assert chromium.eval("document.querySelector('.cell_output').innerText.trim()") == "42"
        assert chromium.eval("document.querySelectorAll('.skipvae-stale').length") == 1  # not today's source code

        claims = check_page(chromium, base, "claims")
        expected = list(report.claims_ledger(results)["verdict"])
        assert claims["verdicts"] == expected
        assert expected == ["partly reproduced", "not tested yet", "reproduced", "not tested yet", "reproduced",
                            "reproduced", "inconclusive"]
        links = chromium.eval("[...document.querySelectorAll('#claims-ledger a')].map(a => a.href)")
        assert base + "experiments/mnist.html" in links
    finally:
        server.shutdown()
