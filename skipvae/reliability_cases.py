"""The reliability cases of issue 28 (a fault, crash and bad-input run), by area: what each case does to the code
and what the code must do, as plain data.

Each case names the test that checks it and, where the test is table-driven, its case table (a module-level list
or dict of the test file). tests/test_reliability.py checks that every test and table named here exists and that
every case table of that file is described here; the book's Reproducibility page shows them (the
reliability-table directive), counting each table's rows in the test file's source (nothing is imported from
tests/).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

TESTS = Path(__file__).resolve().parent.parent / "tests"


class Case(NamedTuple):
    area: str
    case: str  # what is done to the code
    expected: str  # what the code does
    test: str  # the test that checks it: "<file>::<function>", the file in tests/
    table: str | None = None  # its case table in that file, None for a single case


AREAS = ("wrong results and stray writes", "damaged files and resources", "bad inputs", "signals and processes",
         "sweeps on a cluster", "small ones")

R, B, S, F = "test_reliability.py", "test_bad_inputs.py", "test_sweep.py", "test_faults.py"
CASES = [
    Case(AREAS[0], "any checkpoint written", "carries its run's key and name",
         f"{R}::test_every_checkpoint_names_its_run"),
    Case(AREAS[0], "another run's last.pt or best.pt in a run folder",
         "refused in one line naming the file and both runs; the file is kept",
         f"{R}::test_another_runs_checkpoint_is_refused_in_one_line", "OWNER_CASES"),
    Case(AREAS[0], "another run's best.pt in a fresh folder", "refused in one line",
         f"{R}::test_another_runs_best_checkpoint_is_refused_in_a_fresh_folder"),
    Case(AREAS[0], "a sweep name that leaves --out (../../x, an absolute path, a/b, ...)",
         "refused in one line asking for a plain name", f"{R}::test_sweep_names_that_leave_the_out_folder_are_refused",
         "NAME_CASES"),
    Case(AREAS[0], "collect of a record that does not belong (a name with ../, another run's name, another "
                   "dataset, an unknown profile, a missing or empty folder)",
         "exit 2, one line; nothing written", f"{R}::test_collect_refuses_what_does_not_belong_in_the_experiment",
         "COLLECT_CASES"),
    Case(AREAS[0], "a NaN or an infinity in a validation metric",
         "the run stops as on a non-finite loss; no checkpoint of that epoch",
         f"{R}::test_a_nonfinite_validation_number_stops_the_run", "NONFINITE_CASES"),
    Case(AREAS[0], "a NaN or an infinity in a JSON file to write", "refused naming where it is; nothing written",
         f"{R}::test_json_files_are_strict", "JSON_CASES"),
    Case(AREAS[1], "last.pt damaged (bit flips, zeroed, truncated, empty, not a checkpoint, wrong contents)",
         "one line, and training resumes from last.prev.pt",
         f"{R}::test_a_damaged_last_checkpoint_falls_back_to_the_previous_one", "DAMAGE_CASES"),
    Case(AREAS[1], "last.pt and last.prev.pt both damaged", "starts over from epoch 0, saying so",
         f"{R}::test_both_checkpoints_damaged_start_over_from_the_initial_model"),
    Case(AREAS[1], "a bit flip in best.pt", "reported (the checksum), never used",
         f"{R}::test_a_bit_flip_in_best_checkpoint_is_reported_not_used"),
    Case(AREAS[1], "a full disk while a record, a file or a checkpoint is written",
         "one line naming the folder; no temporary file left", f"{R}::test_a_full_disk_is_one_line_naming_the_folder",
         "DISK_FULL_CASES"),
    Case(AREAS[1], "a full disk during training", "exit 2, one line",
         f"{R}::test_a_full_disk_during_training_exits_2_in_one_line"),
    Case(AREAS[1], "a hostile sweep file (broken YAML, a python tag, binary, an empty grid, recursive aliases)",
         "exit 2, one line", f"{R}::test_hostile_sweep_files_are_refused_in_one_line", "YAML_CASES"),
    Case(AREAS[1], "a 1 kB 'billion laughs' sweep file", "refused at once, even with --dry-run",
         f"{R}::test_a_billion_laughs_sweep_file_is_refused_at_once"),
    Case(AREAS[2], "an impossible command-line value (sizes beyond the split, negative counts, --out naming a file, "
                   "...)", "exit 2, one line naming the parameter, the value and what is allowed, before any data "
                           "loads", f"{B}::test_cli_refuses", "CLI_CASES"),
    Case(AREAS[2], "evaluate on another model's checkpoint, or with --out naming a folder",
         "refused in one line before any data loads", f"{B}::test_evaluate_refuses_before_the_data_loads"),
    Case(AREAS[2], "an impossible value in a sweep file", "refused before anything runs",
         f"{B}::test_sweep_file_refuses", "SWEEP_CASES"),
    Case(AREAS[3], "SIGTERM or Ctrl-C during training (once or twice)",
         "stops at the end of the epoch, last.pt written, with one line saying how to resume; a second Ctrl-C "
         "stops at once", f"{R}::test_a_signal_stops_training_at_the_next_safe_point", "SIGNAL_CASES"),
    Case(AREAS[3], "the sweep driver killed (kill -9)", "its workers stop too; a rerun resumes each run",
         f"{R}::test_killing_the_sweep_driver_stops_its_workers_and_a_rerun_resumes"),
    Case(AREAS[3], "Ctrl-C or SIGTERM to a parallel sweep", "each running run stops at a checkpoint, no new run starts",
         f"{R}::test_a_signal_stops_a_parallel_sweep_at_checkpoints", "SWEEP_SIGNAL_CASES"),
    Case(AREAS[4], "the length of a piece", "a Slurm job's time limit (--slurm timeout_min, else the partition's, "
                                            "else 4 h) less a margin",
         f"{S}::test_a_slurm_piece_is_its_time_limit_less_a_margin", "PLAN_CASES"),
    Case(AREAS[4], "Slurm's time limits as sinfo writes them", "read in minutes; unlimited is unknown",
         f"{S}::test_slurm_time_limits", "SLURM_TIMES"),
    Case(AREAS[4], "a piece longer than its job's time limit", "refused in one line",
         f"{S}::test_impossible_job_plans_are_refused_in_one_line", "PLAN_REFUSALS"),
    Case(AREAS[4], "a local sweep without --piece-seconds", "one piece per run, no limit",
         f"{S}::test_local_pieces_have_no_limit_by_default"),
    Case(AREAS[4], "a sweep as a job array (submitit's local executor): pieces at their budget, one run failing",
         "each piece requeued by submitit's checkpointing and resumed from last.pt; the failure reported in one "
         "line while the others finish; a rerun resumes the failed run",
         f"{S}::test_a_job_array_requeues_its_pieces_reports_a_failure_and_a_rerun_resumes"),
    Case(AREAS[4], "a rerun while an earlier driver's jobs are queued or running", "they are reported, not resubmitted",
         f"{S}::test_a_rerun_leaves_alone_the_runs_whose_job_is_still_active"),
    Case(AREAS[4], "a failed job's traceback", "one line: the exception and its message",
         f"{S}::test_a_failed_job_is_one_line", "FAILURES"),
    Case(AREAS[4], "--executor slurm on a machine without Slurm", "refused in one line",
         f"{S}::test_slurm_where_there_is_none_is_one_line"),
    Case(AREAS[4], "a sweep with failed or paused runs", "exit 1, one line naming each (where its error is, the "
                                                         "epoch it paused at), saying how to resume",
         f"{S}::test_a_sweep_with_failed_or_paused_runs_exits_1_naming_them_and_saying_how_to_resume", "SUMMARIES"),
    Case(AREAS[4], "the jobs of a job array ending finished, paused at their budget without a requeue, failed, "
                   "without a result", "each reported as what it is (paused at its epoch, not finished)",
         f"{S}::test_the_driver_reports_each_job_as_finished_paused_at_its_epoch_or_failed"),
    Case(AREAS[4], "a run failing in a parallel sweep (--jobs 2)",
         "reported in one line when it fails, its traceback in its run folder; the others train; exit 1 naming it; "
         "a rerun trains it alone", f"{F}::test_a_failed_run_of_a_parallel_sweep_is_reported_at_once_and_the_others_"
                                     f"train"),
    Case(AREAS[4], "--profile paper on a machine without a GPU (train, sweep)",
         "the budget model's estimate, and exit 2 in one line unless --confirm-long",
         f"{B}::test_the_paper_profile_without_a_gpu_needs_confirmation", "PAPER_CASES"),
    Case(AREAS[4], "the estimate of a paper-profile run", "from the budget model, else none",
         f"{B}::test_the_refusal_gives_the_budget_models_estimate", "ESTIMATES"),
    Case(AREAS[4], "every epoch, with or without a progress bar", "one log line (epoch, updates, losses, seconds) "
                                                                  "on stderr and in train.log; stdout holds the result",
         f"{R}::test_stdout_is_the_result_and_each_epoch_logs_one_line"),
    Case(AREAS[5], "records and checkpoints on shared storage", "written with the umask's permissions",
         f"{R}::test_written_files_respect_the_umask"),
    Case(AREAS[5], "--version", "the package's version on stdout", f"{R}::test_version"),
]


def module_tables(path: Path) -> dict[str, int]:
    """{name: number of entries} of the module-level list, tuple and dict literals of a Python file."""
    tables = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple, ast.Dict)):
            size = len(node.value.keys) if isinstance(node.value, ast.Dict) else len(node.value.elts)
            tables.update({t.id: size for t in node.targets if isinstance(t, ast.Name)})
    return tables


def module_functions(path: Path) -> set[str]:
    """The names of the module-level functions of a Python file."""
    return {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}


def case_count(case: Case, tests: Path = TESTS) -> int | None:
    """The rows of a case's table in its test file; None without a table or without the file."""
    path = tests / case.test.split("::")[0]
    if case.table is None or not path.is_file():
        return None
    return module_tables(path).get(case.table)


def table_rows(tests: Path = TESTS) -> list[dict]:
    """One row per case, in the order of AREAS: area, case, expected behaviour, and the test (with the rows of its
    case table)."""
    rows = []
    for case in sorted(CASES, key=lambda c: AREAS.index(c.area)):
        count = case_count(case, tests)
        checked = case.test.split("::")[1] + ("" if count is None else f" ({count} case{'s' * (count != 1)})")
        rows.append({"area": case.area, "case": case.case, "expected behaviour": case.expected,
                     "checked by": checked})
    return rows
