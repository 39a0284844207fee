"""The report's sections as HTML, from report.json's numbers. Every text that came from a
model or a user is escaped here; the browser section is filled by the page's script."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from selfinstruct import paper
from selfinstruct.report.charts import (
    histogram_chart,
    legend,
    overlay_chart,
    stacked_bar,
    step_colors,
    sunburst,
    swatch,
)
from selfinstruct.report.numbers import stage_numbers
from selfinstruct.stages.review import KEY as REVIEW_KEY

TABLE1_ROWS = (
    ("instructions", "# of instructions"),
    ("classification", "- # of classification instructions"),
    ("non_classification", "- # of non-classification instructions"),
    ("unlabelled", "- # not labelled yet"),
    ("instances", "# of instances (kept by prepare)"),
    ("empty_input", "- # of instances with empty input"),
    ("avg_instruction_words", "ave. instruction length (in words)"),
    ("avg_input_words", "ave. non-empty input length (in words)"),
    ("avg_output_words", "ave. output length (in words)"),
)


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def section(anchor: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{note_html}{body}</section>'


def figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{caption}</figcaption></figure>"


def header(report: dict[str, Any]) -> str:
    run = report["run"]
    model = run["model"]
    seeds = run["seeds"]
    facts = [
        ("Model", f"{model.get('model', '?')} ({model.get('backend', '?')})"),
        ("Prompt style", run["prompt_style"]),
        ("Seeds", f"{seeds['count']} from {seeds['path']}, sha256 {seeds['sha256'][:12]}…"),
        ("Asked for", f"{run['num_instructions']:,} instructions"),
        ("Created", run.get("created_at") or "?"),
        ("Report", f"{report['generated_at']}, selfinstruct {report['selfinstruct']}"),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(str(v))}</dd></div>" for k, v in facts)
    return (
        f"<header><h1>Run report: {escape(run['name'])}</h1>"
        f'<p class="path">{escape(run["path"])}</p><dl class="facts">{items}</dl></header>'
    )


def overview(report: dict[str, Any]) -> str:
    t1 = report["table1"]
    rows = [
        (escape(label), number(t1[key]), number(paper.TABLE1.get(key)))
        for key, label in TABLE1_ROWS
        if key != "unlabelled" or t1[key]
    ]
    body = table(("Statistic", "This run", "Self-Instruct paper (GPT-3)"), rows, "table1")
    note = (
        "The paper's Table 1, computed for this run: instructions and labels from "
        "machine_generated_instructions.jsonl and is_clf_or_not_*.jsonl, instances from "
        "finetuning_data/all_generated_instances.jsonl; words are whitespace-separated."
    )
    return section("overview", "Statistics (Table 1)", body, note)


QUALITY_ROWS = (
    ("instruction", "Valid instruction (the instruction describes a valid task)"),
    ("input", "Appropriate input"),
    ("output", "Correct output (a correct and acceptable response)"),
    ("all three", "All three fields valid"),
    ("rating A", "Rating A: valid and satisfying"),
    ("rating B", "Rating B: acceptable, minor imperfections"),
    ("rating C", "Rating C: responsive, significant errors"),
    ("rating D", "Rating D: irrelevant or invalid"),
)
QUALITY_GROUPS = ("all", "classification", "non-classification")


def _share(cell: dict[str, Any]) -> str:
    if not cell["n"]:
        return "–"
    interval = f"[{cell['low']:.1f}, {cell['high']:.1f}], n={cell['n']:,}"
    return f"{cell['percent']:.1f}% <small>{interval}</small>"


def table2(found: dict[str, Any]) -> str:
    """A Table 2 (`QualityTable.as_dict`: the judge's or people's) beside the paper's figures:
    per row and group the share answered yes, its 95% Wilson interval and n."""
    groups, paper = found["groups"], found["paper"]
    rows = [
        (
            escape(label),
            *(_share(groups[g][key]) for g in QUALITY_GROUPS),
            number(paper.get(key)),
        )
        for key, label in QUALITY_ROWS
    ]
    head = ("Question", "All", "Classification", "Non-classification", "Paper (%)")
    return table(head, rows, "quality")


def quality(report: dict[str, Any]) -> str:
    """The paper's Table 2 from the judge's answers, label agreement, and the quality
    screen's drops (only what the run's settings turned on)."""
    parts, notes = [], []
    found = report.get("quality")
    if found:
        parts.append(table2(found))
        notes.append(
            f"The paper's Table 2 for this run, from the judge {escape(found['judge'])}: the share "
            "of judged instances (95% Wilson interval, n judged) answered yes; "
            f"{found['unparseable']:,} judge answers could not be read and are left out."
        )
    agreement = report.get("label_agreement")
    if agreement and agreement["n"]:
        parts.append(
            f"<p>Label consistency: the input-first label agrees with the output-first one for "
            f"{_share(agreement)} of readable answers ({agreement['unreadable']:,} unreadable).</p>"
        )
    own = ("quality", "label_agreement", REVIEW_KEY)  # REVIEW_KEY: its own section
    for name, values in stage_numbers(report).items():
        if name not in own:  # a stage the page knows nothing of
            parts.append(f"<p>{escape(name)}: {_flat_numbers(values)}</p>")
    screened = report.get("screened") or {}
    if screened:
        items = ", ".join(f"{escape(k)} {number(v)}" for k, v in screened.items())
        parts.append(f"<p>Dropped by the quality screen: {items} (see quality_drops.jsonl).</p>")
    if not parts:
        return ""
    return section("quality", "Quality (Table 2)", "".join(parts), " ".join(notes))


REVIEW_QUESTIONS = (
    ("instruction", "Valid instruction"),
    ("input", "Appropriate input"),
    ("output", "Correct output"),
    ("all three", "All three"),
)


def review(report: dict[str, Any]) -> str:
    """People's review (`selfinstruct review`): who rated how much, the paper's Table 2 from
    their ratings, their agreement with each other and every judge's agreement with them
    (nothing for a run nobody reviewed)."""
    found = report.get(REVIEW_KEY)
    if not found:
        return ""  # a run nobody reviewed: its report reads as it always did
    title = "Review by people (Table 2)"
    body = [
        _reviewers(found),
        table2(found["table2"]),
        "<h3>Agreement between reviewers</h3>",
        _between_reviewers(found["between_reviewers"]),
        "<h3>Judges against people</h3>",
        _judges_against_people(found["judges"]),
    ]
    note = (
        "The paper's Table 2 from people's complete ratings: the share of rated instances "
        "(95% Wilson interval, n rated) answered yes. An instance rated by several reviewers "
        "counts once: yes only where every reviewer said yes, with the worst rating any gave."
    )
    return section("review", title, "".join(body), note)


def _reviewers(found: dict[str, Any]) -> str:
    reviewers = found["reviewers"]
    who = ", ".join(
        f"{escape(name)} {counts['complete']:,}"
        + (f" (+{counts['in_progress']:,} in progress)" if counts["in_progress"] else "")
        for name, counts in reviewers.items()
    )
    sample = f", from a sample of {found['sample']:,}" if found["sample"] else ""
    return (
        f"<p>{found['rated_items']:,} instances rated ({found['ratings']:,} complete ratings"
        f"{sample}) by {len(reviewers)} reviewer"
        f"{'' if len(reviewers) == 1 else 's'}: {who}. People rejected "
        f"{found['rejected']:,} of them (a no to any question, or a rating below prepare's "
        "minimum).</p>"
    )


def _between_reviewers(pairs: Sequence[dict[str, Any]]) -> str:
    if not pairs:
        return '<p class="note">No two reviewers rated the same instance yet.</p>'
    columns = (*REVIEW_QUESTIONS, ("rating", "Rating A–D"))
    rows = [
        (
            " and ".join(escape(name) for name in pair["reviewers"]),
            number(pair["n"]),
            *(_kappa_cell(pair["questions"][key]) for key, _ in columns),
        )
        for pair in pairs
    ]
    head = ("Reviewers", "Instances both rated", *(label for _, label in columns))
    note = (
        '<p class="note">Cohen\'s kappa of the two reviewers on the instances both rated, '
        "with the share of those they answered alike.</p>"
    )
    return table(head, rows, "numbers pairs") + note


def _kappa_cell(values: dict[str, Any]) -> str:
    agreement = values["agreement"]
    shared = "" if agreement is None else f" <small>{agreement:.0%} alike</small>"
    return f"{_kappa(values['kappa'])}{shared}"


def _judges_against_people(judges: Sequence[dict[str, Any]]) -> str:
    if not judges:
        return (
            '<p class="note">This run has no judge to compare with people (run with '
            "<code>--judge</code>).</p>"
        )
    parts = []
    for found in judges:
        questions = [
            *((label, found["questions"][key]) for key, label in REVIEW_QUESTIONS),
            ("Rating A/B (accept) or C/D", found["rating_accept_A_B"]),
        ]
        if found["decision"] is not None:
            questions.append(("Prepare's keep/drop decision", found["decision"]))
        state = "the current judge" if found["current"] else "an earlier judge"
        rows = [
            (
                escape(label),
                number(agreement["n"]),
                _percent(agreement["accuracy"]),
                _kappa(agreement["kappa"]),
                _percent(agreement["reject_precision"]),
                _percent(agreement["reject_recall"]),
            )
            for label, agreement in questions
        ]
        head = ("Question", "n", "Accuracy", "Kappa", "Reject precision", "Reject recall")
        parts.append(f"<p><code>{escape(found['judge'])}</code>, {state}:</p>")
        parts.append(table(head, rows, "numbers judges"))
    note = (
        '<p class="note">Each judge against people\'s verdict (the truth) on the instances it '
        "judged readably and people rated. Reject precision: of the instances the judge "
        "rejected, the share people rejected too; reject recall: of those people rejected, "
        "the share the judge rejected too. Prepare's decision: keep or drop under prepare's "
        "criteria, the judge's answers against people's.</p>"
    )
    return "".join(parts) + note


def _kappa(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _flat_numbers(values: Any, prefix: str = "") -> str:
    """A stage's numbers as "key value" pairs (nested keys joined with dots)."""
    if not isinstance(values, dict):
        return f"{escape(prefix)} {number(values)}".strip()
    return ", ".join(
        _flat_numbers(value, f"{prefix}.{key}" if prefix else str(key))
        for key, value in values.items()
    )


