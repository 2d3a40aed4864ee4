"""`logad evaluate` end to end: load the bundle, (re-)calibrate, score, measure, report."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from schemas.bundle import CALIBRATION, Calibration, read_bundle_templates, verify_bundle
from schemas.errors import ConfigError, DataError
from schemas.incidents import read_incidents
from trainer.calibration import ThresholdRule
from trainer.eval_plots import write_incident_plots, write_plots
from trainer.evaluate import (
    EvalReport,
    EventSeq,
    evaluate_scores,
    read_event_lists,
    run_windows,
    score_sets,
    split_sessions,
    throughput,
)
from trainer.evaluate_settings import EvaluateSettings
from trainer.gc_tuning import tuned_gc
from trainer.incident_sessions import judged_sessions, read_scored_files, read_timed_sessions
from trainer.incidents import IncidentReport, incident_report
from trainer.metrics import Population
from trainer.mining.matcher import TemplateMatcher
from trainer.recalibrate import (
    bundle_covers_events,
    bundle_val_fraction,
    recalibrate,
    timed_validation_slice,
)
from trainer.scoring.rules import missing_lookup
from trainer.scoring.scorer import WindowScorer
from trainer.scoring.strategy import ScoringStrategy
from trainer.settings import default_token_cache_dir
from trainer.tail_threshold import BudgetUnit, Method
from trainer.time_gaps import gaps_of

log = structlog.get_logger(__name__)


def passes_per_window(strategy: ScoringStrategy, lengths: Sequence[int]) -> float:
    """Mean forward passes per window: min(groups, events)."""
    n = np.asarray(lengths, dtype=np.int64)
    if n.size == 0:
        return 0.0
    return float(np.minimum(n, strategy.groups).mean())


def quantile_label(q: float) -> str:
    return f"p{q * 100:g}"


def threshold_source(cal: Calibration, by: str = "bundle calibration") -> str:
    """How the threshold of `cal` was chosen, in words."""
    n = f"{cal.n_windows} held-out normal windows"
    method = "a GPD tail (POT)" if cal.threshold_method == "pot" else "the quantile"
    if cal.budget is not None:
        b = cal.budget
        unit = "1,000 windows" if b.unit == "per_1000_windows" else "hour"
        text = f"{by}: {b.alerts:g} false alerts per {unit} by {method} of {n}"
    else:
        q = quantile_label(cal.threshold_quantile)
        text = f"{by}: {q if cal.threshold_method == 'quantile' else f'{q} by {method}'} of {n}"
    if cal.interval is not None:
        iv = cal.interval
        text += f" ({iv.confidence:.0%} bootstrap interval {iv.lower:.4g}..{iv.upper:.4g})"
    if cal.fallback:
        text += f"; fallback: {cal.fallback}"
    return text


def load_scorer(
    s: EvaluateSettings, bundle: Path, calibrate_on: Sequence[Path] | None
) -> tuple[WindowScorer, Calibration, str]:
    """The bundle's scorer at its threshold (re-calibrated when the settings override the
    strategy or the quantile), its calibration, and how the threshold was chosen."""
    budget = s.scoring.max_batch_tokens
    key = s.signing.bundle_key
    scorer = WindowScorer.from_bundle(
        bundle, s.scoring.device, max_batch_tokens=budget, bundle_key=key
    )
    manifest = verify_bundle(bundle, key)
    cal = Calibration.from_json((bundle / CALIBRATION).read_bytes())
    source = threshold_source(cal)
    if s.recalibrates:
        assert calibrate_on  # the CLI checked
        try:
            strategy = dataclasses.replace(scorer.strategy, **s.strategy_overrides())
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad scoring strategy override: {e}") from None
        q = s.threshold_quantile if s.threshold_quantile is not None else cal.threshold_quantile
        vf = s.val_fraction if s.val_fraction is not None else bundle_val_fraction(manifest)
        expected = manifest.metrics.get("val_windows")
        val, types = timed_validation_slice(
            calibrate_on,
            scorer.vocab,
            vf,
            s.token_cache_dir or default_token_cache_dir(),
            expected if isinstance(expected, int) else None,
            time_buckets=scorer.time_buckets,
            covers_events=bundle_covers_events(manifest),
        )
        if why := missing_lookup(strategy, scorer.known):
            raise ConfigError(f"{bundle}: {why}")
        cal = recalibrate(
            scorer.model,
            val,
            strategy,
            q,
            scorer.device,
            budget,
            scorer.known,
            types,
            recalibration_rule(s, cal),
        )
        scorer.strategy, scorer.threshold = strategy, cal.threshold
        source = threshold_source(cal, "re-calibrated on the training data's validation slice")
    return scorer, cal, source


def recalibration_rule(s: EvaluateSettings, cal: Calibration) -> ThresholdRule:
    """Pure: the bundle's threshold rule (`cal`'s) with the settings' overrides. A budget or
    a quantile given replaces the bundle's budget; the method is the override's, else the
    bundle's."""
    method: Method = s.threshold_method or ("pot" if cal.threshold_method == "pot" else "quantile")
    if s.alert_budget is not None:
        return ThresholdRule(method=method, budget=s.alert_budget)
    if s.threshold_quantile is not None or cal.budget is None:
        return ThresholdRule(method=method)
    b = cal.budget
    unit: BudgetUnit = "per_hour" if b.unit == "per_hour" else "per_1000_windows"
    return ThresholdRule(
        method=method, budget=b.alerts, unit=unit, windows_per_hour=b.windows_per_hour
    )


