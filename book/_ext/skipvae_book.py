"""Sphinx extension of the skipvae book: every table, figure, verdict and number of our runs comes from results/
through skipvae.report, at build time, so the pages fill in by themselves once run records appear.

Directives (in MyST pages: ```{name} argument```):
    results-status <experiment>        what has run (profiles, seeds, models), or 'not run yet at any profile';
                                       option :sweeps: the sweep files whose records the page waits for
    results-table <experiment>         mean ± std over seeds per setting; option :metrics: nll,kl,mi,...
    classification-table               MNIST accuracies from posterior means beside the paper's (claim 4)
    paper-table <name>                 a table quoted from book/paper_numbers.yaml, with its source
    paper-beside <name>                a paper table rebuilt beside ours, same rows and columns; :where: key=value
    remedies-table <dataset>           the remedies x {plain, skip} (skipvae.report.remedies), their differences with
                                       Welch intervals and the sentences generated from them
    remedies-setup                     the published Yahoo setting beside ours (the quoted table's `setup`)
    results-figure <experiment>        :plot: summary | latent_dim | dec_layers | mi_nll (drawn from the records), or
                                       :file: <name>.png (a figure of the executed notebook); the content is the
                                       'what to notice' sentence, the caption adds the profile and the seeds
    theory-table                       the rows of results/theory/theory.json
    claims-ledger                      the verdict of each claim and its checks; option :claims: C1,C4 for a subset
    rule-history                       when the ledger's rules were fixed or changed
    profile-table <arch>               the scale of the smoke, cpu and paper profiles (skipvae.config)
    provenance-table, timing-table     where and how long the runs ran
    precision-table [:validation: step]  fp32 against bf16 training, or the eager against the compiled step
                                       (skipvae.precision)
    budget-table [plan]                the planned sweeps against the records (skipvae.report.budget)
    reliability-table                  the reliability cases by area and their tests (skipvae.reliability_cases)
Roles:
    {cfg}`dataset[/arch] profile key`  a value of skipvae.config.make_config (e.g. {cfg}`mnist cpu epochs`)
    {paper}`table|row|column`          a number quoted from the papers (row: model, or arch/model)
    {result}`experiment metric key=value ...`  our mean ± std at the largest profile run, or 'not run yet'

At the start of each build the executed notebooks results/<experiment>/<experiment>.ipynb are copied to
experiments/<experiment>_notebook.ipynb (a placeholder page when there is none yet), and every page that reads
results/ is read again whenever anything under results/ (or the quoted numbers) changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective, SphinxRole

from skipvae import config as skipconfig
from skipvae import report
from skipvae.report import figures, views
from skipvae.errors import ConfigError, DataError

GENERATED = "_generated/figures"  # content-addressed PNGs drawn at build time (git-ignored)


# ------------------------------------------------------------------------------------------- node helpers

def verdict_class(verdict: str) -> str:
    """The CSS class of a verdict (book/_assets/skipvae.css styles each): 'verdict-' and the verdict in lower case,
    apostrophes dropped, every other run of non-alphanumerics a dash ("smaller than the paper's effect" ->
    verdict-smaller-than-the-papers-effect)."""
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"['\u2019]", "", verdict.lower())).strip("-")
    return "verdict-" + slug


# A caption that begins with the paper's name of a table or figure ("Table 3: ...", "Figure 1 (right) rebuilt ...")
# names it: Sphinx's own number ("Table 23 Table 3: ...") is left off, and our tables and figures are numbered without
# it (on_doctree_read).
PAPER_NAMED = re.compile(r"(Table|Figure) \d+\b")


class paper_named_table(nodes.table):
    """A table named by the paper's name in its caption: not numbered by Sphinx (its class is not one of Sphinx's
    enumerable nodes) and written out as any table (translators find visit_table through the class's bases)."""


class paper_named_figure(nodes.figure):
    """A figure named by the paper's name in its caption: not numbered by Sphinx, written out as any figure."""


def paragraph(*children) -> nodes.paragraph:
    p = nodes.paragraph()
    for c in children:
        p += nodes.Text(c) if isinstance(c, str) else c
    return p


def cell(value) -> nodes.Node:
    if isinstance(value, nodes.Node):
        return value
    return paragraph(str(value))


def table_node(df: pd.DataFrame, classes: list[str], caption: str | None = None, name: str | None = None):
    """A docutils table of `df` (cells: strings or nodes), with CSS classes for the browser test."""
    table = nodes.table(classes=["skipvae-table", *classes])
    if caption:
        table += nodes.title(text=caption)
    if name:
        table["ids"].append(nodes.make_id(name))
    group = nodes.tgroup(cols=len(df.columns))
    table += group
    for _ in df.columns:
        group += nodes.colspec(colwidth=1)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    head += row_node(df.columns)
    for values in df.itertuples(index=False):
        body += row_node(values)
    return table


def row_node(values) -> nodes.row:
    row = nodes.row()
    for v in values:
        entry = nodes.entry()
        entry += cell(v)
        row += entry
    return row


def admonition(title: str, body: list[nodes.Node], classes: list[str]) -> nodes.admonition:
    node = nodes.admonition(classes=["admonition", *classes])
    node += nodes.title(text=title)
    for b in body:
        node += b
    return node


def literal_block(text: str, language: str = "bash") -> nodes.literal_block:
    node = nodes.literal_block(text, text)
    node["language"] = language
    return node


def doc_link(docname: str, text: str, fromdoc: str) -> addnodes.pending_xref:
    ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget="/" + docname, refexplicit=True,
                                refdoc=fromdoc, refwarn=True)
    ref += nodes.inline(text=text)
    return ref