def diversity(report: dict[str, Any]) -> str:
    d = report["diversity"]
    if not d["available"]:
        return section(
            "diversity", "Verb–noun diversity", f'<p class="hint">{escape(d["hint"])}</p>'
        )
    facts = table(
        ("Measure", "Value"),
        [
            ("Instructions parsed", number(d["parsed"])),
            (
                "With a root verb and direct-object noun",
                f"{number(d['with_structure'])} ({d['share']:.1%})",
            ),
            ("Distinct verbs", number(d["distinct_verbs"])),
            ("Distinct verb–noun pairs", number(d["distinct_pairs"])),
        ],
    )
    chart = (
        figure(
            sunburst(d["top"], "Top verbs and their direct-object nouns"),
            "Top 20 verbs (inner ring) and their top 4 direct-object nouns (outer ring). "
            "Hover for counts.",
        )
        if d["top"]
        else '<p class="hint">No instruction has a root verb with a direct-object noun.</p>'
    )
    note = (
        "The paper's Figure 2: the verb closest to the root of each instruction's dependency "
        "parse (spaCy's small English pipeline) and its first direct-object noun."
    )
    return section(
        "diversity", "Verb–noun diversity", f'<div class="pair">{chart}{facts}</div>', note
    )


def _score(x: float) -> str:
    return f"{x:.2f}"


