"""Find a checkpoint (local folder or Hugging Face repo id) and load it per component.

Loading goes through the library's normal `from_pretrained` path in float32; then each
component gets its own precision (see precision.py): the talker and code predictor in
float32, bfloat16 or int8, the vocoder in float32 unless the CPU has native bf16, the speaker
encoder always in float32 (it runs once per cloned voice).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path

import torch

from ..contract import BASE, MODEL_TYPES, EngineLoadError
from .precision import Precision
from .qwen_import import import_qwen_tts

_LOGGER = logging.getLogger(__name__)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().exists() or (
        model.count("/") != 1
    )


def _progress_class():
    """A tqdm class that reports download progress in the log instead of a terminal bar."""
    from tqdm.auto import tqdm

    class LogProgress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = open("/dev/null", "w")  # noqa: SIM115 - closed with the bar
            super().__init__(*args, **kwargs)
            self._last_logged = -1

        def update(self, n=1):
            result = super().update(n)
            if self.total and self.unit == "B":
                decile = int(10 * self.n / self.total)
                if decile != self._last_logged:
                    self._last_logged = decile
                    _LOGGER.info("Downloading %s: %d%% of %.0f MB", self.desc or "model",
                                 10 * decile, self.total / 1e6)
            return result

        def close(self):
            super().close()
            self.fp.close()

    return LogProgress


def resolve_checkpoint(model: str, data_dir: Path, local_files_only: bool = False) -> Path:
    """Return the local folder of `model`: itself if a folder, else its downloaded snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EngineLoadError(f"{path} is not a Qwen3-TTS checkpoint folder (no config.json)")
        return path
    if _looks_like_path(model):
        raise EngineLoadError(f"model folder not found: {model}")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache_dir = Path(data_dir) / "models"
    cache_dir.mkdir(parents=True, exist_ok=True)
    _LOGGER.info("Getting %s into %s%s", model, cache_dir,
                 " (local files only)" if local_files_only else "")
    try:
        folder = snapshot_download(repo_id=model, cache_dir=str(cache_dir),
                                   local_files_only=local_files_only,
                                   tqdm_class=_progress_class())
    except LocalEntryNotFoundError as err:
        # also raised when the hub cannot be reached and nothing is cached yet
        why = ("downloads are off (--local-files-only)" if local_files_only
               else f"the download failed: {err}")
        raise EngineLoadError(f"{model} is not in {cache_dir} and {why}") from err
    except Exception as err:  # network errors, unknown repo, disk full...
        raise EngineLoadError(f"could not download {model}: {err}") from err
    return Path(folder)


def read_checkpoint_config(folder: Path) -> dict:
    with open(folder / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    if config.get("tts_model_type") not in MODEL_TYPES:
        raise EngineLoadError(
            f"{folder}: unsupported tts_model_type {config.get('tts_model_type')!r} "
            f"(expected one of {', '.join(MODEL_TYPES)})"
        )
    if config.get("tokenizer_type", "qwen3_tts_tokenizer_12hz") != "qwen3_tts_tokenizer_12hz":
        raise EngineLoadError(f"{folder}: only 12 Hz checkpoints are supported")
    return config


def _concat_linear(parts: list[torch.nn.Linear]) -> torch.nn.Linear:
    fused = torch.nn.Linear(parts[0].in_features, sum(p.out_features for p in parts),
                            bias=parts[0].bias is not None, dtype=parts[0].weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in parts]))
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([p.bias for p in parts]))
    return fused


def fuse_projections(layer) -> None:
    """Replace q/k/v and gate/up projections of a decoder layer by one linear each.

    Only our decode loop (decoding.Stack) knows the fused layout: the library's own forward
    of a fused layer no longer works.
    """
    attn, mlp = layer.self_attn, layer.mlp
    attn.qkv_split = [attn.q_proj.out_features, attn.k_proj.out_features,
                      attn.v_proj.out_features]
    attn.qkv_proj = _concat_linear([attn.q_proj, attn.k_proj, attn.v_proj])
    mlp.gate_up_proj = _concat_linear([mlp.gate_proj, mlp.up_proj])
    del attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj


class MappedEmbedding(torch.nn.Module):
    """An embedding table read row by row from the checkpoint file, never held in memory.

    The talker's text embedding (151936 x 2048: 622 MB in bfloat16) is only looked up for the
    few dozen tokens of a prompt.  safetensors memory-maps the file: the rows read come from
    the page cache, and the table costs no resident memory of its own.
    """

    def __init__(self, folder: Path, name: str, like: torch.nn.Embedding) -> None:
        super().__init__()
        from safetensors import safe_open

        self.name = name
        self.embedding_dim = like.embedding_dim
        self.num_embeddings = like.num_embeddings
        self._file = safe_open(str(_file_holding(folder, name)), framework="pt")
        self._rows = self._file.get_slice(name)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1).tolist()
        rows = torch.stack([self._rows[i:i + 1][0] for i in flat]) if flat else \
            torch.empty(0, self.embedding_dim)
        return rows.view(*ids.shape, self.embedding_dim)