def run_commands(name: str) -> str:
    exp = report.experiment(name)
    return "\n".join(f"papermill {exp.notebook} results/{name}/{name}.ipynb -p profile {p}" for p in ("cpu", "paper"))


def sweep_commands(name: str, sweeps: list[str]) -> str:
    """The commands that train the sweeps (sweeps/<file>.yaml) and collect their records into results/<name>/, as
    their declarations give them (skipvae.experiments.declaration.Sweep.commands)."""
    declared = {f"sweeps/{s.file}.yaml": s for s in report.experiment(name).sweeps}
    unknown = [p for p in sweeps if p not in declared]
    if unknown:
        raise ValueError(f":sweeps: {unknown} are not sweeps of {name}; its sweeps: {', '.join(declared)}")
    return "\n".join(line for path in sweeps for line in declared[path].commands(name))


# --------------------------------------------------------------------------------------------- directives

class ResultsDirective(SphinxDirective):
    """Base: records that the page reads results/, so it is re-read when results/ changes."""

    def run(self):
        self.env.skipvae_docs = getattr(self.env, "skipvae_docs", set()) | {self.env.docname}
        try:
            return self.make()
        except DataError as err:  # a broken record or quoted-numbers file: a build error that says which file
            raise self.error(str(err)) from err

    def make(self) -> list[nodes.Node]:
        raise NotImplementedError


class ResultsStatus(ResultsDirective):
    required_arguments = 1
    option_spec = {"sweeps": directives.unchanged}

    def make(self):
        name = self.arguments[0]
        status = report.run_status(name)
        sweeps = self.options.get("sweeps", "").split()
        if not status["ran"] and sweeps:
            return [admonition("The runs have not been committed yet", [
                paragraph(f"No record of this experiment is in results/{name}/ yet, so every table below says 'not "
                          f"run yet' and the figure is not drawn. The page fills in when the sweeps' records are "
                          f"collected (or the notebook has run):"),
                literal_block(sweep_commands(name, sweeps) + "\n" + run_commands(name))],
                ["warning", "skipvae-not-run"])]
        if not status["ran"]:
            return [admonition("Not run yet at any profile", [
                paragraph("No results for this experiment exist yet, so every table below says 'not run yet' "
                          "and every verdict 'not tested yet'. The page fills in when the notebook has run:"),
                literal_block(run_commands(name))], ["warning", "skipvae-not-run"])]
        if name == "theory":
            text = f"results/theory/theory.json exists (profile {', '.join(status['profiles']) or 'not recorded'})."
            return [admonition("Results found", [paragraph(text)], ["note", "skipvae-ran"])]
        items = nodes.bullet_list()
        for profile, s in status["by_profile"].items():
            items += nodes.list_item("", paragraph(
                f"{profile} profile: {s['runs']} runs, seeds {', '.join(map(str, s['seeds']))}, "
                f"models {', '.join(s['models'])}"))
        notebook = "The executed notebook is on the next page." if status["notebook"] else \
            "The executed notebook is not in results/ yet."
        body = [items, paragraph(notebook)]
        params = report.notebook_parameters(name)
        if params:
            shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items()))
            body.append(paragraph(f"It was executed with {shown}; every other parameter kept the notebook's "
                                  f"default."))
        if status["missing"]:
            body.append(paragraph(f"Not run at any profile: {', '.join(status['missing'])}. The tables have no rows "
                                  f"for them, and the claims that need them are not tested here."))
        return [admonition("Results found", body, ["note", "skipvae-ran"])]


class ResultsTable(ResultsDirective):
    required_arguments = 1
    option_spec = {"metrics": directives.unchanged}

    def make(self):
        name = self.arguments[0]
        metrics = [m.strip() for m in self.options["metrics"].split(",")] if "metrics" in self.options else None
        view = views.results_view(name, metrics=metrics)
        return [table_node(view.table, ["skipvae-results", f"skipvae-results-{name}"], view.caption,
                           f"results-{name}")]


