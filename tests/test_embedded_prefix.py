"""Prefix reuse in the embedded backend: the same greedy outputs as a cold evaluation, and the
few-shot block really is evaluated only once per template.

The model tests use one thread, so they take about the same time (under a minute) on a busy
machine as on an idle one."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from selfinstruct.llm.backends.embedded import EmbeddedLLM
from selfinstruct.llm.base import Request
from selfinstruct.llm.model_file import packaged_model_path
from selfinstruct.llm.prefix_cache import PrefixCache
from selfinstruct.prompts import TemplateSet
from selfinstruct.seeds import load_seeds
from selfinstruct.stages.registry import default_stops, template_spec

pytestmark = pytest.mark.embedded

TEMPLATES = ("classify", "instances_classification")


def _requests(style: str, seeds: int, first: int = 0) -> list[Request]:
    """Alternating templates, as the pipeline sends them when labels alternate."""
    templates, tasks = TemplateSet(), load_seeds()
    requests = []
    for index, seed in enumerate(tasks[first : first + seeds]):
        for name in TEMPLATES:
            prompt = templates.render(
                style, template_spec(name), instruction=seed.instruction, max_instances=5
            )
            stage = "classify" if name == "classify" else "instances"
            requests.append(
                Request(
                    prompt=prompt.text,
                    messages=prompt.messages,
                    max_tokens=3 if stage == "classify" else 24,
                    temperature=0.0,
                    top_p=0.0,
                    presence_penalty=0.0 if stage == "classify" else 1.5,
                    stop=tuple(default_stops(stage, style)),
                    seed=index,
                    task=name,
                )
            )
    return requests


@pytest.fixture(scope="module")
def llm():
    backend = EmbeddedLLM(packaged_model_path(), n_ctx=4096, n_threads=1, n_batch=512)
    yield backend
    backend.close()


def _cold(llm: EmbeddedLLM, requests: list[Request]) -> list[str]:
    """Every prompt evaluated from an empty KV cache, without snapshots."""
    cache = llm.prefix_cache
    cache.enabled = False
    try:
        texts = []
        for request in requests:
            llm.engine.reset()
            llm.engine._ctx.kv_cache_seq_rm(0, 0, -1)
            texts.append(llm.generate([request])[0].text)
        return texts
    finally:
        cache.enabled = True


def test_prefix_reuse_gives_cold_outputs_and_skips_the_fewshot_block(llm: EmbeddedLLM) -> None:
    requests = _requests("completion", 2)
    requests.append(requests[2])  # the same prompt again (a retry): served from the state
    cache = llm.prefix_cache
    cache.clear()
    restored = cache.stats.snapshots_restored
    evaluated, warm = [], []
    for request in requests:
        start = cache.stats.prompt_tokens_evaluated
        warm.append(llm.generate([request])[0].text)
        evaluated.append(cache.stats.prompt_tokens_evaluated - start)
    total = sum(
        len(llm.engine.tokenize((r.prompt or "").encode(), add_bos=False, special=True))
        for r in requests
    )
    # The first request of each template reads its few-shot block (about 700 tokens); every
    # later one reads only its own instruction, after a snapshot restore (the templates
    # alternate, so llama-cpp-python's own reuse of the previous prompt never applies).
    assert min(evaluated[:2]) > 600
    assert max(evaluated[2:]) < 64, evaluated
    assert cache.stats.snapshots_restored - restored == len(requests) - 2
    cold = _cold(llm, requests)
    assert warm == cold
    assert sum(evaluated) < 0.45 * total  # cold: all of it


def test_prefix_reuse_chat_style(llm: EmbeddedLLM) -> None:
    requests = _requests("chat", 2, first=3)
    cache = llm.prefix_cache
    cache.clear()
    evaluated, prompts = cache.stats.prompt_tokens_evaluated, cache.stats.prompt_tokens
    warm = [c.text for c in llm.generate(requests)]
    evaluated = cache.stats.prompt_tokens_evaluated - evaluated
    prompts = cache.stats.prompt_tokens - prompts
    assert warm == _cold(llm, requests)
    assert evaluated < 0.6 * prompts  # 2 of the 4 prompts read only their instruction


class _FakeEngine:
    """What PrefixCache uses of llama_cpp.Llama, recording the sizes of the steps it decodes."""

    def __init__(self, n_batch: int, n_ubatch: int) -> None:
        self.n_batch = n_batch
        self.context_params = SimpleNamespace(n_ubatch=n_ubatch)
        self.input_ids = np.zeros(4096, dtype=np.intc)
        self.n_tokens = 0
        self._requires_eval = True
        self._ctx = SimpleNamespace(kv_cache_seq_rm=lambda seq, p0, p1: True)
        self.steps: list[int] = []

    def eval(self, tokens: list[int]) -> None:
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self.steps.append(len(tokens))

    def generate(self, tokens: list[int], **kwargs: object):
        yield from ()


def _fake_cache(n_batch: int, n_ubatch: int) -> PrefixCache:
    cache = PrefixCache(_FakeEngine(n_batch, n_ubatch))
    cache._save = lambda tokens, probation: None  # type: ignore[method-assign]
    return cache


def test_hand_over_never_decodes_a_single_token_a_cold_evaluation_would_not() -> None:
    cache = _fake_cache(512, 512)
    engine = cache.engine
    # A new kind of prompt of 513 tokens: evaluated up to its last token, which llama.cpp
    # then decodes alone, as in a cold evaluation (512 + 1).
    cache.prepare(np.arange(513, dtype=np.intc))
    assert (engine.steps, engine.n_tokens) == ([512], 512)
    # 700 tokens, all already held: llama-cpp-python gets the last two (not one) to decode.
    engine.steps.clear()
    engine.n_tokens = 0
    prompt = np.arange(1000, 1700, dtype=np.intc)
    engine.eval(prompt.tolist())
    cache._clean = 700
    cache.prepare(prompt)
    assert (engine.steps, engine.n_tokens) == ([700], 698)
    # 513 tokens to evaluate ahead of a snapshot: never a one-token step (511 + 2).
    engine.steps.clear()
    assert cache._extend(np.arange(2000, 2600, dtype=np.intc), 0, 513) == 513
    assert engine.steps == [511, 2]


@pytest.mark.parametrize(
    ("n_batch", "n_ubatch", "start", "end", "singles"),
    [
        (512, 512, 0, 1000, []),
        (512, 512, 0, 513, [512]),
        (512, 512, 100, 613, [612]),
        (512, 512, 700, 702, []),
        (2048, 512, 0, 1537, [1536]),
        (600, 512, 0, 1200, []),
        (513, 512, 0, 513, [512]),
    ],
)
def test_single_token_steps(
    n_batch: int, n_ubatch: int, start: int, end: int, singles: list[int]
) -> None:
    assert _fake_cache(n_batch, n_ubatch)._single_steps(start, end) == singles
