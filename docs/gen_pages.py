"""Pages generated at build time (mkdocs-gen-files) from the code itself, so they cannot
drift from it: one page per environment (the env's docstring, its spaces, dose levels and
an example trajectory simulated now), one page per scenario (its YAML: patients, lesions,
protocols; its calibration and validation table from experiments/calibration/REPORT.md),
the model's states and parameters (unit, value, source), and the API reference stubs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "experiments" / "calibration" / "REPORT.md"
FIGURES = ROOT / "experiments" / "calibration" / "figures"
EXAMPLE_PATIENTS = 4


def rst_to_md(text: str) -> str:
    """The docstrings' reStructuredText roles and literals as Markdown (fenced code blocks
    are left as they are)."""
    parts = re.split(r"(^```.*?^```[ \t]*$)", text, flags=re.M | re.S)
    for i in range(0, len(parts), 2):  # the odd parts are the fenced blocks
        part = re.sub(
            r":(?:class|func|meth|mod|data|attr|obj):`~?([^`<]+?)(?: <([^`>]+)>)?`",
            lambda m: f"`{m.group(1).strip()}`",
            parts[i],
        )
        parts[i] = re.sub(r"``([^`]+)``", r"`\1`", part)
    return "".join(parts)


def dedent_doc(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


def docstring_sections(doc: str) -> dict[str, str]:
    """``## Heading`` sections of a docstring, by heading."""
    out: dict[str, str] = {}
    parts = re.split(r"^## (.+)$", dedent_doc(doc), flags=re.M)
    for head, body in zip(parts[1::2], parts[2::2], strict=True):
        out[head.strip()] = rst_to_md(body.strip())
    return out


def md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |")
    return "\n".join(lines) + "\n"


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def fmt_value(v: object) -> str:
    """A number, or a parameter distribution as ``median (spread)``."""
    if isinstance(v, (int, float)):
        return fmt(float(v))
    median = getattr(v, "median", None)
    if median is None:
        return str(v)
    kind = getattr(v, "distribution", "lognormal")
    cv = getattr(v, "cv", None)
    low, high = getattr(v, "low", None), getattr(v, "high", None)
    spread = []
    if cv:
        spread.append(f"CV {fmt(cv)}")
    if low is not None or high is not None:
        spread.append(
            f"in [{fmt(low) if low is not None else '−∞'}, "
            f"{fmt(high) if high is not None else '∞'}]"
        )
    head = fmt(float(median))
    if kind != "lognormal":
        spread.insert(0, kind)
    return head + (f" ({', '.join(spread)})" if spread else "")