class RemediesTable(ResultsDirective):
    """The remedies on one dataset (views.remedy_views): remedy x {plain, skip}, then the differences with their
    Welch intervals and, below them, the sentences generated from the intervals."""
    required_arguments = 1

    def make(self):
        from skipvae.report import remedies

        dataset = self.arguments[0]
        if dataset not in remedies.DATASETS:
            raise self.error(f"no remedies on {dataset!r}; the datasets are {', '.join(remedies.DATASETS)}")
        shown = views.remedy_views(dataset)
        out = [table_node(shown[0].table, ["skipvae-results", "skipvae-remedies"], shown[0].caption,
                          f"remedies-{dataset}")]
        if len(shown) == 1:
            return out
        summary, *findings = shown[1].said
        out.append(table_node(shown[1].table, ["skipvae-results", "skipvae-remedies-differences"],
                              shown[1].caption, f"remedies-{dataset}-differences"))
        items = nodes.bullet_list()
        for line in findings:
            items += nodes.list_item("", paragraph(plain_math(line)))
        out += [paragraph(plain_math(summary)), items]
        return out


def plain_math(text: str) -> str:
    """A generated sentence for a text node, which renders no math: $z$ becomes z."""
    return text.replace("$z$", "z")


class RemediesSetup(ResultsDirective):
    """The published Yahoo setting (the quoted table's `setup`) beside ours, from the runs' configs."""

    def make(self):
        from skipvae.report import remedies

        table = remedies.setup_differences(report.load_runs("remedies"))
        return [table_node(table, ["skipvae-results", "skipvae-remedies-setup"], remedies.setup_caption(table),
                           "remedies-setup")]


class ClassificationTable(ResultsDirective):
    """C5: accuracy of classifiers of the posterior means (latent 50), ours beside the paper's, and the reference row
    of the same classifiers on the PCA-50 projection of the pixels (before any run: the paper's numbers)."""

    def make(self):
        view = views.classification_view()
        table = view.table
        if table.empty:
            quoted = report.paper_numbers()["tables"]["classification_mnist"]
            table = pd.DataFrame({"features": quoted["arch"] + " " + quoted["model"],
                                  "paper (%)": quoted["accuracy"].map(report.fmt), "ours": "not run yet"})
        return [table_node(table, ["skipvae-results", "skipvae-results-classification"], view.caption,
                           "results-classification")]


class PaperTable(ResultsDirective):
    required_arguments = 1

    def make(self):
        tables = report.paper_numbers()["tables"]
        if self.arguments[0] not in tables:
            raise self.error(f"no quoted table {self.arguments[0]!r} in paper_numbers.yaml; "
                             f"known: {', '.join(tables)}")
        t = tables[self.arguments[0]]
        shown = pd.DataFrame({"model": t["model"], **{report.METRIC_LABELS.get(c, c): [
            report.fmt(v, report.digits_for(c) if c.startswith("au") else 2) if c in t.columns else "–"
            for v in (t[c] if c in t.columns else [None] * len(t))] for c in t.attrs["columns"]}})
        caption = f"Quoted from {t.attrs['source']} {t.attrs['setting']} Units: {t.attrs['units']}."
        return [table_node(shown, ["skipvae-quoted"], caption, f"quoted-{self.arguments[0]}")]


class PaperBeside(ResultsDirective):
    """A paper table rebuilt beside ours (report.side_by_side): same rows and columns, 'not yet run' where missing;
    option :profile: one profile's runs (default: the largest that has runs)."""
    required_arguments = 1
    option_spec = {"where": directives.unchanged, "profile": directives.unchanged}

    def make(self):
        tables = report.paper_numbers()["tables"]
        name = self.arguments[0]
        if name not in tables or "keys" not in tables[name].attrs:
            raise self.error(f"no quoted table {name!r} in paper_numbers.yaml; known: {', '.join(tables)}")
        where = {}
        for item in self.options.get("where", "").split():
            key, _, value = item.partition("=")
            where[key] = int(value) if value.isdigit() else value
        profile = self.options.get("profile")
        view = views.beside_view(name, where=where, profile=profile)
        ident = f"beside-{name}" + (f"-{profile}" if profile else "")
        return [table_node(view.table, ["skipvae-results", "skipvae-beside"], view.caption, ident)]