def similarity(report: dict[str, Any]) -> str:
    sim, var = report["similarity"], report["variety"]
    charts = figure(
        histogram_chart(sim["to_seed"], "ROUGE-L to the most similar seed", "ROUGE-L", _score),
        f"ROUGE-L of each instruction to its most similar seed instruction (Figure 3); "
        f"median {sim['to_seed']['median']:.2f}.",
    ) + figure(
        histogram_chart(sim["to_pool"], "ROUGE-L to the pool when accepted", "ROUGE-L", _score),
        f"Highest ROUGE-L against the whole pool (seeds and earlier instructions) when each "
        f"instruction was accepted; median {sim['to_pool']['median']:.2f}.",
    )
    gen, seeds = var["generated"], var["seeds"]
    rows = [
        (label, number(gen[key]), number(seeds[key]))
        for key, label in (
            ("texts", "Instructions"),
            ("distinct_1", "distinct-1 (unique words / words)"),
            ("distinct_2", "distinct-2"),
            ("distinct_3", "distinct-3"),
            ("pairwise_rouge_l", "mean pairwise ROUGE-L (sampled pairs)"),
            ("pairs", "pairs scored"),
        )
    ]
    body = f'<div class="grid">{charts}</div>' + table(("Variety", "Generated", "Seeds"), rows)
    return section("similarity", "Similarity and variety", body)