# --- environments -----------------------------------------------------------------------
def trajectory_png(env_id: str) -> bytes:
    """The standard of care (or no treatment) for the first patients of the test cohort:
    true tumour burden, and the doses given (marker area ∝ dose)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from oncogym.agents.evaluate import rollout
    from oncogym.agents.policies import make_baseline
    from oncogym.envs import ENV_IDS, STANDARD_OF_CARE

    task = ENV_IDS[env_id][0]
    name = STANDARD_OF_CARE.get(task, "no_treatment")
    res = rollout(make_baseline(name, task), task, n_patients=EXAMPLE_PATIENTS)
    fig, (ax, axd) = plt.subplots(
        2, 1, figsize=(8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    colours = plt.get_cmap("tab10")
    days = np.arange(res.burden.shape[1]) * res.decision_days
    nt = len(res.therapies)
    top = np.where(res.doses.max(axis=(0, 1)) > 0, res.doses.max(axis=(0, 1)), 1.0)
    for i in range(res.n):
        ax.semilogy(days, res.burden[i], color=colours(i), lw=1.3, label=f"patient {i}")
        for j in range(nt):
            given = res.doses[i, :, j] > 0
            axd.scatter(
                days[:-1][given],
                np.full(given.sum(), j + (i - (res.n - 1) / 2) * 0.15),
                color=colours(i),
                s=6 + 30 * res.doses[i, given, j] / top[j],
                marker="s",
                linewidths=0,
            )
    ax.set_ylabel("tumour cells (true burden)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{env_id}: {name}, the first {res.n} patients of the test cohort")
    axd.set_yticks(range(nt), list(res.therapies), fontsize=7)
    axd.set_ylim(-0.7, nt - 0.3)
    axd.set_xlabel("day")
    axd.set_ylabel("doses given")
    axd.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def env_page(env_id: str) -> str:
    import gymnasium as gym
    import numpy as np

    from oncogym.envs import ENV_IDS, STANDARD_OF_CARE, OncologyEnv
    from oncogym.scenarios import available_scenarios, load_scenario

    task, horizon, _ = ENV_IDS[env_id]
    env = gym.make(env_id)
    steps = env.spec.max_episode_steps
    u = env.unwrapped
    short = env_id.split("/")[1]
    is_scenario = task in available_scenarios()
    sc = load_scenario(task) if is_scenario else None
    title = sc.title if sc is not None else u.params.title if hasattr(u.params, "title") else task
    lines = [f"# {short}\n", f"*{title}*\n"]
    lines.append(
        md_table(
            ["", ""],
            [
                ["Action space", f"`{u.action_space}`"],
                ["Observation space", f"`Box({u.observation_space.shape[0]} entries, float32)`"],
                ["Import", f'`gymnasium.make("{env_id}")` (after `import oncogym`)'],
                [
                    "Episode",
                    f"{horizon:g} days, a decision every {u.params.decision_days:g} days; "
                    f"`max_episode_steps={steps}`",
                ],
                ["Task", f"`{task}`" + (f" ([scenario](../scenarios/{task}.md))" if sc else "")],
            ],
        )
    )
    if sc is not None:
        lines.append("## Description\n")
        lines.append(sc.description.strip() + "\n")
        soc = STANDARD_OF_CARE.get(task)
        if soc:
            lines.append(
                f"The standard of care (the benchmark's reference arm) is the `{soc}` protocol.\n"
            )
    lines.append("## Therapies and dose levels\n")
    rows = []
    for j, t in enumerate(u.therapies):
        levels = ", ".join(fmt(x) for x in np.asarray(u.dose_levels[j]) if np.isfinite(x))
        unit = ""
        try:
            import oncogym

            model = oncogym.models.get(sc.model if sc else task)
            unit = next(th.unit for th in model.therapies if th.name == t)
        except Exception:
            unit = ""
        extra = []
        if sc is not None:
            if t in sc.min_interval_days:
                extra.append(f"min interval {sc.min_interval_days[t]} d")
            if t in sc.max_administrations:
                extra.append(f"at most {sc.max_administrations[t]} administrations")
            if t in sc.max_cumulative:
                extra.append(f"cumulative cap {fmt(sc.max_cumulative[t])}")
        rows.append([f"`{t}`", unit, levels, "; ".join(extra) or "—"])
    lines.append(md_table(["therapy", "unit", "levels (0 = no dose)", "constraints"], rows))
    lines.append("## Observation space (clinical)\n")
    lo, hi = u.observation_space.low, u.observation_space.high
    rows = [
        [i, f"`{n}`", fmt(float(lo[i])), fmt(float(hi[i]))]
        for i, n in enumerate(u.observation_names)
    ]
    lines.append(md_table(["index", "name", "min", "max"], rows))
    lines.append("Units and meaning of each entry: see *Observation Space* below.\n")
    lines.append("## Example trajectories\n")
    png = f"{short}.png"
    with mkdocs_gen_files.open(f"envs/{png}", "wb") as f:
        f.write(trajectory_png(env_id))
    lines.append(f"![{env_id} trajectories]({png})\n")
    lines.append(
        "True tumour burden (the agent sees only the scans) and the doses given (marker "
        f"area ∝ dose) for the first {EXAMPLE_PATIENTS} virtual patients of the test cohort "
        "under the standard of care, simulated when this page was built.\n"
    )
    lines.append("---\n")
    lines.append(
        "*The sections below are common to every oncogym environment "
        "(`OncologyEnv`'s docstring).*\n"
    )
    sections = docstring_sections(OncologyEnv.__doc__ or "")
    for head in (
        "Action Space",
        "Observation Space",
        "Rewards",
        "Starting State",
        "Episode End",
        "Info",
        "Arguments",
        "Difficulty Tiers",
        "Version History",
    ):
        if head in sections:
            lines.append(f"## {head}\n")
            lines.append(sections[head] + "\n")
    env.close()
    return "\n".join(lines)


def envs_index() -> str:
    import gymnasium as gym

    from oncogym.envs import ENV_IDS

    rows = []
    for env_id, (task, horizon, decision) in ENV_IDS.items():
        short = env_id.split("/")[1]
        steps = gym.spec(env_id).max_episode_steps
        rows.append(
            [f"[`{env_id}`]({short}.md)", f"`{task}`", f"{horizon:g}", f"{decision:g}", steps]
        )
    return (
        "# Environments\n\n"
        "Every id is an `OncologyEnv` on one task: a virtual-patient scenario on the "
        "composite `oncoimmune` model, or a literature model.  `import oncogym` registers "
        'them; `gymnasium.make_vec(id, num_envs=n, vectorization_mode="vector_entry_point")`'
        " gives the native batched vector env.\n\n"
        + md_table(
            ["id", "task", "horizon (days)", "decision every (days)", "max_episode_steps"], rows
        )
    )


# --- scenarios --------------------------------------------------------------------------
def report_section(name: str) -> str:
    """The scenario's section of the calibration report (without its heading)."""
    if not REPORT.exists():
        return "*The calibration report has not been generated.*\n"
    text = REPORT.read_text()
    m = re.search(rf"^## .*\(`{re.escape(name)}`\)\s*$", text, flags=re.M)
    if m is None:
        return "*This scenario is not in the calibration report.*\n"
    end = re.search(r"^## ", text[m.end() :], flags=re.M)
    body = text[m.end() : m.end() + end.start()] if end else text[m.end() :]
    body = re.sub(r"^###? ", "### ", body, flags=re.M)

    # figures: copied next to the page
    def fig(match: re.Match[str]) -> str:
        src = (REPORT.parent / match.group(2)).resolve()
        if src.exists():
            with mkdocs_gen_files.open(f"scenarios/{src.name}", "wb") as f:
                f.write(src.read_bytes())
            return f"![{match.group(1)}]({src.name})"
        return ""

    return re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", fig, body)