class PaperDifferences(ResultsDirective):
    """Per cell of a paper table: ours − the paper's with its interval over seeds (views.differences_view);
    option :profile: one profile's runs (default: the largest that has runs)."""
    required_arguments = 1
    option_spec = {"profile": directives.unchanged}

    def make(self):
        name, profile = self.arguments[0], self.options.get("profile")
        if name not in report.paper_numbers()["tables"]:
            raise self.error(f"no quoted table {name!r} in paper_numbers.yaml")
        view = views.differences_view(name, profile=profile)
        ident = f"differences-{name}" + (f"-{profile}" if profile else "")
        return [table_node(view.table, ["skipvae-results", "skipvae-beside"], view.caption, ident)]


class ResultsFigure(ResultsDirective):
    required_arguments = 1
    has_content = True
    option_spec = {"plot": directives.unchanged, "file": directives.unchanged, "metrics": directives.unchanged}

    def make(self):
        name = self.arguments[0]
        notice = " ".join(self.content).strip()
        if "file" in self.options:
            return self.notebook_figure(name, self.options["file"], notice)
        plot = self.options.get("plot", "summary")
        metrics = [m.strip() for m in self.options["metrics"].split(",")] if "metrics" in self.options else None
        try:
            drawn = figures.partial_figure(name) if plot == "partial" else \
                figures.experiment_figure(name, plot, metrics)
        except ValueError as err:
            raise self.error(str(err))
        if drawn is None and plot == "partial":
            return [admonition("No run is training", [paragraph(
                f"This figure draws the per-epoch curves of the {name} runs still training (their partial "
                f"records, results/{name}/partial/); none is training now. What it shows then: {notice}")],
                               ["note", "skipvae-no-partial"])]
        if drawn is None:
            return [admonition("Figure not drawn yet", [paragraph(
                f"This figure is drawn from the run records of the {name} experiment, which has not run yet at "
                f"any profile. What it will show: {notice}")], ["warning", "skipvae-not-run"])]
        uri = self.save(drawn.fig, name, plot)
        return [figure_node(uri, f"{notice} {drawn.caption} {drawn.provenance_text()}", f"figure-{name}-{plot}")]

    def save(self, fig, name: str, plot: str) -> str:
        import io
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        return write_generated(self.env.srcdir, f"{name}-{plot}", buf.getvalue())

    def notebook_figure(self, name: str, filename: str, notice: str):
        path = report.results_root() / name / "figures" / filename
        if not path.exists():
            return [admonition("Figure not produced yet", [paragraph(
                f"results/{name}/figures/{filename} appears when {report.experiment(name).notebook} has run "
                f"(not run yet at any profile). What it will show: {notice}")], ["warning", "skipvae-not-run"])]
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        df = report.load_runs(name)
        profile = meta.get("profile") or report.best_profile(df) or "not recorded"
        seeds = meta.get("seeds") or (sorted(int(s) for s in df[df["profile"] == profile]["seed"].unique())
                                      if len(df) else [])
        caption = " ".join(x for x in (meta.get("caption", ""), notice) if x)
        caption += f" Profile: {profile}; seeds {', '.join(map(str, seeds)) or 'not recorded'}."
        uri = write_generated(self.env.srcdir, f"{name}-{path.stem}", path.read_bytes())
        return [figure_node(uri, caption, f"figure-{name}-{path.stem}")]


def write_generated(srcdir, stem: str, data: bytes) -> str:
    """Write a PNG under book/_generated/figures, named by its content; returns its URI for an image node."""
    name = f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}.png"
    path = Path(srcdir) / GENERATED / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return f"/{GENERATED}/{name}"


def figure_node(uri: str, caption: str, name: str) -> nodes.figure:
    figure = nodes.figure(classes=["skipvae-figure"])
    figure["ids"].append(nodes.make_id(name))
    figure += nodes.image(uri=uri, alt=caption)
    figure += nodes.caption(text=caption)
    return figure


class TheoryTable(ResultsDirective):
    def make(self):
        df = report.theory_summary()
        if df.empty:
            return [admonition("Not run yet at any profile", [
                paragraph("results/theory/theory.json does not exist yet. Compute it with:"),
                literal_block(run_commands("theory"))], ["warning", "skipvae-not-run"])]
        shown = df.copy()
        for c in shown.columns:
            if pd.api.types.is_float_dtype(shown[c]):
                shown[c] = [report.fmt(v, 3) for v in shown[c]]
        return [table_node(shown, ["skipvae-results", "skipvae-results-theory"],
                           "Closed-form I(x; z) with and without skips, summarised over depths and weight draws: "
                           "in how many draws skips do not lower it, and the gain I_skip - I_no_skip in nats.",
                           "results-theory")]


