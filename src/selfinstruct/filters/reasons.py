"""Why a record is dropped: every reason's name, defined once with what it means.

The stage summaries, run.json, quality_drops.jsonl, the report and the dataset card name
drops with these (docs/reference/summaries.md lists them, generated from `REASONS`). A name
says why, whatever was dropped: `duplicate` is a repeated candidate instruction in bootstrap
and a repeated instance in prepare; `truncated` a response or an answer cut off at
max_tokens. A check a plug-in stage declares on its records names its own reasons.
"""

from __future__ import annotations

from selfinstruct.parsing.labels import UNREADABLE

REASONS: dict[str, str] = {}  # every built-in reason: what it means


def _reason(name: str, meaning: str) -> str:
    REASONS[name] = meaning
    return name


# bootstrap: candidate instructions (the paper's heuristics, then the similarity filter)
EMPTY = _reason("empty", "the candidate instruction is empty")
TOO_SHORT = _reason("too_short", "fewer words than `bootstrap.min_words`")
TOO_LONG = _reason("too_long", "more words than `bootstrap.max_words`")
KEYWORD = _reason("keyword", "holds a word of `bootstrap.blocked_keywords` (image, graph...)")
BLOCKED_PREFIX = _reason("blocked_prefix", "starts with one of `bootstrap.blocked_prefixes`")
STARTS_WITH_PUNCTUATION = _reason("starts_with_punctuation", "starts with a punctuation mark")
STARTS_NON_ASCII = _reason("starts_non_ascii", "starts with a character outside ASCII")
TRUNCATED_ITEM = _reason(
    "truncated_item",
    "the last, cut item of a response kept in part (`bootstrap.truncated_responses = "
    '"keep_complete_items"`)',
)
DUPLICATE = _reason(
    "duplicate",
    "an exact repeat: of an instruction already in the pool (bootstrap, merge), or of an "
    "instance kept before in the same task (prepare)",
)
ROUGE = _reason(
    "rouge", "ROUGE-L above `bootstrap.rouge_threshold` to an instruction already in the pool"
)

# bootstrap: responses dropped whole; instances: answers nothing was read from
TRUNCATED = _reason(
    "truncated",
    "cut off at max_tokens: a bootstrap response (dropped whole, the paper's rule), or an "
    "instances answer cut before its first complete instance",
)
UNPARSEABLE = _reason(
    "unparseable",
    "nothing could be read from the answer: a bootstrap response with no instruction, or an "
    "instances answer with no instance",
)
FAILED = _reason("failed", "the request failed (a rerun retries it)")

# classify (not a drop: the label is kept) and instances
UNREADABLE_LABEL = _reason(
    UNREADABLE, "a classify answer neither yes nor no: counted as not classification"
)
NO_LABEL = _reason("no_label", "not labelled by classify yet: instances waits for its label")

# prepare: whole tasks
NOT_CLASSIFICATION = _reason(
    "not_classification", "not a classification task (`prepare.classification_tasks_only`)"
)
CONTAMINATED = _reason(
    "contaminated",
    "too close to an evaluation task: an instruction above `prepare.decontaminate_rouge` "
    "ROUGE-L to an evaluation instruction (the whole task), or an instance sharing "
    "`prepare.decontaminate_ngram` consecutive words with one",
)

# prepare: instances, the quality screen's checks (in the order they apply)
HUMAN_REJECTED = _reason(
    "human_rejected",
    'people rejected it (`selfinstruct review`: a "no", or a rating below `prepare.min_rating`)',
)
JUDGE_MISSING = _reason(
    "judge_missing", "the current judge has not judged it (`prepare.keep_unjudged` keeps it)"
)
JUDGE_UNPARSEABLE = _reason(
    "judge_unparseable", "the judge's answer could not be read (`prepare.keep_unjudged` keeps it)"
)
JUDGE_REJECTED = _reason(
    "judge_rejected",
    "the judge rated it below `prepare.min_rating`, or said no to a question of "
    "`prepare.require_yes`",
)
LABEL_DISAGREES = _reason(
    "label_disagrees", "relabel's input-first label disagrees with the classify label"
)

# prepare: instances, the paper's filters (in the order they apply), then the cap per task
EMPTY_OUTPUT = _reason("empty_output", "the output is empty")
INPUT_EQUALS_OUTPUT = _reason("input_equals_output", "the output repeats the input")
ENDS_WITH_COLON = _reason("ends_with_colon", "the input or the output ends with a colon")
SAME_INPUT_DIFFERENT_OUTPUT = _reason(
    "same_input_different_output",
    "one non-empty input of the task has two different outputs: every instance of the task "
    "the filters above kept goes",
)
OVER_TASK_CAP = _reason(
    "over_task_cap", "beyond `prepare.max_instances_per_task` (a random sample is kept)"
)

# prepare: fine-tuning examples
DUPLICATE_PROMPT_COMPLETION = _reason(
    "duplicate_prompt_completion", "the same prompt and completion as an example before"
)

# The order prepare applies its checks in, which breaks a tie between the reasons that dropped
# a task's instances (`dataset.build.task_reason`): contamination (a whole task's comes before
# every other check), the quality screen's checks, then the paper's filters.
PREPARE_ORDER = (
    CONTAMINATED,
    HUMAN_REJECTED,
    JUDGE_MISSING,
    JUDGE_UNPARSEABLE,
    JUDGE_REJECTED,
    LABEL_DISAGREES,
    EMPTY_OUTPUT,
    INPUT_EQUALS_OUTPUT,
    ENDS_WITH_COLON,
    SAME_INPUT_DIFFERENT_OUTPUT,
    DUPLICATE,
    OVER_TASK_CAP,
)