def scenario_page(name: str) -> str:
    from oncogym.scenarios import load_scenario

    sc = load_scenario(name)
    lines = [
        f"# {sc.title}\n",
        f"Scenario `{name}` (`src/oncogym/scenario_data/{name}.yaml`), "
        f"model `{sc.model}`, horizon {sc.horizon_days:g} days.\n",
        sc.description.strip() + "\n",
    ]
    lines.append("## Treatment protocols\n")
    rows = []
    for key, p in sc.protocols.items():
        role = "calibration only" if p.calibration_only else "baseline"
        nxt = f"; then `{p.next_line}`" if p.next_line else ""
        rows.append(
            [
                f"`{key}`",
                rst_to_md(p.description or p.name or ""),
                role + nxt,
                rst_to_md(p.source or ""),
            ]
        )
    lines.append(md_table(["protocol", "what", "use", "source"], rows))
    if sc.lesions is not None and sc.lesions.sites:
        lines.append("## Lesions\n")
        rows = [
            [
                f"`{k}`",
                fmt_value(s.prevalence),
                fmt_value(s.share),
                fmt_value(s.infiltration),
                fmt_value(s.lethality),
                "yes" if s.measurable else "no",
            ]
            for k, s in sc.lesions.sites.items()
        ]
        lines.append(
            md_table(
                [
                    "site",
                    "prevalence",
                    "share of burden",
                    "immune infiltration",
                    "lethality",
                    "RECIST-measurable",
                ],
                rows,
            )
        )
        if sc.lesions.source:
            lines.append(f"Source: {rst_to_md(sc.lesions.source)}\n")
    lines.append("## Virtual patients: parameter distributions\n")
    rows = []
    for key, d in sc.params.items():
        if isinstance(d, (int, float)):
            rows.append([f"`{key}`", fmt(float(d)) + " (fixed)", ""])
        else:
            rows.append([f"`{key}`", fmt_value(d), rst_to_md(getattr(d, "source", "") or "")])
    lines.append(md_table(["parameter", "median (spread)", "source"], rows))
    lines.append(
        "Fitted values (`scenario_data/<name>.fitted.yaml`) replace these medians and "
        "CVs where the calibration fits them; see the report below.\n"
    )
    lines.append("## Calibration and validation\n")
    lines.append(report_section(name))
    return "\n".join(lines)