class ClaimsLedger(ResultsDirective):
    """The verdict of each claim (C1-C7) and, below, the checks behind it; option :claims: C1,C3 for a subset;
    option :glance: the verdicts at a glance only (the README's table: no statements, no checks)."""
    option_spec = {"claims": directives.unchanged, "glance": directives.flag}

    def make(self):
        ledger = report.claims_ledger()
        if "claims" in self.options:
            wanted = {c.strip() for c in self.options["claims"].split(",")}
            ledger = ledger[ledger["claim"].isin(wanted)]
        if "glance" in self.options:
            rows = [[paragraph(doc_link("claims", r.claim, self.env.docname)), r.source,
                     paragraph(nodes.inline(text=r.verdict, classes=["skipvae-verdict", verdict_class(r.verdict)])),
                     r.primary, r.conditions, r.profile if isinstance(r.profile, str) else "–", r.seeds]
                    for r in ledger.itertuples(index=False)]
            df = pd.DataFrame(rows, columns=["claim", "source", "verdict", "primary checks", "conditions", "profile",
                                             "seeds"])
            return [table_node(df, ["skipvae-ledger"], "The verdicts at a glance, from the claims ledger (each "
                               "claim links to its checks).", "verdicts-at-a-glance")]
        rows, out = [], []
        for r in ledger.itertuples(index=False):
            pages = paragraph()
            for i, page in enumerate(r.pages):
                if i:
                    pages += nodes.Text(", ")
                pages += doc_link(page, report.EXPERIMENTS[page.split("/")[-1]].title, self.env.docname)
            verdict = paragraph(nodes.inline(text=r.verdict, classes=["skipvae-verdict", verdict_class(r.verdict)]))
            rows.append([r.claim, nodes.container("", paragraph(r.text), paragraph(nodes.emphasis(text=r.source))),
                         verdict, r.primary, r.conditions, r.profile if isinstance(r.profile, str) else "–",
                         r.seeds, pages])
        out.append(table_node(pd.DataFrame(rows, columns=["claim", "the paper's statement", "verdict",
                                                          "primary checks", "conditions", "profile", "seeds",
                                                          "pages"]),
                              ["skipvae-ledger"], "Claims ledger: the paper's claims and our verdicts (the checks "
                              "behind each follow).",
                              "claims-ledger" + ("-" + "-".join(ledger["claim"]) if "claims" in self.options else "")))
        for r in ledger.itertuples(index=False):
            if not r.checks:
                out.append(paragraph(f"{r.claim}: no run gives a check yet. Rule: {r.rule}"))
                continue
            table = report.checks_table(r.checks).drop(columns=["claim"])
            out.append(table_node(table, ["skipvae-checks"], f"{r.claim} ({r.source}), {r.verdict}. Rule: {r.rule}",
                                  f"checks-{r.claim}"))
        return out


class RuleHistory(SphinxDirective):
    """The changes to the ledger's rules, with their dates and what had been seen (report.claims.RULE_HISTORY)."""

    def run(self):
        items = nodes.bullet_list()
        for change in report.RULE_HISTORY:
            items += nodes.list_item("", paragraph(change))
        return [admonition("When the rules were fixed", [items], ["note"])]


class ProfileTable(SphinxDirective):
    required_arguments = 1  # pixelcnn, mlp or lstm
    KEYS = {"pixelcnn": ("n_train", "n_valid", "n_test", "epochs", "latent_dim", "enc_channels", "dec_layers",
                         "dec_channels", "batch_size", "svi_steps", "iw_samples", "n_eval_nll"),
            "mlp": ("n_train", "n_valid", "n_test", "epochs", "latent_dim", "mlp_hidden", "dec_layers",
                    "batch_size", "svi_steps", "iw_samples", "n_eval_nll"),
            "lstm": ("n_train", "n_valid", "n_test", "max_len", "epochs", "latent_dim", "emb_dim", "enc_hidden",
                     "dec_hidden", "batch_size", "warmup_epochs", "svi_steps", "iw_samples", "n_eval_nll")}

    def run(self):
        arch = self.arguments[0]
        dataset = "yahoo" if arch == "lstm" else "mnist"
        configs = {}
        for p in skipconfig.PROFILES:
            configs[p] = skipconfig.make_config(dataset, "vae", p, arch=arch)
        rows = [[key] + [("all" if getattr(c, key) is None else str(getattr(c, key))) for c in configs.values()]
                for key in self.KEYS[arch]]
        table = pd.DataFrame(rows, columns=["setting", *configs])
        caption = f"The profiles of the {arch} models (skipvae.config; 'all': the whole split)."
        return [table_node(table, ["skipvae-profiles"], caption, f"profiles-{arch}")]


