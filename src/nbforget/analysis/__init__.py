"""Runs as tidy tables for the analysis notebooks, the core paper's numbers, and our runs checked
against its claims. The notebooks call it as ``from nbforget import analysis; analysis.table1(study)``;
every name below is importable from here.

Modules, each importing only those above it (and none of batch/, publish/, pages or cli):

    paper         the paper's numbers: PAPER, PAPER_SETTING, PAPER_TABLE1, PAPER_TABLE2,
                  PAPER_FIGURE2, PAPER_FIGURE3, PAPER_FIGURE4, PAPER_CLAIMS, PAPER_NAMES (from the registry),
                  PaperRow, paper_row(strategy, rank), paper_method_strategy(method),
                  paper_table1(), paper_table2()
    study         reading runs: RunRecord, load_run(run_dir), Study, load_study(config),
                  companion_runs(config, run), run_summary(run), summary_table(summary),
                  distinct_parameters(run), baseline_strategy() (VANILLA),
                  reference_strategy() (MULTI); one sweep point at a time: Study.points(),
                  Study.at(point), Study.first_point(), Study.sweep_text()
    tables        numbers for a Study: run_metrics, summarize_over_orders, vitality_scores,
                  table1, table2, average_over_time, order_matrices, performance_shift,
                  hop_tables, sequential_strategies, focus_strategy, matrix_regions
    prose         words: format_interval(mean, low, high, n), display_name(strategy),
                  describe_run(run), describe_matrix(run), describe_forgetting(summary, name)
    held_out      the held-out languages (scored at every step, never trained): held_out_summary(run),
                  held_out_scores(run), held_out_runs, held_out_table, held_out_over_time,
                  held_out_text(study), HELD_OUT_COLUMNS
    groups        per-language measures by script, family and vitality: language_measures,
                  MEASURES, SCRIPT_GROUPS, FAMILY_STRONG, FAMILY_POOR, paper_family_group,
                  group_summary, group_difference, group_table, measure_table, group_points,
                  difference_table, indo_european_table, group_counts_text, extreme_group
    versus_paper  side by side and checked: table1_comparison, table1_comparison_by_point,
                  table2_comparison,
                  ranking_agreement, paper_final_scores, scale_statement; claim_checks(study)
                  (one row per checkable claim of the paper: the paper, ours, agrees),
                  claim_table, claims_summary, agreement_label; SCRIPT_CONTRAST,
                  FAMILY_CONTRAST, contrast_table, contrast_text; the pages' sentences:
                  ranking_text, transfer_text, average_over_time_text, shift_text, hop_text,
                  vitality_comparison, vitality_text, vitality_transfer_text

Intervals are 95% percentile-bootstrap intervals over language orders
(`nbforget.metrics.bootstrap_ci`); seeds of one order are averaged first. Facts about strategies
(the paper's names, separate parameter copies, the baseline and the reference) come from
`nbforget.strategies.REGISTRY`; run folders are read through `nbforget.runs`.
"""
from __future__ import annotations

from nbforget.analysis.base_models import (MODEL_COLUMNS, MODEL_KEY, MODEL_SWEEP_EXAMPLE, model_axis,
                                           model_comparison, model_comparison_text, model_points,
                                           model_scale_statement, model_table, no_model_sweep_text)
from nbforget.analysis.groups import (FAMILY_POOR, FAMILY_STRONG, MEASURES, SCRIPT_GROUPS, difference_table,
                                      extreme_group, group_counts_text, group_difference, group_points,
                                      group_summary, group_table, indo_european_table, language_measures,
                                      measure_table, paper_family_group)
from nbforget.analysis.held_out import (HELD_OUT_COLUMNS, held_out_over_time, held_out_runs, held_out_scores,
                                        held_out_summary, held_out_table, held_out_text)
from nbforget.analysis.paper import (PAPER, PAPER_CLAIMS, PAPER_FIGURE2, PAPER_FIGURE3, PAPER_FIGURE4, PAPER_NAMES,
                                     PAPER_RANKS, PAPER_SETTING, PAPER_TABLE1, PAPER_TABLE2, PaperRow,
                                     paper_method_strategy, paper_row, paper_table1, paper_table2)
from nbforget.analysis.prose import (DATASETS, describe_forgetting, describe_matrix, describe_run, display_name,
                                     format_interval)
from nbforget.analysis.study import (SUMMARY_ROWS, RunRecord, Study, baseline_strategy, companion_runs,
                                     distinct_parameters, load_run, load_study, reference_strategy, run_summary,
                                     summary_table)
from nbforget.analysis.tables import (average_over_time, focus_strategy, hop_tables, matrix_regions,
                                      order_matrices, performance_shift, run_metrics, sequential_strategies,
                                      summarize_over_orders, table1, table2, vitality_bucket, vitality_scores)
from nbforget.analysis.versus_paper import (FAMILY_CONTRAST, MEASURE_LABELS, SCRIPT_CONTRAST, Contrast,
                                            agreement_label, average_over_time_text, claim_checks, claim_table,
                                            claims_summary, contrast_table, contrast_text, hop_text,
                                            paper_final_scores, ranking_agreement, ranking_text, scale_statement,
                                            shift_text, table1_comparison, table1_comparison_by_point,
                                            table2_comparison, transfer_text,
                                            vitality_comparison, vitality_text, vitality_transfer_text)

__all__ = [
    # paper
    "PAPER", "PAPER_SETTING", "PAPER_TABLE1", "PAPER_TABLE2", "PAPER_FIGURE2", "PAPER_FIGURE3", "PAPER_FIGURE4",
    "PAPER_CLAIMS",
    "PAPER_NAMES", "PAPER_RANKS", "PaperRow", "paper_row", "paper_method_strategy", "paper_table1", "paper_table2",
    # study
    "RunRecord", "Study", "load_run", "load_study", "companion_runs", "run_summary", "summary_table",
    "SUMMARY_ROWS", "distinct_parameters", "baseline_strategy", "reference_strategy",
    # tables
    "run_metrics", "summarize_over_orders", "vitality_bucket", "vitality_scores", "table1", "table2",
    "average_over_time", "order_matrices", "performance_shift", "hop_tables", "sequential_strategies",
    "focus_strategy", "matrix_regions",
    # prose
    "DATASETS", "format_interval", "display_name", "describe_run", "describe_matrix", "describe_forgetting",
    # held_out
    "HELD_OUT_COLUMNS", "held_out_summary", "held_out_scores", "held_out_runs", "held_out_table",
    "held_out_over_time", "held_out_text",
    # groups
    "MEASURES", "SCRIPT_GROUPS", "FAMILY_STRONG", "FAMILY_POOR", "language_measures", "paper_family_group",
    "group_summary", "group_difference", "group_table", "measure_table", "group_points", "difference_table",
    "indo_european_table", "group_counts_text", "extreme_group",
    # versus_paper
    "table1_comparison", "table1_comparison_by_point", "table2_comparison", "ranking_agreement",
    "paper_final_scores", "scale_statement",
    "Contrast", "SCRIPT_CONTRAST", "FAMILY_CONTRAST", "MEASURE_LABELS", "agreement_label", "claim_checks",
    "claim_table", "claims_summary", "contrast_table", "contrast_text", "ranking_text", "transfer_text",
    "average_over_time_text", "shift_text", "hop_text", "vitality_comparison", "vitality_text",
    "vitality_transfer_text",
    # base_models
    "MODEL_KEY", "MODEL_SWEEP_EXAMPLE", "MODEL_COLUMNS", "model_axis", "model_points", "model_comparison",
    "model_table", "model_comparison_text", "model_scale_statement", "no_model_sweep_text",
]
