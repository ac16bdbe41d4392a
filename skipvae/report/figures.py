"""The book's figures of an experiment, drawn from its records (the extension in book/_ext only saves and places
them): what each `:plot:` draws, of which runs, with a caption generated from what it drew.

    drawn = experiment_figure("latent_dim", "latent_dim")   # None before any run
    drawn.fig, drawn.caption, drawn.profile, drawn.seeds
"""

from __future__ import annotations

from dataclasses import dataclass

from skipvae.report import plots
from skipvae.report.store import load_partials, load_runs
from skipvae.report.tables import best_profile

PLOTS = ("summary", "latent_dim", "dec_layers", "mi_nll")


@dataclass
class Drawn:
    fig: object  # a matplotlib Figure
    caption: str  # what the figure draws, generated from its data
    profile: str
    seeds: list[int]
    n_runs: int

    def provenance_text(self) -> str:
        return f"Profile: {self.profile}; seeds {', '.join(map(str, self.seeds))} ({self.n_runs} runs)."


def experiment_figure(name: str, plot: str = "summary", metrics: list[str] | None = None) -> Drawn | None:
    """Figure `plot` of the experiment's runs at its largest profile: summary (bars per model), latent_dim or
    dec_layers (lines against it; one row of panels per dataset when there are several), mi_nll (the remedies' MI
    against NLL); None while the experiment has no run. ValueError for an unknown plot."""
    if plot not in PLOTS:
        raise ValueError(f":plot: {plot!r} is unknown; use {', '.join(PLOTS)} (or partial)")
    df = load_runs(name)
    profile = best_profile(df) or (df["profile"].iloc[0] if len(df) else None)
    if profile is None:
        return None
    runs = df[df["profile"] == profile]
    if plot == "summary":
        runs, hue = plots.bar_hue(runs, "model", None)
        fig = plots.plot_bars(runs, metrics or ["kl", "mi", "au_0.01"], x="model", hue=hue)
        caption = plots.bars_caption(runs, hue)
    elif plot == "mi_nll":
        from skipvae.report import remedies

        fig, caption = remedies.plot_mi_nll(runs)
    else:
        several = "dataset" if runs["dataset"].nunique() > 1 else None
        runs, hue = plots.line_hue(runs, plot, "model", several)
        fig = plots.plot_lines(runs, plot, metrics or ["mi", "au_0.01", "nll"], hue=hue, row=several)
        caption = plots.lines_caption(runs, hue, several)
    return Drawn(fig, caption, profile, sorted(int(s) for s in runs["seed"].unique()), len(runs))


def partial_figure(name: str) -> Drawn | None:
    """The per-epoch curves so far of the experiment's runs still training (their partial records), one line per
    run; None when none is training."""
    runs = load_partials(name)
    if runs.empty:
        return None
    runs = runs.assign(run=runs["model"] + ", " + runs["dec_layers"].map(lambda n: f"{n} layers")
                       + ", seed " + runs["seed"].astype(str))
    fig = plots.plot_history(runs, hue="run")
    done = "; ".join(f"{r.run}: {r.epochs_completed} of {r.planned_epochs} epochs"
                     for r in runs.itertuples(index=False))
    caption = ("Unfinished runs, one line per run (colour: model, layers, seed): validation KL, MI and active units "
               f"(0.01) after each epoch so far ({done}).")
    return Drawn(fig, caption, ", ".join(sorted(runs["profile"].unique())),
                 sorted(int(s) for s in runs["seed"].unique()), len(runs))