class PrecisionTable(ResultsDirective):
    """A validation of skipvae.precision (option `validation`: precision, fp32 against bf16 autocast training, the
    default; step, the eager against the compiled step): one row per model and metric, and the verdict."""
    option_spec = {"validation": directives.unchanged}

    def make(self):
        from skipvae import precision

        v = precision.VALIDATIONS[self.options.get("validation", "precision")]
        b, a = v.before, v.after
        comparison = precision.compare(precision.load(), v)
        if not comparison:
            return [admonition("Not run yet", [paragraph(f"The {b} / {a} comparison appears here once `python -m "
                                                         f"skipvae.precision run --validation {v.name}` has written "
                                                         f"records.")], ["warning", "skipvae-not-run"])]
        df = pd.DataFrame(precision.table(comparison, v))
        for c in (b, a, f"{a} - {b}", f"seed sd {b}", f"seed sd {a}"):
            df[c] = [report.fmt(x, 3) for x in df[c]]
        what = "trained in fp32 and under bf16 autocast" if v is precision.PRECISION else \
            "trained in bf16 with the eager and with the compiled step (torch.compile), on one machine"
        caption = (f"Test metrics (nats; AU in dimensions) of the same cpu-profile runs {what}, seeds "
                   f"{', '.join(map(str, v.seeds))} paired; the interval is the paired 95% t interval of {a} - {b}, "
                   f"'within seed noise' = |mean difference| at most the larger seed sd.")
        nodes_out = [table_node(df.astype(str), ["skipvae-results", "skipvae-results-precision"], caption,
                                f"validation-{v.name}")]
        for fam, c in comparison.items():
            speed = c["train_seconds"]
            verdict = "agrees within seed noise on every metric and epoch" if c["agrees"] else \
                "does not agree within seed noise on every metric and epoch (see the rows marked no)"
            default = ""
            if v is precision.PRECISION:
                default = f" The cpu profile trains it in {'bf16' if precision.cpu_profile_uses_bf16(fam) else 'fp32'}."
            same_sign = precision.one_signed(c)
            signs = (f" Every seed pair moves the same way on {', '.join(same_sign)} ({a} against {b})."
                     if same_sign else "")
            nodes_out.append(paragraph(f"{fam} VAE ({c['n_pairs']} seed pairs): {a} {verdict}; mean training "
                                       f"time {report.fmt(speed[b], 0)} s {b}, {report.fmt(speed[a], 0)} s "
                                       f"{a}.{signs}{default}"))
        return nodes_out


class ProvenanceTable(ResultsDirective):
    def make(self):
        df = report.provenance_table()
        if df.empty:
            return [admonition("No runs yet", [paragraph("The hardware and library versions of each run appear "
                                                         "here once run records exist.")],
                               ["warning", "skipvae-not-run"])]
        return [table_node(df.astype(str), ["skipvae-results", "skipvae-results-provenance"],
                           "Where the runs ran (from each record's provenance).", "provenance")]


class TimingTable(ResultsDirective):
    def make(self):
        df = report.timing_table()
        if df.empty:
            return [admonition("No runs yet", [paragraph("The training and evaluation time of each run appears "
                                                         "here once run records exist.")],
                               ["warning", "skipvae-not-run"])]
        for c in ("epochs", "train_s", "eval_s"):
            df[c] = [report.fmt(v, 0 if c != "epochs" else 1) for v in df[c]]
        df = df.rename(columns={"train_s": "train (s)", "eval_s": "eval (s)"})
        return [table_node(df.astype(str), ["skipvae-results", "skipvae-results-timing"],
                           "Mean wall time per run (seconds) and epochs, from the records.", "timing")]


class BudgetTable(ResultsDirective):
    """A compute budget (skipvae.report.budget): each planned sweep against the records; the argument names the
    plan (default: sweeps/cpu_plan.yaml)."""

    optional_arguments = 1

    def make(self):
        from skipvae.report import budget

        plan = budget.REPO_ROOT / self.arguments[0] if self.arguments else budget.PLAN
        df, caption = budget.budget_display(plan)
        return [table_node(df, ["skipvae-results", "skipvae-results-budget"], caption, f"budget-{plan.stem}")]


class ReliabilityTable(SphinxDirective):
    """The reliability cases of issue 28 by area, and the test that checks each (skipvae.reliability_cases; the
    number of cases counted in the test file's case table)."""

    def run(self):
        from skipvae import reliability_cases

        for case in reliability_cases.CASES:  # the page is read again when a test file changes
            self.env.note_dependency(str(reliability_cases.TESTS / case.test.split("::")[0]))
        self.env.note_dependency(reliability_cases.__file__)
        return [reliability_table()]


def reliability_table() -> nodes.table:
    """The table of the reliability-table directive."""
    from skipvae import reliability_cases

    df = pd.DataFrame(reliability_cases.table_rows())
    caption = ("The reliability cases of issue 28 by area: what is done to the code, what it does, and the test "
               "that checks it (in tests/; in brackets the rows of its case table).")
    return table_node(df, ["skipvae-reliability"], caption, "reliability-cases")


