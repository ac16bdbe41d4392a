"""The figures: mean over seeds with the standard deviation and the single seeds, as bars (`plot_bars`) or lines
against a setting (`plot_lines`); `save_figure` writes a figure and its caption file, byte-identical when nothing
changed."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from skipvae.records import atomic_write_bytes, git_commit
from skipvae.report.store import results_dir
from skipvae.report.tables import METRIC_LABELS, SETTING_LABELS


def save_figure(fig, experiment: str, profile: str, name: str, caption: str, seeds=()) -> Path:
    """Write `fig` to <results_dir>/figures/<name>.png and {caption, profile, seeds, git_commit} to <name>.json
    (the book's caption and the code that drew it), both atomically; returns the PNG's path.

    The PNG has no timestamp or software tag, and a figure whose image and caption are unchanged is not rewritten
    (its git_commit stays the commit that first drew it), so a re-execution that changes nothing changes no file."""
    folder = results_dir(experiment, profile) / "figures"
    png, caption_path = folder / f"{name}.png", folder / f"{name}.json"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    meta = {"caption": caption, "profile": profile, "seeds": sorted(int(s) for s in seeds)}
    if png.exists() and caption_path.exists() and png.read_bytes() == buf.getvalue():
        try:
            old = json.loads(caption_path.read_text())
        except ValueError:
            old = {}
        if {k: v for k, v in old.items() if k != "git_commit"} == meta:
            return png
    atomic_write_bytes(png, buf.getvalue())
    meta["git_commit"] = git_commit()
    atomic_write_bytes(caption_path, (json.dumps(meta, indent=1) + "\n").encode())
    return png


@contextlib.contextmanager
def fixed_jitter(seed: int = 0):
    """Seed numpy's global generator for the block (seaborn's stripplot jitters the dots with it), then restore it:
    the same data gives the same figure, byte for byte."""
    import numpy as np

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


CONFIG = "config"  # the column of config_labels, a hue that never pools two configs into one bar or line


def config_labels(runs, keys=("model",)):
    """One label per run naming the config fields that vary between runs which agree on `keys` or that
    tables.varying_config_columns adds (e.g. 'decoder pixelcnn, latent dim 20'); '' for all when every run of a
    `keys` value has one config. Grouping by `keys` and this label never averages over different configs."""
    import pandas as pd

    from skipvae.report.tables import varying_config_columns

    present = [k for k in keys if k in runs.columns]
    fields = [k for k in ("dataset", "arch", "latent_dim", "dec_layers") if k in runs.columns and k not in present
              and runs[k].nunique(dropna=False) > 1]
    fields += [k for k in varying_config_columns(runs, present + fields) if k not in fields]
    if not fields:
        return pd.Series("", index=runs.index)
    return runs[fields].apply(lambda r: ", ".join(f"{SETTING_LABELS.get(k, k)} {r[k]}" for k in fields), axis=1)


def bar_hue(runs, x: str, hue: str | None):
    """(runs, hue) for plot_bars: with no `hue`, runs of different configs at one `x` are told apart by colour
    (their config_labels, column CONFIG)."""
    if hue is None and config_labels(runs, (x,)).nunique() > 1:
        return runs.assign(**{CONFIG: config_labels(runs, (x,))}), CONFIG
    return runs, hue


def line_hue(runs, x: str, hue: str, row: str | None = None):
    """(runs, hue) for plot_lines: runs that differ in a config field besides `hue`, `x` and `row` get lines of
    their own, labelled '<hue value> (<config_labels>)' in column CONFIG."""
    labels = config_labels(runs, tuple(k for k in (hue, x, row) if k))
    if labels.nunique() > 1:
        return runs.assign(**{CONFIG: runs[hue].astype(str) + " (" + labels + ")"}), CONFIG
    return runs, hue


def bars_caption(runs, hue: str | None) -> str:
    """What plot_bars draws, from the data it draws."""
    colours = f" Colour: {SETTING_LABELS.get(hue, hue)} ({'; '.join(map(str, runs[hue].unique()))})." if hue else ""
    return f"Bars: mean over seeds with the standard deviation; dots: single seeds.{colours}"


def lines_caption(runs, hue: str, row: str | None = None) -> str:
    """What plot_lines draws, from the data it draws."""
    rows = f" One row of panels per {SETTING_LABELS.get(row, row)}." if row else ""
    return (f"Lines: mean over seeds with the standard deviation as error bars; faint dots: single seeds. Colour and "
            f"marker: {SETTING_LABELS.get(hue, hue)} ({'; '.join(map(str, runs[hue].unique()))}), solid lines."
            + rows)


def plot_bars(runs, metrics, x: str = "model", hue: str | None = None):
    """One panel per metric: bars = mean over seeds with the standard deviation, dots = the single seeds. With no
    `hue`, runs of different configs at one `x` get one bar each, coloured by their config_labels."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    runs, hue = bar_hue(runs, x, hue)

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        sns.barplot(data=runs, x=x, y=m, hue=hue, errorbar="sd", capsize=0.1, alpha=0.8, ax=ax)
        dots = dict(hue=hue, dodge=True, palette="dark:black") if hue else dict(color="black")
        with fixed_jitter():
            sns.stripplot(data=runs, x=x, y=m, size=3, legend=False, ax=ax, **dots)
        ax.set(title=METRIC_LABELS.get(m, m), xlabel="", ylabel="")
        ax.tick_params(axis="x", rotation=30)
        if ax is not axes[0][0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def plot_lines(runs, x: str, metrics, hue: str = "model", row: str | None = None):
    """One panel per metric against `x` (e.g. latent_dim, dec_layers): lines = mean over seeds with the standard
    deviation as error bars, dots = the single seeds; one row of panels per value of `row`. Runs that differ in
    another config field get lines of their own (the hue becomes `hue` and their config_labels)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    runs, hue = line_hue(runs, x, hue, row)

    rows = list(runs[row].unique()) if row else [None]
    fig, axes = plt.subplots(len(rows), len(metrics), figsize=(3.6 * len(metrics), 3.2 * len(rows)), squeeze=False)
    for r, value in enumerate(rows):
        sub = runs[runs[row] == value] if row else runs
        for ax, m in zip(axes[r], metrics):
            sns.lineplot(data=sub, x=x, y=m, hue=hue, style=hue, markers=True, dashes=False, errorbar="sd",
                         err_style="bars", ax=ax)
            sns.scatterplot(data=sub, x=x, y=m, hue=hue, alpha=0.35, s=12, legend=False, ax=ax)
            title = METRIC_LABELS.get(m, m) + (f" ({value})" if row else "")
            ax.set(title=title, xlabel=SETTING_LABELS.get(x, x), ylabel="")
            if ax is not axes[0][0] and ax.get_legend() is not None:
                ax.get_legend().remove()
    fig.tight_layout()
    return fig


def plot_history(runs, metrics=("val_kl", "val_mi", "val_au_0.01"), hue: str = "model", marks: dict | None = None,
                 at: dict | None = None):
    """Collapse over training: each metric of the records' per-epoch history (validation KL, MI, AU) against the
    optimizer updates (epochs for records written before updates were counted), one line per run (colour: `hue`);
    `marks` {hue value: {metric: value}} draws the paper's final values as dotted horizontal lines, `at`
    {label: x} a dashed vertical line at each x (e.g. where the cpu profile's runs stop)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows = [{"run": r["name"], hue: r[hue], "seed": r["seed"], **h} for _, r in runs.iterrows()
            for h in (r["history"] if isinstance(r.get("history"), list) else [])]
    frame = pd.DataFrame(rows)
    x = "updates" if "updates" in frame.columns and frame["updates"].notna().all() else "epoch"  # older records
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3.3), squeeze=False)
    palette = dict(zip(sorted(runs[hue].unique()), sns.color_palette()))
    for ax, m in zip(axes[0], metrics):
        if not frame.empty and m in frame.columns and frame[m].notna().any():
            sns.lineplot(data=frame, x=x, y=m, hue=hue, units="run", estimator=None, marker="o",
                         palette=palette, ax=ax, legend=ax is axes[0][0])
        for value, paper in (marks or {}).items():
            key = m.removeprefix("val_")
            if key in paper and value in palette:
                ax.axhline(paper[key], ls=":", color=palette[value], lw=1)
        for label, x_at in (at or {}).items():
            ax.set_xlim(left=0)
            ax.axvline(x_at, ls="--", color="grey", lw=1)
            ax.annotate(label, (x_at, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                        textcoords="offset points", va="top", fontsize=8, color="grey")
        ax.set(title=METRIC_LABELS.get(m.removeprefix("val_"), m), xlabel=x, ylabel="")
    fig.tight_layout()
    return fig


MARKERS = ("o", "^", "s", "D", "v", "X")  # marker shapes in style order, named in the caption by MARKER_NAMES
MARKER_NAMES = {"o": "circle", "^": "triangle", "s": "square", "D": "diamond", "v": "downward triangle", "X": "cross"}


def plot_points(runs, x: str, y: str, hue: str, style: str, panel: str | None = None, hue_order=None,
                style_order=None, panel_order=None):
    """One point per run: `y` against `x`, colour `hue`, marker shape `style` (MARKERS in style_order), one panel
    per value of `panel` (each with its own axes: the units may differ), one legend beside the last panel."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    hue_order = list(hue_order or runs[hue].unique())
    style_order = list(style_order or runs[style].unique())
    panels = list(panel_order or runs[panel].unique()) if panel else [None]
    palette = dict(zip(hue_order, sns.color_palette(n_colors=len(hue_order))))
    markers = dict(zip(style_order, MARKERS))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.8, 3.6), squeeze=False)
    for ax, value in zip(axes[0], panels):
        sub = runs[runs[panel] == value] if panel else runs
        sns.scatterplot(data=sub, x=x, y=y, hue=hue, style=style, hue_order=hue_order, style_order=style_order,
                        palette=palette, markers=markers, s=46, alpha=0.85, ax=ax, legend=ax is axes[0][-1])
        ax.set(title=str(value) if panel else "", xlabel=METRIC_LABELS.get(x, x), ylabel=METRIC_LABELS.get(y, y))
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def points_caption(runs, x: str, y: str, hue: str, style: str, panel: str | None = None, hue_order=None,
                   style_order=None, panel_order=None) -> str:
    """What plot_points draws, from the data it draws."""
    hue_order = list(hue_order or runs[hue].unique())
    style_order = list(style_order or runs[style].unique())
    label = lambda k: SETTING_LABELS.get(k, METRIC_LABELS.get(k, k))  # noqa: E731
    shapes = "; ".join(f"{v}: {MARKER_NAMES[m]}" for v, m in zip(style_order, MARKERS))
    panels = ""
    if panel:
        counts = runs.groupby(panel).size()
        order = list(panel_order or counts.index)
        panels = (f" One panel per {label(panel)}, each with its own axes: "
                  + "; ".join(f"{v} ({counts.get(v, 0)} runs)" for v in order) + ".")
    return (f"One point per run ({len(runs)} runs): {label(y)} against {label(x)}.{panels} Colour: {label(hue)} "
            f"({'; '.join(map(str, hue_order))}); marker: {label(style)} ({shapes}).")
