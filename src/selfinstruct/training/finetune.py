"""Supervised LoRA fine-tuning with TRL and PEFT, on CPU or GPU.

The base is the embedded GGUF (dequantized by transformers), another .gguf file, or a local
Hugging Face model directory. The loss covers the completion only by default (the paper fine-
tuned with a prompt loss weight of 0). Output directory:
  adapter/   the LoRA adapter (PEFT), loadable on the base model
  merged/    the base model with the adapter merged in, plus its tokenizer
  README.md  a model card: base, data (path, sha256, examples), settings, losses, versions
  training_log.jsonl  one line per logged step (loss, learning rate, epoch)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from selfinstruct.errors import RunError
from selfinstruct.io.atomic import current_umask

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: float = 2.0
    learning_rate: float = 2e-4
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 512
    max_steps: int = -1  # > 0 overrides epochs
    completion_only_loss: bool = True
    chat_template: str = ""  # a Jinja template file; "" keeps the tokenizer's own
    seed: int = 42


@dataclass(frozen=True)
class FinetuneResult:
    adapter: Path
    merged: Path
    card: Path
    steps: int
    first_loss: float | None
    last_loss: float | None
    seconds: float


def base_model_path(base: str) -> Path:
    """'embedded' is the packaged SmolLM2 GGUF; anything else is a .gguf file or a directory."""
    if base == "embedded":
        from selfinstruct.llm.model_file import packaged_model_path

        return packaged_model_path()
    path = Path(base)
    if not path.exists():
        raise RunError(
            f"{path}: base model not found (a .gguf file, a model directory, or 'embedded')"
        )
    return path


def finetune(
    rows: list[dict[str, Any]],
    data_path: Path,
    base: str,
    out: Path,
    settings: FinetuneSettings,
    quiet: bool = False,
) -> FinetuneResult:
    """Train in a hidden directory beside `out` and move it into place when everything is
    written: an interrupted or failed run leaves no half-written output."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        result = _train(rows, data_path, base, work, settings, quiet)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    os.chmod(work, 0o777 & ~current_umask())  # mkdtemp made it private
    try:
        if out.is_dir() and not out.is_symlink():
            out.rmdir()  # checked empty by the caller
        os.replace(work, out)
    except OSError as exc:  # keep the trained model: say where it is
        raise RunError(
            f"training finished but {out} could not be replaced ({exc.strerror}); "
            f"the adapter, merged model and card are in {work}"
        ) from exc
    return dataclasses.replace(
        result, adapter=out / "adapter", merged=out / "merged", card=out / "README.md"
    )


def _train(
    rows: list[dict[str, Any]],
    data_path: Path,
    base: str,
    out: Path,
    settings: FinetuneSettings,
    quiet: bool,
) -> FinetuneResult:
    from selfinstruct.llm.backends.transformers import BASE_FILE, go_offline, load_model

    go_offline()  # before the Hugging Face libraries are imported
    try:
        import datasets
        import torch
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import PrinterCallback
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        raise RunError(
            "fine-tuning needs the train extra: pip install 'selfinstruct[train]' "
            f"({exc.name} is missing)"
        ) from exc
    from selfinstruct.training.progress import LossLog

    base_path = base_model_path(base)
    model, tokenizer = load_model(base_path)
    if settings.chat_template:
        tokenizer.chat_template = Path(settings.chat_template).read_text(encoding="utf-8")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    log = LossLog(out / "training_log.jsonl", quiet=quiet)
    gpu = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        max_length=settings.max_length,
        completion_only_loss=settings.completion_only_loss,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=settings.seed,
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        fp16=False,
        activation_checkpointing=False,
        packing=False,
        disable_tqdm=True,
        dataloader_pin_memory=gpu,
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=TARGET_MODULES,
        task_type="CAUSAL_LM",
    )
    if quiet:
        datasets.disable_progress_bars()
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[log.callback()],
    )
    trainer.remove_callback(PrinterCallback)  # our LossLog prints the steps instead
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started

    adapter, merged = out / "adapter", out / "merged"
    with warnings.catch_warnings():  # PEFT looks for a config.json beside a GGUF base
        warnings.filterwarnings("ignore", message="Could not find a config file")
        trainer.save_model(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    (adapter / BASE_FILE).write_text(
        json.dumps({"base": str(base_path.resolve())}), encoding="utf-8"
    )
    merged_model = trainer.model.merge_and_unload()
    merged_model.save_pretrained(str(merged))
    tokenizer.save_pretrained(str(merged))
    result = FinetuneResult(
        adapter, merged, out / "README.md", log.steps, log.first_loss, log.last_loss, seconds
    )
    write_model_card(result, base_path, data_path, len(rows), settings)
    return result


def write_model_card(
    result: FinetuneResult, base: Path, data: Path, examples: int, settings: FinetuneSettings
) -> None:
    from selfinstruct.training.data import resolve_source

    data = resolve_source(data)
    digest = _sha256(data)
    versions = {
        name: _version(name) for name in ("selfinstruct", "torch", "transformers", "peft", "trl")
    }
    lines = [
        "# Fine-tuned with selfinstruct",
        "",
        f"- base model: `{base}`",
        f"- training data: `{data}` ({examples} examples, sha256 {digest})",
        f"- method: LoRA (rank {settings.lora_rank}, alpha {settings.lora_alpha}, dropout "
        f"{settings.lora_dropout}, modules {', '.join(TARGET_MODULES)})",
        f"- loss: {_loss_scope(settings)}",
        f"- steps: {result.steps}; training time {result.seconds:.0f} s; mean loss over the "
        f"first tenth of the steps {_fmt(result.first_loss)}, over the last tenth "
        f"{_fmt(result.last_loss)}",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(asdict(settings), indent=2),
        "```",
        "",
        "## Versions",
        "",
        "```json",
        json.dumps(versions, indent=2),
        "```",
        "",
        "`adapter/` holds the LoRA adapter, `merged/` the model with it merged in;",
        "`training_log.jsonl` the loss at every step.",
        "",
    ]
    result.card.write_text("\n".join(lines), encoding="utf-8")


def _loss_scope(settings: FinetuneSettings) -> str:
    if settings.completion_only_loss:
        return "completion only (prompt loss weight 0)"
    return "prompt and completion"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