# ------------------------------------------------------------------------------------------------- roles

class ConfigRole(SphinxRole):
    """{cfg}`mnist cpu epochs`, {cfg}`mnist/mlp cpu mlp_hidden` or {cfg}`yahoo cpu n_train sa-vae`: a value of
    make_config(dataset, model, profile) (model: vae unless given)."""

    def run(self):
        try:
            where, profile, key, *model = self.text.split()
            dataset, _, arch = where.partition("/")
            if len(model) > 1:
                raise ValueError(f"too many words ({len(model) + 3})")
            value = getattr(skipconfig.make_config(dataset, *(model or ["vae"]), profile, arch=arch or None), key)
        except (ValueError, AttributeError, ConfigError) as err:
            msg = self.inliner.reporter.error(f"{{cfg}}`{self.text}`: {err}; write {{cfg}}`dataset[/arch] profile "
                                              f"key [model]`", line=self.lineno)
            return [], [msg]
        text = "the whole split" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        return [nodes.inline(text=text, classes=["skipvae-cfg"])], []


class PaperRole(SphinxRole):
    """{paper}`yahoo_zhu2020|Skip-VAE|nll`: a number quoted from the papers (row: model, or arch/model)."""

    def run(self):
        try:
            name, row, column = self.text.split("|")
            t = report.paper_numbers()["tables"][name]
            key = t["arch"] + "/" + t["model"] if "arch" in t.columns else t["model"]
            value = t.loc[key == row, column].iloc[0]
        except (ValueError, KeyError, IndexError) as err:
            msg = self.inliner.reporter.error(f"{{paper}}`{self.text}`: no such quoted number ({err}); write "
                                              f"{{paper}}`table|row|column`", line=self.lineno)
            return [], [msg]
        return [nodes.inline(text=f"{value:g}", classes=["skipvae-quoted"])], []


class ResultRole(SphinxRole):
    """{result}`mnist mi model=skip-vae arch=pixelcnn`: our mean ± std over seeds at the largest profile run."""

    def run(self):
        self.env.skipvae_docs = getattr(self.env, "skipvae_docs", set()) | {self.env.docname}
        try:
            name, metric, *filters = self.text.split()
            df = report.load_runs(name)
            for f in filters:
                key, _, value = f.partition("=")
                if len(df):
                    df = df[df[key].astype(str) == value]
        except (ValueError, KeyError, DataError) as err:
            msg = self.inliner.reporter.error(f"{{result}}`{self.text}`: {err}; write {{result}}`experiment metric "
                                              f"key=value ...`", line=self.lineno)
            return [], [msg]
        profile = report.best_profile(df) if len(df) else None
        if profile is None or metric not in df.columns:
            return [nodes.inline(text="(not run yet)", classes=["skipvae-not-run"])], []
        x = pd.to_numeric(df[df["profile"] == profile][metric], errors="coerce").dropna()
        text = report.fmt_mean_std(x.mean(), x.std(ddof=1) if len(x) > 1 else None, report.digits_for(metric))
        return [nodes.inline(text=f"{text} ({profile}, {len(x)} seeds)", classes=["skipvae-result"])], []


# ----------------------------------------------------------------------------------- build-time bookkeeping

def results_stamp() -> str:
    """A fingerprint of everything the pages read: results/, the quoted numbers and skipvae.report."""
    h = hashlib.sha256()
    root = report.results_root()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    code = sorted(Path(report.__file__).parent.glob("*.py"))
    for p in [*files, report.PAPER_NUMBERS, *code, Path(skipconfig.__file__), Path(__file__)]:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def copy_executed_notebooks(app) -> None:
    """experiments/<name>_notebook.ipynb: a copy of results/<name>/<name>.ipynb, or a placeholder page."""
    for name, exp in report.EXPERIMENTS.items():
        src = report.results_root() / name / f"{name}.ipynb"
        base = Path(app.srcdir) / "experiments" / f"{name}_notebook"
        if src.exists():
            nb = json.loads(src.read_text())
            cells = nb.get("cells", [])
            first = "".join(cells[0].get("source", "")) if cells else ""
            if not (cells and cells[0].get("cell_type") == "markdown" and first.lstrip().startswith("# ")):
                cells.insert(0, {"cell_type": "markdown", "id": "skipvae-title", "metadata": {},
                                 "source": [f"# {exp.title}: the executed notebook"]})
            source = report.REPO_ROOT / exp.notebook
            if source.exists() and code_of(nb) != code_of(json.loads(source.read_text())):
                cells.insert(1, {"cell_type": "markdown", "id": "skipvae-stale", "metadata": {}, "source": [
                    f":::{{admonition}} Executed by an earlier version of `{exp.notebook}`\n:class: warning "
                    f"skipvae-stale\nThe code of this executed notebook differs from the current source notebook: "
                    f"its text, tables and verdicts are those of the version that ran. The experiment page above is "
                    f"computed from the records by the current code. Re-execute to update:\n\n```bash\n"
                    f"{run_commands(name)}\n```\n:::"]})
            write_if_changed(base.with_suffix(".ipynb"), json.dumps(nb, indent=1))
            base.with_suffix(".md").unlink(missing_ok=True)
        else:
            write_if_changed(base.with_suffix(".md"), placeholder_page(name))
            base.with_suffix(".ipynb").unlink(missing_ok=True)


