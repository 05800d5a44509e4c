"""Offline RL on the clinic's datasets: behaviour cloning and off-policy evaluation.

For each scenario (melanoma, LBCL):

1. two Minari datasets (``oncogym.agents.datasets``) of ``N_TRAIN`` training patients
   (``Cohort.train(scenario, N_TRAIN, DATASET_DRAW)``, never the test cohort): the
   protocol mixture and the noisy adaptive therapy;
2. behaviour cloning, filtered BC (best quarter of episodes by return) and discrete CQL on
   a factored action value (its conservative weight α ∈ {0.1, 1} chosen by FQE on the same
   dataset, offline) on each, scored
   online on the test cohort (``Cohort.test(scenario, N_TEST)``, scan-noise seed 2024) by the
   evaluator's ``rollout`` with the behaviour policies, the adaptive rules and the protocols
   (the best protocol chosen on the dataset's training patients, and the standard of care);
3. off-policy evaluation of five target policies — BC, filtered BC, CQL (trained on that
   dataset), the standard of care and the adaptive rules (both on the dose grid) — from each
   dataset by FQE and weighted per-decision IS, against the simulator's truth: the target's
   mean return on the dataset's own patients and scans, and on the test cohort.

Writes ``experiments/offline/results.md`` and ``results.json``.  Run from the repository
root (needs ``pip install -e ".[offline]"``)::

    python experiments/offline/run.py
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import oncogym
from oncogym.agents._policy import protocol_names
from oncogym.agents.datasets import (
    DATASET_DRAW,
    Discretised,
    dataset_id,
    make_behaviour,
    make_dataset,
)
from oncogym.agents.evaluate import EVAL_SEED, rollout, summarise
from oncogym.agents.offline import (
    fqe,
    load_data,
    select_by_fqe,
    target_actions,
    train_bc,
    train_cql,
    wis,
)
from oncogym.agents.policies import AdaptivePolicy, ProtocolPolicy
from oncogym.envs import STANDARD_OF_CARE
from oncogym.scenarios import Cohort

HERE = Path(__file__).resolve().parent
SCENARIOS = ("melanoma", "lbcl")
BEHAVIOURS = ("protocols", "adaptive_noisy")
N_TRAIN = 200
N_TEST = 200
SEED = 0
BC_STEPS = 2000
TOP = 0.25
FQE = {"iterations": 120, "steps_per_iteration": 30}
CQL_ALPHAS = (0.1, 1.0)
CQL_STEPS = 3000


def _row(res: Any) -> dict[str, float]:
    m = summarise(res)
    return {
        "mean_return": float(res.returns.mean()),
        "sem": float(res.returns.std(ddof=1) / math.sqrt(res.n)),
        "qalys": float(m["mean_qalys"]),
        "os_horizon": float(m["os_horizon"]),
        "grade3": float(m["grade3_any"]),
    }


def run_scenario(task: str, root: Path, log: Any) -> dict[str, Any]:
    train = Cohort.train(task, N_TRAIN, DATASET_DRAW)
    test = Cohort.test(task, N_TEST)
    out: dict[str, Any] = {"datasets": {}, "online": {}, "ope": []}

    # protocols as labelled (continuous doses): best on the training patients, and the SoC
    on_train = {
        p: rollout(ProtocolPolicy(p), task, cohort=train, seed=SEED).returns.mean()
        for p in protocol_names(task)
    }
    best = max(on_train, key=on_train.get)
    soc = STANDARD_OF_CARE[task]
    for label, pol in (
        (f"best protocol on the training patients: {best}", ProtocolPolicy(best)),
        (f"standard of care: {soc}", ProtocolPolicy(soc)),
        ("adaptive (rules, labelled doses)", AdaptivePolicy()),
    ):
        out["online"][label] = _row(rollout(pol, task, cohort=test))
    log(f"{task}: protocols done (best on training patients: {best})")

    for b in BEHAVIOURS:
        t0 = time.perf_counter()
        ds = make_dataset(task, b, n_patients=N_TRAIN, seed=SEED, out=root)
        data = load_data(ds)
        size = sum(f.stat().st_size for f in Path(ds.storage.data_path).rglob("*") if f.is_file())
        out["datasets"][b] = {
            "id": dataset_id(task, b),
            "episodes": data.n,
            "steps": int(data.lengths.sum()),
            "mean_return": float(data.returns().mean()),
            "deaths": float(data.terminated.any(axis=1).mean()),
            "mb": size / 2**20,
            "wall_s": time.perf_counter() - t0,
        }
        behaviour = make_behaviour(task, b, seed=SEED)
        out["online"][f"behaviour: {b}"] = _row(rollout(behaviour, task, cohort=test))
        learned = {
            "bc": train_bc(data, steps=BC_STEPS, seed=SEED, name=f"bc[{b}]"),
            "bc_top25": train_bc(
                data, top_fraction=TOP, steps=BC_STEPS, seed=SEED, name=f"bc_top25[{b}]"
            ),
        }
        # CQL: the conservative weight chosen offline, by FQE on the same dataset
        cands = {
            a: train_cql(data, alpha=a, steps=CQL_STEPS, seed=SEED, name=f"cql_a{a:g}[{b}]")
            for a in CQL_ALPHAS
        }
        chosen, fqe_of = select_by_fqe(data, cands, seed=SEED, **FQE)
        learned["cql"] = cands[chosen]
        out["datasets"][b]["cql_alpha"] = chosen
        out["datasets"][b]["cql_fqe"] = {str(a): v for a, v in fqe_of.items()}
        for name, pol in learned.items():
            row = _row(rollout(pol, task, cohort=test))
            row["train_accuracy"] = float(pol.train_accuracy)
            label = f"cql (α = {chosen:g}, chosen by FQE)" if name == "cql" else name
            out["online"][f"{label} on {b}"] = row
        for a, pol in cands.items():
            if a != chosen:
                row = _row(rollout(pol, task, cohort=test))
                row["train_accuracy"] = float(pol.train_accuracy)
                out["online"][f"cql (α = {a:g}, not chosen) on {b}"] = row
        log(f"{task}/{b}: dataset, behaviour, BC and CQL done")

        targets = {
            **learned,
            f"{soc} (grid)": Discretised(ProtocolPolicy(soc)),
            "adaptive (grid)": Discretised(AdaptivePolicy(), name="adaptive"),
        }
        for name, pol in targets.items():
            t0 = time.perf_counter()
            acts = target_actions(pol, data)
            w = wis(data, acts)
            if name == "cql":  # the selection's own estimate (same data, target and seed)
                q_estimate = fqe_of[chosen]
            else:
                q_estimate = fqe(data, acts, seed=SEED, **FQE).estimate
            truth_train = rollout(pol, task, cohort=train, seed=SEED).returns.mean()
            truth_test = rollout(pol, task, cohort=test).returns.mean()
            out["ope"].append(
                {
                    "dataset": b,
                    "target": name,
                    "true_train": float(truth_train),
                    "true_test": float(truth_test),
                    "fqe": q_estimate,
                    "wis": w.estimate,
                    "wis_ess": w.detail["ess"],
                    "wis_matching": w.detail["matching_episodes"],
                    "wis_supported_steps": f"{w.detail['supported_steps']}/{w.detail['steps']}",
                    "dataset_mean": float(data.returns().mean()),
                    "wall_s": time.perf_counter() - t0,
                }
            )
        log(f"{task}/{b}: OPE done")
    return out


def _f(x: float, spec: str = ".3f") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def write_markdown(results: dict[str, Any], path: Path) -> None:
    s = results["settings"]
    md = [
        "# Offline RL: behaviour cloning and off-policy evaluation",
        "",
        "Generated by `python experiments/offline/run.py` "
        f"(oncogym {s['oncogym']}, {s['wall_min']:.1f} min on this project's 2-core machine, "
        "shared with another run).",
        f"Datasets: {s['n_train']} training patients per scenario "
        f"(`Cohort.train(scenario, {s['n_train']}, {DATASET_DRAW})`), seed {s['seed']}, the "
        "registered `-v1` env in its discrete action mode.  Online scores: the test cohort "
        f"(`Cohort.test(scenario, {s['n_test']})`, scan-noise seed {EVAL_SEED}), the "
        "evaluator's `rollout`, mean return (QALYs less the death penalty) ± sem.",
        "",
        "## Datasets",
        "",
        "| scenario | dataset id | episodes | steps | mean return | deaths % | size MB "
        "| CQL α chosen (FQE estimate per α) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for task, r in results["scenarios"].items():
        for d in r["datasets"].values():
            est = ", ".join(f"{a}: {v:.3f}" for a, v in d["cql_fqe"].items())
            md.append(
                f"| {task} | `{d['id']}` | {d['episodes']} | {d['steps']} | "
                f"{d['mean_return']:.3f} | {100 * d['deaths']:.1f} | {d['mb']:.1f} "
                f"| {d['cql_alpha']:g} ({est}) |"
            )
    md += ["", "## Online scores on the test cohort", ""]
    for task, r in results["scenarios"].items():
        md += [
            f"### {task}",
            "",
            "| policy | mean return ± sem | QALYs | OS at horizon % | grade ≥ 3 % | agreement |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, row in r["online"].items():
            acc = row.get("train_accuracy")
            md.append(
                f"| {name} | {row['mean_return']:.3f} ± {row['sem']:.3f} | {row['qalys']:.3f} | "
                f"{100 * row['os_horizon']:.1f} | {100 * row['grade3']:.1f} | "
                f"{'' if acc is None else f'{100 * acc:.1f} %'} |"
            )
        md.append("")
    md += [
        "agreement: share of the training steps (of the episodes it was trained on) where "
        "the greedy action equals the dataset's, every therapy's level.  `bc_top25`: BC on the "
        "best quarter of the dataset's episodes by return.  CQL: discrete CQL on a factored "
        "action value, its α chosen by FQE on the dataset (the other α shown too, not chosen). "
        " The behaviour rows are the behaviour policies themselves (their own noise) on the "
        "test patients.",
        "",
        "## Off-policy evaluation",
        "",
        "Estimates of each target's mean return from the dataset alone, against its true value "
        "on the dataset's own patients and scans (`true (train)`, what the estimators "
        "estimate) and on the test cohort; error = estimate − true (train).  WIS: weighted "
        "per-decision importance sampling with the stored behaviour probabilities (ESS: "
        "effective sample size of the final weights; matching: episodes whose every action "
        "equals the target's; — when some step has no matching episode left).  The dataset's "
        "mean return (the behaviour's value) is the naive estimate.",
        "",
        "| scenario | dataset | target | true (train) | true (test) | FQE | FQE error | "
        "WIS | WIS error | WIS ESS / matching | dataset mean |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for task, r in results["scenarios"].items():
        for o in r["ope"]:
            md.append(
                f"| {task} | {o['dataset']} | {o['target']} | {o['true_train']:.3f} | "
                f"{o['true_test']:.3f} | {o['fqe']:.3f} | {o['fqe'] - o['true_train']:+.3f} | "
                f"{_f(o['wis'])} | {_f(o['wis'] - o['true_train'], '+.3f')} | "
                f"{o['wis_ess']:.1f} / {o['wis_matching']} | {o['dataset_mean']:.3f} |"
            )
    errs = {"FQE": [], "WIS": []}
    for r in results["scenarios"].values():
        for o in r["ope"]:
            errs["FQE"].append(abs(o["fqe"] - o["true_train"]))
            if math.isfinite(o["wis"]):
                errs["WIS"].append(abs(o["wis"] - o["true_train"]))
    n_ope = sum(len(r["ope"]) for r in results["scenarios"].values())
    md += [
        "",
        "Mean absolute error: "
        + "; ".join(
            f"{k} {np.mean(v):.3f} over {len(v)} of {n_ope} estimates" for k, v in errs.items() if v
        )
        + ".",
        "",
    ]
    path.write_text("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=None, help="keep the datasets here")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.datasets or Path(tmp)
        scenarios = {task: run_scenario(task, root, log) for task in SCENARIOS}
    results = {
        "settings": {
            "scenarios": SCENARIOS,
            "n_train": N_TRAIN,
            "n_test": N_TEST,
            "seed": SEED,
            "bc_steps": BC_STEPS,
            "top_fraction": TOP,
            "fqe": FQE,
            "cql_alphas": CQL_ALPHAS,
            "cql_steps": CQL_STEPS,
            "oncogym": oncogym.__version__,
            "wall_min": (time.perf_counter() - t0) / 60,
        },
        "scenarios": scenarios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    write_markdown(results, args.out / "results.md")
    log(f"wrote {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
