"""Benchmark aggregates over seeds and scenarios, with rliable's statistics.

Per scenario, every policy's **score** is its mean per-patient return on the test cohort
(the default ``"qaly"`` reward; with the benchmark's untreated follow-up after the horizon
when it ran one, :attr:`EvaluationResult.score_returns
<oncogym.agents.evaluate.EvaluationResult.score_returns>`), and its **normalised score**

    (score − best protocol) / (ceiling − best protocol)

so that 0 is the best labelled protocol of that scenario (on the same test patients) and
1 the ceiling (the oracle planner, ``mpc_oracle``: it plans on the true patient, which no
clinic can; it is a strong planner, not a proven bound — the tables say where anything
beats it).  The no-treatment anchor and the best open-loop schedule are reported on the
same scale.

Aggregates follow Agarwal et al., "Deep RL at the edge of the statistical precipice"
(NeurIPS 2021), with their library **rliable**: for each algorithm a ``(runs, scenarios)``
matrix of normalised scores (one run per training seed), the interquartile mean (IQM) and
the mean with 95 % stratified-bootstrap confidence intervals, performance profiles (the
share of runs × scenarios above each normalised score), and the probability of improvement
of each algorithm over the best open-loop schedule.  No best-of-seeds figure is reported.
The bootstrap is seeded, but rliable 1.2 on arch 7 does not reproduce it draw for draw: a
rerun gives the same point estimates and CI bounds that may move (by up to ~0.1 on the
benchmark's normalised scores between two reports of the same results).  The
closed-loop-minus-open-loop table (:func:`over_open_loop`) uses numpy's seeded generator
and is reproduced exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import EvaluationResult

CEILING = "mpc_oracle"
"""The ceiling anchor's policy name (normalised score 1)."""
OPEN_LOOP = "open_loop"
"""The best open-loop schedule's policy name."""
AGGREGATE_FILES = (
    "aggregate.json",
    "aggregate.md",
    "performance_profiles.png",
    "scenario_scores.png",
    "pareto.png",
)
"""What :func:`write_aggregate` writes."""
_RUN = re.compile(r"^(?P<algo>.+)_s(?P<seed>\d+)$")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """rliable 1.2 seeds arch's bootstrap with a ``RandomState`` (the reproducible way it
    offers), which arch >= 7 reports as a FutureWarning on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arch\.")
        yield


def trained_run(name: str) -> tuple[str, int] | None:
    """``(algo, seed)`` of a trained run's label ``<algo>_s<seed>``, else ``None``."""
    m = _RUN.match(name)
    return (m["algo"], int(m["seed"])) if m else None


def scenario_scores(
    results: Sequence[EvaluationResult], protocols: Sequence[str]
) -> dict[str, Any]:
    """Scores, anchors and normalised scores of one scenario's evaluations.

    :param results: every policy evaluated on the scenario's test cohort
    :param protocols: the scenario's labelled protocols (the 0 anchor is the best of them)
    :raises ValueError: when the ceiling or every protocol is missing, or the ceiling does
        not score above the best protocol (the scale would be undefined)
    """
    score = {r.policy: float(np.mean(r.score_returns)) for r in results}
    have = [p for p in protocols if p in score]
    if not have:
        raise ValueError(f"aggregate: no protocol among the results ({', '.join(score)})")
    if CEILING not in score:
        raise ValueError(f"aggregate: the ceiling {CEILING!r} is missing from the results")
    best = max(have, key=lambda p: score[p])
    lo, hi = score[best], score[CEILING]
    if not hi > lo:
        raise ValueError(
            f"aggregate: the ceiling ({hi:.4f}) does not score above the best protocol "
            f"{best} ({lo:.4f}); the normalised scale is undefined"
        )
    norm = {k: (v - lo) / (hi - lo) for k, v in score.items()}
    return {
        "score": score,
        "normalised": norm,
        "best_protocol": best,
        "best_protocol_score": lo,
        "ceiling_score": hi,
        "above_ceiling": sorted(k for k, v in score.items() if v > hi and k != CEILING),
    }