def scenarios_index() -> str:
    from oncogym.scenarios import available_scenarios, load_scenario

    rows = [[f"[`{n}`]({n}.md)", load_scenario(n).title] for n in available_scenarios()]
    intro = ""
    if REPORT.exists():
        text = REPORT.read_text()
        first = re.search(r"^## ", text, flags=re.M)
        intro = text[: first.start()] if first else text
        intro = re.sub(r"^# .*\n", "", intro)
    return "# Virtual patients\n\n" + md_table(["scenario", "indication"], rows) + "\n" + intro


# --- model reference ---------------------------------------------------------------------
def parameters_page() -> str:
    import oncogym

    lines = [
        "# States and parameters\n",
        "Generated from the models' own tables (`oncogym.models.get(name)`): every state "
        "and parameter with its unit, default value and source.  Scenario files "
        "override the defaults per indication; see the scenario pages.\n",
    ]
    for name in oncogym.models.available():
        m = oncogym.models.get(name)
        lines.append(f"## `{name}` — {m.title}\n")
        lines.append(f"{rst_to_md(m.reference)}\n")
        lines.append("### States\n")
        lines.append(
            md_table(
                ["state", "unit", "meaning"],
                [[f"`{s.name}`", s.unit, rst_to_md(s.description)] for s in m.states],
            )
        )
        if m.therapies:
            lines.append("### Therapies\n")
            lines.append(
                md_table(
                    ["therapy", "unit", "meaning"],
                    [[f"`{t.name}`", t.unit, rst_to_md(t.description)] for t in m.therapies],
                )
            )
        lines.append("### Parameters\n")
        lines.append(
            md_table(
                ["parameter", "value", "unit", "meaning", "source"],
                [
                    [
                        f"`{p.name}`",
                        fmt(p.value),
                        p.unit,
                        rst_to_md(p.description),
                        rst_to_md(p.source),
                    ]
                    for p in m.params
                ],
            )
        )
    return "\n".join(lines)


API = {
    "core": (
        "Core (`oncogym`)",
        [
            "oncogym.simulate",
            "oncogym.models",
            "oncogym.scenarios",
            "oncogym.clinical",
            "oncogym.toxicity",
            "oncogym.rules",
            "oncogym.survival",
            "oncogym.calibration",
        ],
    ),
    "envs": (
        "Environments (`oncogym.envs`)",
        [
            "oncogym.envs.oncology",
            "oncogym.envs.vector",
            "oncogym.envs.functional",
            "oncogym.envs.task",
            "oncogym.envs.settings",
            "oncogym.envs.sb3",
        ],
    ),
    "agents": (
        "Agents (`oncogym.agents`)",
        [
            "oncogym.agents.policies",
            "oncogym.agents.openloop",
            "oncogym.agents.planner",
            "oncogym.agents.train",
            "oncogym.agents.recurrent",
            "oncogym.agents.lagrangian",
            "oncogym.agents.evaluate",
            "oncogym.agents.benchmark",
            "oncogym.agents.aggregate",
            "oncogym.agents.datasets",
            "oncogym.agents.offline",
            "oncogym.agents.tune",
        ],
    ),
}


def main() -> None:
    from oncogym.envs import ENV_IDS
    from oncogym.scenarios import available_scenarios

    for env_id in ENV_IDS:
        with mkdocs_gen_files.open(f"envs/{env_id.split('/')[1]}.md", "w") as f:
            f.write(env_page(env_id))
    with mkdocs_gen_files.open("envs/index.md", "w") as f:
        f.write(envs_index())
    for name in available_scenarios():
        with mkdocs_gen_files.open(f"scenarios/{name}.md", "w") as f:
            f.write(scenario_page(name))
    with mkdocs_gen_files.open("scenarios/index.md", "w") as f:
        f.write(scenarios_index())
    with mkdocs_gen_files.open("model/parameters.md", "w") as f:
        f.write(parameters_page())
    for key, (title, modules) in API.items():
        with mkdocs_gen_files.open(f"api/{key}.md", "w") as f:
            f.write(f"# {title}\n\n" + "\n".join(f"::: {m}\n" for m in modules))


main()
