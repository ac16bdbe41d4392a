"""From `results/` to the notebooks and the book, in one small package:

    store   where records live and how they are read (the experiments, run records, quoted numbers, sweeps)
    tables  summaries over seeds, display strings, the paper's tables rebuilt beside ours, provenance and timing
    stats   the difference of two groups of seeds with its 95% interval (paired or Welch)
    claims  the paper's claims C1-C7, each a rule of checks with intervals and sanity gates, and the ledger
    plots   the figures (bars and lines over seeds) and `save_figure`

Everything public is importable from `skipvae.report` itself.
"""

from skipvae.config import LATENT_MODELS, MODELS
from skipvae.records import REPO_ROOT
from skipvae.report.claims import *  # noqa: F401,F403
from skipvae.report.claims import __all__ as _claims
from skipvae.report.plots import fixed_jitter, plot_bars, plot_history, plot_lines, save_figure
from skipvae.report.stats import Interval, difference, level
from skipvae.report.store import (EXPERIMENTS, MAIN_EXPERIMENTS, PAPER_NUMBERS, PROFILE_RANK, Experiment, all_runs,
                                  collect_sweep, experiment, flatten_record, load_partials, load_runs, load_theory,
                                  notebook_parameters, paper_elbo, paper_numbers, paper_tables, read_record,
                                  results_dir, results_root, run_status)
from skipvae.report.tables import (METRIC_LABELS, METRICS, SETTING_LABELS, TABLE_METRICS, beside_caption, best_profile,
                                   classification_table, digits_for, floor_row, pca_reference_runs,
                                   display_table, experiment_table, fmt, fmt_mean_std, information_kept,
                                   left_out_sentence, metric_columns, nll_subset_text, provenance_table, side_by_side,
                                   summary_table,
                                   summary_text, summary_value, theory_summary, theory_table, timing_table)

SKIP_PAIRS = (("vae", "skip-vae"), ("sa-vae", "skip-sa-vae"))  # (model, the same model with skips)

__all__ = [*_claims, "REPO_ROOT", "LATENT_MODELS", "MODELS", "SKIP_PAIRS", "fixed_jitter", "plot_bars", "plot_history",
           "plot_lines", "save_figure", "Interval", "difference", "level", "EXPERIMENTS", "MAIN_EXPERIMENTS",
           "PAPER_NUMBERS", "PROFILE_RANK", "Experiment", "all_runs", "collect_sweep", "experiment", "flatten_record",
           "load_partials", "load_runs", "load_theory", "notebook_parameters", "paper_elbo", "paper_numbers",
           "paper_tables", "read_record", "results_dir", "results_root", "run_status", "METRIC_LABELS", "METRICS",
           "SETTING_LABELS", "TABLE_METRICS", "beside_caption", "best_profile", "floor_row", "classification_table",
           "pca_reference_runs", "digits_for", "display_table", "experiment_table", "fmt", "fmt_mean_std",
           "information_kept", "left_out_sentence", "metric_columns", "nll_subset_text", "provenance_table",
           "side_by_side", "summary_table", "summary_text", "summary_value", "theory_summary", "theory_table",
           "timing_table"]