def _file_holding(folder: Path, name: str) -> Path:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        with open(index, encoding="utf-8") as f:
            return folder / json.load(f)["weight_map"][name]
    return folder / "model.safetensors"


def _quantize(module: torch.nn.Module) -> None:
    """int8 dynamic quantization (fbgemm) of a module's linear layers, one module at a time
    from float32 copies, so the whole talker never exists in float32 at once.

    One scale per output row (per channel), not one per matrix: trained weights have rows of
    very different size, and a single scale spends the 8 bits on the largest.  With a few
    rows 10x larger than the rest, the product's error was 1.7 % against 3.3 % per tensor,
    at the same speed (28 talker-sized layers, 20 ms either way, here)."""
    import warnings

    module.float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8, inplace=True)


def _exact_rope(module: torch.nn.Module) -> None:
    """Recompute rotary inverse frequencies in float32 (a bfloat16 load rounds them)."""
    for sub in module.modules():
        if hasattr(sub, "rope_init_fn") and hasattr(sub, "inv_freq"):
            inv_freq, _ = sub.rope_init_fn(sub.config, None)
            sub.inv_freq = inv_freq.float()
            sub.original_inv_freq = sub.inv_freq


def _tune_allocator() -> None:
    """Serve allocations of 256 KiB and more from mmap, so that freed tensors go back to the
    system.  glibc's default threshold rises to 32 MiB after the first large free, and then
    every temporary below that stays resident: 0.3 GB more at the peak of serving the 0.6B
    model (2.35 GB against 2.02 GB measured).  Small per-step tensors stay on the heap."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _release_freed_memory() -> None:
    """Give memory freed while converting weights back to the system.

    glibc keeps freed blocks below its (self-raising) mmap threshold in the heap; after the
    layer-by-layer conversion that is gigabytes of resident memory nobody uses.
    """
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def load_model(folder: Path, precision: Precision):
    """Load through `Qwen3TTSModel.from_pretrained`, then set each component's precision.

    Every part loads in the precision it is stored in (the published talker in bfloat16, the
    speech tokenizer in float32), then: float32 upcasts the talker (exactly: the reference
    path); bfloat16 keeps it; int8 quantizes its linear layers layer by layer.  Besides, for
    bfloat16 and int8: q/k/v and gate/up are fused, the text embedding stays on disk
    (MappedEmbedding), and the speech tokenizer's encoder is dropped unless the model clones
    voices.  The 0.6B model in int8 then serves in about 2 GB of RSS (5.3 GB for the official
    float32 path); see BENCHMARKS.md.
    """
    config = read_checkpoint_config(folder)
    _tune_allocator()
    qwen_tts = import_qwen_tts()
    started = time.monotonic()
    try:
        tts = qwen_tts.Qwen3TTSModel.from_pretrained(str(folder), dtype="auto",
                                                     local_files_only=True)
    except Exception as err:
        raise EngineLoadError(f"could not load {folder}: {err}") from err
    model = tts.model.eval()
    talker = model.talker
    if precision.generation == "float32":
        talker.float()
    else:
        # 4 products a layer instead of 7 (only our decode loop knows the fused layout)
        for layer in [*talker.model.layers, *talker.code_predictor.model.layers]:
            fuse_projections(layer)
        talker.model.text_embedding = MappedEmbedding(
            folder, "talker.model.text_embedding.weight", talker.model.text_embedding)
        if config.get("tts_model_type") != BASE:
            del model.speech_tokenizer.model.encoder  # only cloning encodes audio
    if precision.generation == "bfloat16":
        talker.to(torch.bfloat16)
    elif precision.generation == "int8":
        for layer in [*talker.model.layers, *talker.code_predictor.model.layers]:
            _quantize(layer)
            # q and k heads normed in one call (decoding.Stack): their weights side by side
            attn = layer.self_attn
            q_heads, k_heads = (n // attn.head_dim for n in attn.qkv_split[:2])
            attn.qk_norm_weight = torch.cat([attn.q_norm.weight.expand(q_heads, -1),
                                             attn.k_norm.weight.expand(k_heads, -1)])
        _quantize(talker)  # what is left: heads, projections, norms, embeddings
    model.speech_tokenizer.model.to(precision.vocoder)
    if model.speaker_encoder is not None:
        model.speaker_encoder.to(torch.float32)
    _exact_rope(model)
    _release_freed_memory()
    _LOGGER.info("Loaded %s in %.1f s (%s)", folder, time.monotonic() - started,
                 precision.describe())
    return tts