def lengths(report: dict[str, Any]) -> str:
    ln = report["lengths"]
    charts = "".join(
        figure(
            histogram_chart(ln[key], f"Words per {name}", "words"),
            f"Words per {name} (mean {ln[key]['mean']:.1f}, median {ln[key]['median']:g}, "
            f"{ln[key]['total']:,} {name}s).",
        )
        for key, name in (
            ("instruction", "instruction"),
            ("input", "non-empty input"),
            ("output", "output"),
        )
    )
    return section("lengths", "Lengths (Figure 4)", f'<div class="grid">{charts}</div>')


def funnel(report: dict[str, Any]) -> str:
    return section(
        "funnel",
        "What was kept and dropped",
        "".join(_funnel_step(s) for s in report["funnel"]),
        "Each stage's records, kept and dropped by reason, over the whole run. "
        "Open a reason to see a few real examples.",
    )


def _funnel_step(s: dict[str, Any]) -> str:
    dropped = [(d["reason"], d["count"]) for d in s["dropped"]]
    total = s["kept"] + sum(n for _, n in dropped)
    title = f"{s['stage']}: {s['unit']}"
    colors = step_colors([reason for reason, _ in dropped])
    rows = "".join(
        _reason_row(d, total, color) for d, color in zip(s["dropped"], colors[1:], strict=True)
    )
    kept_share = s["kept"] / total if total else 0.0
    notes = "".join(_reason_row(d, s["kept"], "", "of which ") for d in s.get("notes", []))
    return (
        f'<div class="step"><h3>{escape(title)}</h3>'
        f"{stacked_bar(s['kept'], dropped, title)}"
        f'<p class="kept">{swatch(colors[0])}kept {s["kept"]:,} of {total:,} '
        f"({kept_share:.1%})</p>"
        f'<ul class="reasons">{notes}{rows}</ul></div>'
    )


def _reason_row(d: dict[str, Any], total: int, color: str, prefix: str = "") -> str:
    examples = "".join(f"<li><pre>{escape(e)}</pre></li>" for e in d["examples"])
    mark = swatch(color) if color else ""
    share = d["count"] / total if total else 0.0
    return (
        f"<li><details><summary>{mark}{prefix}<b>{escape(d['reason'])}</b> {d['count']:,} "
        f'({share:.1%})</summary><ol class="examples">{examples}</ol></details></li>'
    )


def economics(report: dict[str, Any]) -> str:
    eco = report["economics"]
    head = ["Stage", "Runs", "Requests", "From cache", "Tokens in", "Tokens out", "Seconds",
            "Requests/s", "Tokens out/s"]  # fmt: skip
    if eco["priced"]:
        head.append("Cost ($)")
    rows = [_economics_row(s, eco["priced"]) for s in [*eco["stages"], eco["total"]]]
    note = (
        "Requests counts answers fetched from the model; answers taken from the run's cache "
        "are counted apart."
    )
    return section(
        "economics", "Requests, tokens, cost and time", table(head, rows, "numbers"), note
    )


def _economics_row(s: dict[str, Any], priced: bool) -> list[str]:
    row = [
        escape(s["stage"]),
        *(
            number(s[k])
            for k in ("runs", "requests", "cached", "prompt_tokens", "completion_tokens")
        ),
        f"{s['seconds']:.1f}",
        f"{s['requests_per_second']:.2f}",
        f"{s['tokens_per_second']:.1f}",
    ]
    if priced:
        row.append(f"{s['cost']:.4f}")
    return row


