"""A local Hugging Face `transformers` model as a backend (e.g. one fine-tuned with
`selfinstruct finetune`): a model directory, a PEFT adapter directory, or a GGUF file
(dequantized by transformers). Needs the `train` extra (torch, transformers, peft, gguf)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM, Completion, Request

# No downloads, telemetry or experiment trackers: everything here runs offline.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}


def go_offline() -> None:
    """Set OFFLINE in the environment (a user's own settings win)."""
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)


def load_model(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a model directory, an adapter directory or a .gguf file."""
    go_offline()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise BackendError(
            "the transformers backend needs the train extra: pip install 'selfinstruct[train]'"
        ) from exc
    path = Path(path)
    if not path.exists():
        raise BackendError(f"{path}: model not found")
    if path.is_file():
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        # The weights are dequantized to dense float32 on load, but transformers keeps a GGUF
        # "quantizer" attached, which refuses training and saving: detach it.
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
    elif (path / "adapter_config.json").is_file():
        model, tokenizer = _load_adapter(path)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    model.eval()
    return model, tokenizer


BASE_FILE = "selfinstruct_base.json"  # written beside an adapter: the base it was trained on


def _load_adapter(path: Path) -> tuple[Any, Any]:
    """An adapter on its base: the base named in BASE_FILE (a GGUF file or a directory), or
    the one recorded in adapter_config.json."""
    import json

    from peft import PeftModel
    from transformers import AutoTokenizer

    recorded = path / BASE_FILE
    if recorded.is_file():
        base = json.loads(recorded.read_text(encoding="utf-8"))["base"]
    else:
        base = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))[
            "base_model_name_or_path"
        ]
    model, _ = load_model(base)
    return PeftModel.from_pretrained(model, path), AutoTokenizer.from_pretrained(path)


class TransformersLLM(LLM):
    name = "transformers"
    packages = ("torch", "transformers", "peft")

    @classmethod
    def model_name(cls, model: str, settings: Any) -> str:
        return str(Path(model).resolve()) if model else ""

    @classmethod
    def model_label(cls, model: str, settings: Any) -> str:
        return Path(cls.model_name(model, settings)).name

    def __init__(self, model: str = "") -> None:
        super().__init__(model)
        if not model:
            raise BackendError(
                "the transformers backend needs --model PATH (a model or "
                "adapter directory, or a .gguf file)"
            )
        self._model, self._tokenizer = load_model(model)
        self._vocab = self._tokenizer.get_vocab()

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._complete(request) for request in requests]

    def _complete(self, request: Request) -> Completion:
        import torch

        tokenizer = self._tokenizer
        if request.messages is not None:
            if not getattr(tokenizer, "chat_template", None):
                raise BackendError(f"{self.model}: no chat template; use the completion style")
            ids = tokenizer.apply_chat_template(
                [{"role": r, "content": c} for r, c in request.messages],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )["input_ids"]
        else:
            ids = tokenizer(request.prompt, return_tensors="pt")["input_ids"]
        sampling: dict[str, Any] = {"do_sample": False}
        if request.temperature > 0:
            sampling = {
                "do_sample": True,
                "temperature": request.temperature,
                "top_p": request.top_p,
            }
            if request.seed is not None:
                torch.manual_seed(request.seed)
        enders = [
            t
            for t in (
                tokenizer.eos_token_id,
                *(self._vocab[s] for s in request.stop if s in self._vocab),
            )
            if t is not None
        ]
        if request.stop:  # stop as soon as a stop sequence appears, not only when cut later
            sampling |= {"stop_strings": [s for s in request.stop if s], "tokenizer": tokenizer}
        with torch.no_grad():
            output = self._model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=request.max_tokens,
                eos_token_id=enders or None,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                **sampling,
            )
        new = output[0, ids.shape[1] :]
        # Decode with special tokens so a stop sequence that is one (e.g. <|endoftext|>) is
        # found, cut there, then drop the special tokens that remain (end of sequence...).
        text = tokenizer.decode(new, skip_special_tokens=False)
        finish = "length" if len(new) >= request.max_tokens else "stop"
        cut = min((i for i in (text.find(s) for s in request.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        for special in tokenizer.all_special_tokens:
            text = text.replace(special, "")
        return Completion(text, finish, int(ids.shape[1]), len(new))
