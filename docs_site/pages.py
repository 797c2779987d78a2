"""Pages of the documentation site made from the code and the results: one page per learner,
the CLI reference and every benchmark's table. Used by :mod:`hooks` at build time (nothing here
is committed output)."""

from __future__ import annotations

import argparse
import inspect
import json
import re
from collections import defaultdict
from pathlib import Path

from biocredit.learners import ConvLearner
from biocredit.learners.plausibility import CRITERIA
from biocredit.learners.registry import learner_class, learners_of_kind, learns_from, list_learners

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"

_ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|obj):`~?([^`]+)`")


def rst_to_markdown(text: str) -> str:
    """Docstring markup to Markdown: ``code`` to `code`, :class:`~a.B` to `B`, :param x: lines
    to bullets."""
    text = _ROLE.sub(lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    text = text.replace("``", "`")
    return re.sub(r"^:param (\w+):", r"- `\1`:", text, flags=re.MULTILINE)


def learner_page(name: str) -> str:
    """A learner's page: its paper and update equation (the module and class docstrings), its
    options, each named configuration's plausibility flags, and its benchmark rows."""
    cls = learner_class(name)
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    class_doc = inspect.getdoc(cls) or ""
    summary = class_doc.splitlines()[0] if class_doc else ""
    lines = [f"# `{name}`: {summary}", "", f"Learns from {learns_from(name)} "]
    lines[-1] += f"(`{cls.__module__}.{cls.__name__}`, signal kind `{cls.signal}`)."
    lines[-1] += (
        " Trains convolutional layers too (`ConvNetwork`)."
        if issubclass(cls, ConvLearner)
        else " Dense layers only: a conv network refuses it."
    )
    lines += ["", rst_to_markdown(module_doc), "", "## The class", ""]
    lines += [rst_to_markdown("\n".join(class_doc.splitlines()[1:]).strip()), ""]
    lines += _options_section(cls) + _flags_section(cls) + _benchmark_section(name)
    return "\n".join(lines) + "\n"


def _options_section(cls: type) -> list[str]:
    parameters = [
        p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"
    ]
    if not parameters:
        return []
    lines = ["## Options", "", "| option | default |", "|---|---|"]
    for p in parameters:
        default = "required" if p.default is inspect.Parameter.empty else f"`{p.default!r}`"
        lines.append(f"| `{p.name}` | {default} |")
    return [*lines, ""]


def _flags_section(cls: type) -> list[str]:
    configurations = cls.configurations()
    labels = list(configurations)
    lines = [
        "## Plausibility flags",
        "",
        "x: the configuration addresses the criterion (flags follow from the options; "
        "[why each learner gets its flags](../plausibility.md)).",
        "",
        "| criterion | " + " | ".join(f"`{label}`" for label in labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    flags = {
        label: cls(**options).plausibility.as_dict() for label, options in configurations.items()
    }
    for key, text in CRITERIA.items():
        marks = " | ".join("x" if flags[label][key] else "." for label in labels)
        lines.append(f"| {text} | {marks} |")
    lines.append("")
    for label, options in configurations.items():
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "defaults"
        lines.append(f"- `{label}`: {shown}")
    return [*lines, ""]


def _benchmark_section(name: str) -> list[str]:
    rows = benchmark_rows(name)
    if not rows:
        return ["## Benchmarks", "", "No committed benchmark has run this learner yet.", ""]
    lines = [
        "## Benchmarks",
        "",
        "Every committed benchmark row of this learner (final return: deterministic policy, "
        "mean over seeds), beside bp's on the same seeds in the same invocation.",
        "",
        "| benchmark | env | algorithm / agent | row | seeds | final return | bp |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| [{row['bench']}](../results/{row['bench']}.md) | {row['env']} | {row['algo']} "
            f"| {row['label']} | {row['seeds']} | {row['mean']:.1f} | {row['bp']} |"
        )
    return [*lines, ""]


def benchmark_rows(name: str) -> list[dict]:
    """Rows of every committed results.json whose runs used learner ``name`` (any label)."""
    rows = []
    for path in sorted(RESULTS.glob("*/results.json")):
        runs = [r for r in json.loads(path.read_text()) if r.get("status") == "done"]
        groups: dict[tuple, list[float]] = defaultdict(list)
        for run in runs:
            algo = run.get("agent") or run.get("algo", "")
            groups[(run["env"], algo, run.get("label", run["learner"]), run["learner"])].append(
                run["final_return_mean"]
            )
        for (env, algo, label, learner), finals in groups.items():
            if learner != name or (name == "bp" and label != "bp"):
                continue
            bp = groups.get((env, algo, "bp", "bp"))
            rows.append(
                {
                    "bench": path.parent.name,
                    "env": env,
                    "algo": algo,
                    "label": label,
                    "seeds": len(finals),
                    "mean": sum(finals) / len(finals),
                    "bp": f"{sum(bp) / len(bp):.1f}" if bp else "-",
                }
            )
    return rows


def learners_index() -> str:
    """The learner pages' index: every registered learner by signal kind."""
    from biocredit.learners.base import (
        ErrorDrivenLearner,
        ModulatorDrivenLearner,
        SignalFreeLearner,
        TargetDrivenLearner,
    )

    intro = "One page per learner, made from its code and the committed results."
    lines = ["# Learners", "", intro]
    kinds = (
        ("Error-driven (the output error dL/dy)", ErrorDrivenLearner, TargetDrivenLearner),
        ("Target-driven (the output target y* = y - beta e)", TargetDrivenLearner, None),
        ("Modulator-driven (a third factor on eligibility traces)", ModulatorDrivenLearner, None),
        ("Signal-free (their inputs alone)", SignalFreeLearner, None),
    )
    for title, kind, exclude in kinds:
        names = [
            n for n in learners_of_kind(kind).split(", ") if not exclude or n not in _names(exclude)
        ]
        lines += ["", f"## {title}", ""]
        lines += [f"- [`{n}`]({n}.md): {_summary(n)}" for n in names]
    return "\n".join(lines) + "\n"


def _names(kind: type) -> set[str]:
    return set(list_learners(kind))


def _summary(name: str) -> str:
    doc = inspect.getdoc(learner_class(name)) or ""
    return rst_to_markdown(doc.splitlines()[0]) if doc else ""


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """Every command's ``--help``, as the CLI prints it."""
    lines = ["# CLI reference", "", "`biocredit --help` and each command's `--help`.", ""]
    lines += ["```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._subparsers._group_actions:  # the subcommands
        for command, subparser in action.choices.items():
            lines += [f"## `biocredit {command}`", "", "```text"]
            lines += [subparser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def results_page(bench: Path) -> str:
    """A benchmark's committed table, with its curves when it has them."""
    text = (bench / "table.md").read_text()
    if (bench / "curves.png").exists():
        text += f"\n![learning curves]({bench.name}.png)\n"
    return text