def score_matrices(
    per_scenario: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, np.ndarray], list[str], dict[str, list[int]]]:
    """rliable's input: ``{algorithm: (runs, scenarios)}`` normalised scores.

    Trained runs ``<algo>_s<seed>`` are grouped by algorithm (one row per seed present in
    every scenario); the open-loop schedule, the no-treatment anchor and the ceiling enter
    as one-run rows.
    """
    scenarios = sorted(per_scenario)
    found: list[dict[str, set[int]]] = []
    for sc in scenarios:
        runs: dict[str, set[int]] = {}
        for name in per_scenario[sc]["normalised"]:
            run = trained_run(name)
            if run:
                runs.setdefault(run[0], set()).add(run[1])
        found.append(runs)
    algos = set.intersection(*(set(f) for f in found)) if found else set()
    seeds = {a: set.intersection(*(f[a] for f in found)) for a in algos}
    out: dict[str, np.ndarray] = {}
    used: dict[str, list[int]] = {}
    for algo, s in sorted(seeds.items()):
        ss = sorted(s)
        if not ss:
            continue
        out[algo] = np.array(
            [[per_scenario[sc]["normalised"][f"{algo}_s{k}"] for sc in scenarios] for k in ss]
        )
        used[algo] = ss
    for name in (OPEN_LOOP, "no_treatment", CEILING):
        if all(name in per_scenario[sc]["normalised"] for sc in scenarios):
            out[name] = np.array([[per_scenario[sc]["normalised"][name] for sc in scenarios]])
            used[name] = [0]
    return out, scenarios, used