def evaluate_bundle(
    s: EvaluateSettings,
    bundle: Path,
    normal_files: Sequence[Path],
    abnormal_files: Sequence[Path],
    calibrate_on: Sequence[Path] | None,
    report_dir: Path | None,
) -> tuple[EvalReport, list[Path]]:
    scorer, cal, source = load_scorer(s, bundle, calibrate_on)

    # One matcher for both sets: a new template gets one id wherever it comes.
    templates = read_bundle_templates(bundle)
    matcher = TemplateMatcher(templates) if templates is not None else None
    normal = read_event_lists(normal_files, matcher)
    abnormal = read_event_lists(abnormal_files, matcher)

    def window_scores(batch: Sequence[Sequence[str]]) -> list[float]:
        # Sessions read with their gaps carry them (`TimedEvents`); a time-blind bundle
        # does not look.
        return [r.score for r in scorer.score_events(batch, None, [gaps_of(w) for w in batch])]

    with tuned_gc():  # the model is loaded: see trainer/gc_tuning.py
        scored = score_sets(window_scores, normal, abnormal, chunk=s.chunk_windows)
    pop = s.population
    population = (
        Population(pop.population_normals, pop.population_abnormals)
        if pop.population_normals is not None and pop.population_abnormals is not None
        else None
    )
    lengths = [len(w) for w in split_sessions([*normal, *abnormal]).windows]
    name = "full/max"  # every event masked once, the window's largest NLL
    extras = [
        label
        for label, on in (
            (
                "known mixes in known steps" if scorer.strategy.known_pairs else "known mixes",
                scorer.strategy.known_mixes,
            ),
            ("count ceilings", scorer.strategy.count_ceilings),
            ("known ends", scorer.strategy.known_ends),
        )
        if on
    ]
    report = evaluate_scores(
        ", ".join([name, *extras]),
        scored,
        scorer.threshold,
        source,
        passes_per_window(scorer.strategy, lengths),
        population,
        details={
            "model": str(bundle),
            "model_version": scorer.model_version,
            "strategy": scorer.strategy.to_dict(),
            "calibration_quantiles": cal.quantiles,
            "end_marker": scorer.end_marker,
            "normal_files": [str(p) for p in normal_files],
            "abnormal_files": [str(p) for p in abnormal_files],
            "device": str(scorer.device),
        },
    )
    paths: list[Path] = []
    if report_dir is not None:
        paths = write_plots(
            report_dir, scored.normal, scored.abnormal, report.detection, report.name
        )
    log.info(
        "evaluated",
        f1=report.detection.f1,
        fpr=report.detection.fpr,
        recall=report.detection.recall,
        auroc=report.detection.auroc,
    )
    return report, paths


def evaluate_incidents(
    s: EvaluateSettings,
    incidents_file: Path,
    *,
    bundle: Path | None,
    session_files: Sequence[Path],
    scores_files: Sequence[Path],
    calibrate_on: Sequence[Path] | None,
    report_dir: Path | None,
) -> tuple[IncidentReport, dict[str, Any], list[Path]]:
    """Incident-level figures (trainer/incidents.py): the sessions of `session_files` scored
    with the bundle at its threshold, or the verdicts already in `scores_files`. Returns the
    report, what describes the run (for report.json), and the plots written."""
    incidents = read_incidents(incidents_file, round(s.fault_window_s * 1000))
    if scores_files:
        sessions, thresholds = read_scored_files(scores_files)
        threshold = next(iter(thresholds)) if len(thresholds) == 1 else None
        details: dict[str, Any] = {
            "scores_files": [str(p) for p in scores_files],
            "threshold_source": "the verdicts in the scores files",
            "thresholds": sorted(thresholds),
        }
    else:
        assert bundle is not None  # the CLI checked
        scorer, cal, source = load_scorer(s, bundle, calibrate_on)
        templates = read_bundle_templates(bundle)
        matcher = TemplateMatcher(templates) if templates is not None else None
        timed = read_timed_sessions(session_files, matcher)

        def window_scores(batch: list[EventSeq]) -> list[float]:
            gaps = [gaps_of(w) for w in batch]
            return [r.score for r in scorer.score_events(batch, None, gaps)]

        with tuned_gc():
            run = run_windows(window_scores, [t.events for t in timed], chunk=s.chunk_windows)
        threshold = scorer.threshold
        sessions = judged_sessions(timed, run.session_scores(float), threshold)
        details = {
            "model": str(bundle),
            "model_version": scorer.model_version,
            "strategy": scorer.strategy.to_dict(),
            "threshold": threshold,
            "threshold_source": source,
            "threshold_method": cal.threshold_method,
            "session_files": [str(p) for p in session_files],
            "throughput": throughput(run).to_dict(),
        }
    if not sessions:
        raise DataError("no sessions to evaluate")
    report = incident_report(sessions, incidents)
    details["incidents_file"] = str(incidents_file)
    details["fault_window_s"] = s.fault_window_s
    paths: list[Path] = []
    if report_dir is not None:
        paths = write_incident_plots(report_dir, sessions, report, threshold)
    log.info(
        "incidents_evaluated",
        incidents=len(incidents),
        detected=report.detected,
        false_alerts=report.false_alerts,
        false_alerts_per_hour=report.false_alerts_per_hour,
        false_alerts_per_1000=report.false_alerts_per_1000,
    )
    return report, details, paths