REVIEW_ROW = "Rated by people"  # shown when a run compared was reviewed
COMPARE_ROWS = (
    ("Model", lambda r: f"{r['run']['model'].get('model')} ({r['run']['model'].get('backend')})"),
    ("Prompt style", lambda r: r["run"]["prompt_style"]),
    ("Seeds", lambda r: f"{r['run']['seeds']['count']} ({r['run']['seeds']['sha256'][:8]})"),
    ("Instructions", lambda r: number(r["table1"]["instructions"])),
    ("Classification", lambda r: number(r["table1"]["classification"])),
    ("Instances kept", lambda r: number(r["table1"]["instances"])),
    ("Empty inputs", lambda r: number(r["table1"]["empty_input"])),
    ("Words / instruction", lambda r: number(r["table1"]["avg_instruction_words"])),
    ("Words / output", lambda r: number(r["table1"]["avg_output_words"])),
    ("Median ROUGE-L to seeds", lambda r: _score(r["similarity"]["to_seed"]["median"])),
    ("distinct-2", lambda r: number(r["variety"]["generated"]["distinct_2"])),
    ("Pairwise ROUGE-L", lambda r: number(r["variety"]["generated"]["pairwise_rouge_l"])),
    ("Distinct verbs", lambda r: _verbs(r, "distinct_verbs")),
    ("Distinct verb–noun pairs", lambda r: _verbs(r, "distinct_pairs")),
    ("Candidates kept", lambda r: _kept_share(r, "candidates")),
    (REVIEW_ROW, lambda r: _rated(r)),
    ("Requests", lambda r: number(r["economics"]["total"]["requests"])),
    ("Tokens out", lambda r: number(r["economics"]["total"]["completion_tokens"])),
    ("Seconds", lambda r: f"{r['economics']['total']['seconds']:.1f}"),
)  # fmt: skip


def _verbs(report: dict[str, Any], key: str) -> str:
    found = report["diversity"]
    return number(found[key]) if found["available"] else "–"


def _rated(report: dict[str, Any]) -> str:
    found = report.get(REVIEW_KEY)
    if not found:
        return "–"
    every = found["table2"]["groups"]["all"]["all three"]
    return f"{found['rated_items']:,} instances, all three valid {every['percent']:.1f}%"


def _kept_share(report: dict[str, Any], unit: str) -> str:
    for s in report["funnel"]:
        if s["unit"] == unit:
            total = s["kept"] + sum(d["count"] for d in s["dropped"])
            return f"{s['kept']:,} of {total:,}"
    return "–"


def compare(reports: Sequence[dict[str, Any]]) -> str:
    names = [r["run"]["name"] for r in reports]
    reviewed = any(r.get(REVIEW_KEY) for r in reports)
    rows = [
        (escape(label), *(escape(str(get(r))) for r in reports))
        for label, get in COMPARE_ROWS
        if reviewed or label != REVIEW_ROW
    ]
    body = table(("", *names), rows, "compare")
    empty = [n for n, r in zip(names, reports, strict=True) if not r["table1"]["instances"]]
    if empty:
        left_out = escape(", ".join(empty))
        body += (
            f'<p class="note">No instances yet, so left out of the input and output charts: '
            f"{left_out}.</p>"
        )
    charts = "".join(
        figure(
            overlay_chart(
                [(n, r[group][key]) for n, r in zip(names, reports, strict=True)],
                title,
                x_label,
                _score if group == "similarity" else "{:g}".format,
            ),
            escape(title),
        )
        for group, key, title, x_label in (
            ("similarity", "to_seed", "ROUGE-L to the most similar seed", "ROUGE-L"),
            ("lengths", "instruction", "Words per instruction", "words"),
            ("lengths", "input", "Words per non-empty input", "words"),
            ("lengths", "output", "Words per output", "words"),
        )
    )
    return section(
        "compare", "Runs side by side", body + legend(names) + f'<div class="grid">{charts}</div>'
    )