def aggregate(
    matrices: Mapping[str, np.ndarray], *, reps: int = 2000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """IQM and mean with 95 % stratified-bootstrap CIs per algorithm, and the probability
    of improvement over the open-loop schedule (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    def both(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    with _quiet():
        point, ci = rly.get_interval_estimates(
            dict(matrices), both, reps=reps, random_state=np.random.RandomState(seed)
        )
    out: dict[str, dict[str, float]] = {}
    for name, m in matrices.items():
        row = {
            "runs": int(m.shape[0]),
            "iqm": float(point[name][0]),
            "iqm_low": float(ci[name][0, 0]),
            "iqm_high": float(ci[name][1, 0]),
            "mean": float(point[name][1]),
            "mean_low": float(ci[name][0, 1]),
            "mean_high": float(ci[name][1, 1]),
        }
        out[name] = row
    if OPEN_LOOP in matrices:
        ref = matrices[OPEN_LOOP]
        pairs = {
            f"{name},{OPEN_LOOP}": (m, np.repeat(ref, m.shape[0], axis=0))
            for name, m in matrices.items()
            if name not in (OPEN_LOOP, "no_treatment", CEILING)
        }
        if pairs:
            with _quiet():
                p_point, p_ci = rly.get_interval_estimates(
                    pairs,
                    metrics.probability_of_improvement,
                    reps=reps,
                    random_state=np.random.RandomState(seed),
                )
            for key in pairs:
                name = key.split(",")[0]
                out[name]["p_improve_open_loop"] = float(p_point[key])
                out[name]["p_improve_low"] = float(np.ravel(p_ci[key])[0])
                out[name]["p_improve_high"] = float(np.ravel(p_ci[key])[1])
    return out


def plot_profiles(matrices: Mapping[str, np.ndarray], path: Path, reps: int = 2000) -> None:
    """Performance profiles (rliable): share of runs × scenarios with normalised score > τ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly

    taus = np.linspace(-1.0, 1.2, 89)
    with _quiet():  # the bands' bootstrap is unseeded in rliable: they vary in the last digit
        prof, prof_ci = rly.create_performance_profile(dict(matrices), taus, reps=reps)
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    colours = plt.get_cmap("tab10")
    for i, name in enumerate(matrices):
        ax.plot(taus, prof[name], color=colours(i % 10), lw=1.6, label=name)
        ax.fill_between(taus, prof_ci[name][0], prof_ci[name][1], color=colours(i % 10), alpha=0.15)
    ax.axvline(0.0, color="grey", ls="--", lw=0.8)
    ax.axvline(1.0, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("normalised score τ (0 = best protocol, 1 = oracle planner)")
    ax.set_ylabel("fraction of runs × scenarios with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Performance profiles (95 % stratified-bootstrap bands)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scenario_bars(
    matrices: Mapping[str, np.ndarray], scenarios: Sequence[str], path: Path, reps: int = 2000
) -> None:
    """Per-scenario mean normalised score of each algorithm with a bootstrap CI over seeds
    (no treatment left out: its scores would flatten the others)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    # no treatment sits far below everything (often -10 to -25): in the tables, not here
    names = [n for n in matrices if n != "no_treatment"]
    k = len(names)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(scenarios) * max(1, k) / 3), 4.4))
    width = 0.8 / max(k, 1)
    colours = plt.get_cmap("tab10")
    x = np.arange(len(scenarios))
    for i, name in enumerate(names):
        m = matrices[name]
        mean = m.mean(axis=0)
        if m.shape[0] > 1:
            boots = m[rng.integers(0, m.shape[0], (reps, m.shape[0]))].mean(axis=1)
            lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
            err = np.vstack([mean - lo, hi - mean])
        else:
            err = None
        ax.bar(
            x + (i - (k - 1) / 2) * width,
            mean,
            width,
            yerr=err,
            capsize=2,
            color=colours(i % 10),
            label=f"{name} ({m.shape[0]} {'runs' if m.shape[0] > 1 else 'run'})",
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axhline(1.0, color="grey", ls=":", lw=0.8)
    ax.set_xticks(x, scenarios)
    ax.set_ylabel("normalised score (0 = best protocol, 1 = oracle planner)")
    ax.grid(axis="y", alpha=0.25)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Per-scenario normalised score, mean over seeds (95 % bootstrap CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both more QALYs and less toxicity,
    in order of increasing toxicity (``points`` are ``(toxicity, qalys)``)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], path: Path, *, title: str | None = None
) -> None:
    """Mean QALYs against the grade ≥ 3 toxicity rate per policy and scenario, with the
    Pareto front (more QALYs, less toxicity).  The policies on the front and every agent
    are labelled; ``title`` replaces the default (1,000-patient test cohorts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted(rows)
    cols = min(3, len(scenarios))
    nrows = math.ceil(len(scenarios) / cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(max(4.6 * cols, 8.0), 3.8 * nrows + 0.6), squeeze=False
    )
    kinds = {
        "protocol": ("o", "tab:blue"),
        "agent": ("^", "tab:orange"),
        "open_loop": ("D", "tab:green"),
        "planner": ("*", "tab:red"),
        "other": ("s", "tab:grey"),
    }
    for ax, sc in zip(axes.ravel(), scenarios, strict=False):
        pts = [(100 * r["grade3_any"], r["mean_qalys"]) for r in rows[sc]]
        for r, (tx, q) in zip(rows[sc], pts, strict=True):
            marker, colour = kinds.get(r.get("kind", "other"), kinds["other"])
            ax.scatter(tx, q, marker=marker, color=colour, s=28 if marker != "*" else 70, zorder=3)
        front = pareto_front(pts)
        ax.plot(
            [pts[i][0] for i in front],
            [pts[i][1] for i in front],
            color="k",
            lw=0.9,
            ls="--",
            zorder=2,
        )
        agents = [i for i, r in enumerate(rows[sc]) if r.get("kind") == "agent"]
        # every agent run is named where there are few (the constrained runs); where there
        # are many (seeds × algorithms) only the front is, or the panel is all labels
        labelled = sorted(set(front) | set(agents if len(agents) <= MAX_AGENT_LABELS else ()))
        _label_points(ax, [(pts[i], rows[sc][i]["policy"]) for i in labelled])
        ax.set_title(sc, fontsize=10)
        ax.set_xlabel("grade ≥ 3 toxicity, % of patients")
        ax.set_ylabel("mean QALYs")
        ax.grid(alpha=0.25)
    for ax in axes.ravel()[len(scenarios) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker=m, color=c, ls="", label=k) for k, (m, c) in kinds.items()]
    handles.append(plt.Line2D([], [], color="k", ls="--", label="Pareto front"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(
        title or "QALYs against grade ≥ 3 toxicity (1,000-patient test cohorts)", fontsize=11
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


MAX_AGENT_LABELS = 8
"""A Pareto panel names each agent run when it has at most this many."""


def _label_points(ax: Any, items: Sequence[tuple[tuple[float, float], str]]) -> None:
    """Label points without letting labels overlap: from the top down, a label that would
    cover one already placed moves down in steps of a line, with a leader line to its
    point, at most three lines (a label that would go further is left out); sizes in
    points, estimated for 6-point text."""
    ax.autoscale_view()
    scale = 72.0 / ax.figure.dpi
    line, char = 7.5, 3.2
    placed: list[tuple[float, float, float]] = []  # x0, x1, y of placed labels (points)
    order = sorted(items, key=lambda it: -it[0][1])
    for (x, y), text in order:
        px, py = (v * scale for v in ax.transData.transform((x, y)))
        x0, x1 = px + 3, px + 3 + char * len(text)
        dy = 0.0
        while any(x0 < b1 and b0 < x1 and abs(py + 3 + dy - by) < line for b0, b1, by in placed):
            dy -= line
        if dy < -3 * line:
            continue
        placed.append((x0, x1, py + 3 + dy))
        ax.annotate(
            text,
            (x, y),
            fontsize=6,
            xytext=(3, 3 + dy),
            textcoords="offset points",
            arrowprops=None if dy == 0 else {"arrowstyle": "-", "lw": 0.4, "color": "0.5"},
        )


def write_aggregate(
    per_scenario: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    *,
    pareto_rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    reps: int = 2000,
) -> dict[str, Any]:
    """Write ``aggregate.json``, ``aggregate.md`` and the figures under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    matrices, scenarios, seeds = score_matrices(per_scenario)
    agg = aggregate(matrices, reps=reps)
    data = {
        "scenarios": scenarios,
        "seeds": seeds,
        "aggregate": agg,
        "over_open_loop": over_open_loop(per_scenario, seeds, reps=reps),
        "per_scenario": {sc: {k: v for k, v in per_scenario[sc].items()} for sc in scenarios},
    }
    (out / "aggregate.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "aggregate.md").write_text(aggregate_markdown(data))
    if matrices:
        plot_profiles(matrices, out / "performance_profiles.png", reps=reps)
        plot_scenario_bars(matrices, scenarios, out / "scenario_scores.png", reps=reps)
    if pareto_rows:
        plot_pareto(pareto_rows, out / "pareto.png")
    return data


def bootstrap_mean_ci(x: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> list[float]:
    """``[mean, low, high]``: the mean of ``x`` (runs of one algorithm) with its 95 %
    percentile-bootstrap CI (``rng`` advanced; NaN bounds for fewer than two runs)."""
    if x.size < 2:
        return [float(x.mean()), float("nan"), float("nan")]
    boots = rng.choice(x, (reps, x.size)).mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return [float(x.mean()), float(lo), float(hi)]


def over_open_loop(
    per_scenario: Mapping[str, Mapping[str, Any]],
    seeds: Mapping[str, Sequence[int]],
    *,
    reps: int = 2000,
) -> dict[str, dict[str, list[float]]]:
    """Per scenario and algorithm: the mean over seeds of (run's score − open-loop score)
    with a 95 % percentile-bootstrap CI over the seeds, ``[mean, low, high]`` (what
    closed-loop control adds over the best fixed schedule, in score units)."""
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, list[float]]] = {}
    for sc in sorted(per_scenario):
        score = per_scenario[sc]["score"]
        if OPEN_LOOP not in score:
            continue
        for algo, ks in seeds.items():
            if algo in (OPEN_LOOP, "no_treatment", CEILING) or len(ks) < 2:
                continue
            x = np.array([score[f"{algo}_s{k}"] for k in ks]) - score[OPEN_LOOP]
            out.setdefault(sc, {})[algo] = bootstrap_mean_ci(x, rng, reps)
    return out


def aggregate_markdown(data: Mapping[str, Any]) -> str:
    """The aggregate tables as Markdown."""
    agg = data["aggregate"]
    lines = [
        "| policy | runs | IQM (95 % CI) | mean (95 % CI) | P(better than open loop) (95 % CI) |",
        "|---|---:|---|---|---|",
    ]
    for name, r in agg.items():
        p = (
            f"{r['p_improve_open_loop']:.2f} ({r['p_improve_low']:.2f}–{r['p_improve_high']:.2f})"
            if "p_improve_open_loop" in r
            else "—"
        )
        lines.append(
            f"| {name} | {r['runs']} | {r['iqm']:+.3f} ({r['iqm_low']:+.3f}, {r['iqm_high']:+.3f}) "
            f"| {r['mean']:+.3f} ({r['mean_low']:+.3f}, {r['mean_high']:+.3f}) | {p} |"
        )
    lines += [
        "",
        "Per scenario: anchors (mean return per patient, incl. follow-up) and normalised scores.",
        "",
        "| scenario | best protocol (0) | oracle planner (1; not a bound) | open loop "
        "| no treatment | beats the oracle planner |",
        "|---|---|---:|---:|---:|---|",
    ]
    for sc, s in data["per_scenario"].items():
        n = s["normalised"]
        lines.append(
            f"| {sc} | {s['best_protocol']} ({s['best_protocol_score']:.3f}) "
            f"| {s['ceiling_score']:.3f} | {n.get(OPEN_LOOP, math.nan):+.3f} "
            f"| {n.get('no_treatment', math.nan):+.3f} "
            f"| {', '.join(s['above_ceiling']) or 'none'} |"
        )
    diff = data.get("over_open_loop") or {}
    algos = sorted({a for v in diff.values() for a in v})
    if algos:
        lines += [
            "",
            "Closed loop minus the best open-loop schedule (score per patient), mean over seeds "
            "(95 % bootstrap CI over seeds).",
            "",
            "| scenario | " + " | ".join(algos) + " |",
            "|---|" + "---|" * len(algos),
        ]
        for sc, v in diff.items():
            cells = [
                f"{v[a][0]:+.3f} ({v[a][1]:+.3f}, {v[a][2]:+.3f})" if a in v else "—" for a in algos
            ]
            lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