def code_of(nb: dict) -> list[str]:
    """The code cells' sources of a notebook, without papermill's injected-parameters cell."""
    return ["".join(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def placeholder_page(name: str) -> str:
    exp = report.experiment(name)
    return (f"# {exp.title}: the executed notebook\n\n"
            f":::{{admonition}} Not executed yet\n:class: warning skipvae-not-run\n"
            f"`results/{name}/{name}.ipynb` does not exist yet (the runs it needs are in the cpu budget on the "
            f"Reproducibility page). It is written by papermill:\n\n"
            f"```bash\n{run_commands(name)}\n```\n:::\n")


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def on_builder_inited(app) -> None:
    mathjax = Path(app.srcdir) / "_assets" / app.config.mathjax_path
    if app.builder.format == "html" and not mathjax.is_file():
        raise ExtensionError(f"MathJax is missing at {mathjax}: run `bash book/fetch_mathjax.sh` once (it needs npm) "
                             f"or `make book`, which does it for you.")
    copy_executed_notebooks(app)


def on_env_get_outdated(app, env, added, changed, removed):
    """Re-read the pages that read results/ when results/ (or the quoted numbers, or report.py) changed."""
    stamp = results_stamp()
    if getattr(env, "skipvae_stamp", None) == stamp:
        return []
    env.skipvae_stamp = stamp
    return sorted(getattr(env, "skipvae_docs", set()) - set(removed))


def on_env_purge_doc(app, env, docname):
    getattr(env, "skipvae_docs", set()).discard(docname)


def on_env_merge_info(app, env, docnames, other):
    env.skipvae_docs = getattr(env, "skipvae_docs", set()) | getattr(other, "skipvae_docs", set())


def on_doctree_read(app, doctree) -> None:
    """Tables and figures whose caption begins with the paper's name of them ('Table 3: ...') become paper_named_*
    nodes, which Sphinx does not number; numbering happens after every page is read, so ours number without gaps."""
    for cls, named, title in ((nodes.table, paper_named_table, nodes.title),
                              (nodes.figure, paper_named_figure, nodes.caption)):
        for node in list(doctree.findall(cls)):
            caption = next((c for c in node.children if isinstance(c, title)), None)
            if type(node) is cls and caption is not None and PAPER_NAMED.match(caption.astext().strip()):
                node.__class__ = named  # in place: the document's ids and every parent keep pointing at it


def drop_external_scripts(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's scripts (thebe is off): they name a CDN URL, and the book references no external URL."""
    context["script_files"] = [js for js in context.get("script_files", [])
                               if "thebe" not in str(getattr(js, "filename", js) or "")
                               and "unpkg.com" not in str(getattr(js, "attributes", {}).get("body", ""))]


def setup(app):
    for name, directive in {"results-status": ResultsStatus, "results-table": ResultsTable,
                            "classification-table": ClassificationTable, "paper-table": PaperTable,
                            "paper-beside": PaperBeside, "paper-differences": PaperDifferences,
                            "rule-history": RuleHistory,
                            "results-figure": ResultsFigure, "remedies-table": RemediesTable,
                            "remedies-setup": RemediesSetup, "theory-table": TheoryTable,
                            "claims-ledger": ClaimsLedger, "profile-table": ProfileTable,
                            "provenance-table": ProvenanceTable, "timing-table": TimingTable,
                            "precision-table": PrecisionTable, "budget-table": BudgetTable,
                            "reliability-table": ReliabilityTable}.items():
        app.add_directive(name, directive)
    app.add_node(paper_named_table)
    app.add_node(paper_named_figure)
    app.add_role("cfg", ConfigRole())
    app.add_role("paper", PaperRole())
    app.add_role("result", ResultRole())
    app.connect("builder-inited", on_builder_inited)
    app.connect("env-get-outdated", on_env_get_outdated)
    app.connect("env-purge-doc", on_env_purge_doc)
    app.connect("env-merge-info", on_env_merge_info)
    app.connect("doctree-read", on_doctree_read)
    app.connect("html-page-context", drop_external_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 2}
