"""Offline token counting with tiktoken and the BPE files vendored in ``tokenizer_data/``.

tiktoken downloads its BPE files on first use, which fails on a machine without network.
:func:`seed_cache` writes the bundled copies into a tiktoken cache directory under the names
tiktoken looks for (the sha1 of the blob URL); tiktoken checks their sha256 and then never
downloads. Encodings load once per process, on first use (~0.5 s each, off the event loop
through :func:`count_tokens_async`), or up front with :func:`warm_up`.

Counts are exact for OpenAI models and an o200k_base estimate for every other model. Two guards
keep counting safe on a public gateway:

* at most ``MAX_EXACT_CHARS`` characters are tokenized; the rest is estimated at four characters
  a token, because tiktoken's time grows faster than linearly on some inputs (about 0.5 s for
  1 MB of one repeated character);
* a whitespace run longer than ``MAX_WHITESPACE_RUN`` is tokenized in slices, because o200k_base
  panics (a Rust ``PanicException``, which is not an ``Exception``) on a run of about one million
  spaces. Slicing such a run changes its count by a token or two.

:func:`count_tokens_async` moves large inputs to a worker thread (tiktoken releases the GIL), so
counting never blocks the event loop for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gzip
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from importlib import resources

import tiktoken

__all__ = [
    "MAX_EXACT_CHARS",
    "MAX_WHITESPACE_RUN",
    "OFFLOAD_CHARS",
    "count_tokens",
    "count_tokens_async",
    "encoding_name_for",
    "seed_cache",
    "warm_up",
]

MAX_EXACT_CHARS = 2_000_000
MAX_WHITESPACE_RUN = 100_000
OFFLOAD_CHARS = 64 * 1024

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_CL100K_PREFIXES = (
    "gpt-4-",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-ada",
    "text-embedding-3",
    "text-davinci",
    "code-davinci",
    "davinci",
    "babbage",
)
# Anchored at the start of a run (the lookbehind), so a scan stays linear in the text length.
_LONG_WHITESPACE = re.compile(r"(?<!\s)\s{" + str(MAX_WHITESPACE_RUN + 1) + ",}")

_encodings: dict[str, tiktoken.Encoding] = {}


def seed_cache(cache_dir: str | None = None) -> str:
    """Write the bundled BPE files into a tiktoken cache dir and point tiktoken at it.

    The dir is ``cache_dir``, else ``$TIKTOKEN_CACHE_DIR``, else
    ``<tempdir>/onemin-relay-tiktoken``. A file is (re)written atomically only when it is
    missing or its hash is wrong. Raises ``RuntimeError`` if a bundled file is corrupt.
    Returns the directory used.
    """
    cache_dir = (
        cache_dir
        or os.environ.get("TIKTOKEN_CACHE_DIR")
        or os.path.join(tempfile.gettempdir(), "onemin-relay-tiktoken")
    )
    os.makedirs(cache_dir, exist_ok=True)
    for name, sha256 in _SHA256.items():
        key = hashlib.sha1(_BLOB_URL.format(name).encode()).hexdigest()
        path = os.path.join(cache_dir, key)
        if not _has_hash(path, sha256):
            _write_atomically(path, _bundled_bpe(name, sha256))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    return cache_dir


def _has_hash(path: str, sha256: str) -> bool:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == sha256
    except FileNotFoundError:
        return False


def _bundled_bpe(name: str, sha256: str) -> bytes:
    blob = resources.files("onemin_relay").joinpath(f"tokenizer_data/{name}.tiktoken.gz")
    data = gzip.decompress(blob.read_bytes())
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"bundled tokenizer file {name}.tiktoken.gz is corrupt")
    return data


def _write_atomically(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@functools.lru_cache(maxsize=256)
def encoding_name_for(model: str) -> str:
    """The tiktoken encoding for ``model``: cl100k_base for older OpenAI ids, else o200k_base.

    A provider prefix such as ``openai/`` is ignored. For non-OpenAI models o200k_base is an
    estimate.
    """
    name = model.rsplit("/", 1)[-1].lower()
    if name == "gpt-4" or name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


def _encoding(name: str) -> tiktoken.Encoding:
    encoding = _encodings.get(name)
    if encoding is None:
        seed_cache()
        encoding = tiktoken.get_encoding(name)
        # tiktoken keeps the Python table of ranks its Rust encoder was built from, only to
        # pickle the encoding, which the relay never does: ~27 MB of resident memory for
        # o200k_base, a fifth of an idle relay's, freed here (tiktoken is pinned to 0.14)
        encoding._mergeable_ranks = {}
        _return_freed_memory()
        encoding = _encodings.setdefault(name, encoding)
    return encoding


def _return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc; elsewhere nothing): building
    an encoding frees tens of MB of temporaries, and a worker thread's heap keeps them
    resident otherwise (~5 MB of RSS for o200k_base)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def count_tokens(text: str, model: str) -> int:
    """The number of tokens in ``text`` for ``model``; special-token text counts as plain text.

    Beyond ``MAX_EXACT_CHARS`` characters the rest is estimated at four characters a token.
    """
    encoding = _encoding(encoding_name_for(model))
    exact, rest = text[:MAX_EXACT_CHARS], len(text) - MAX_EXACT_CHARS
    count = sum(len(encoding.encode_ordinary(piece)) for piece in _safe_pieces(exact))
    return count + (rest + 3) // 4 if rest > 0 else count


def count_tokens_now(text: str, model: str) -> int:
    """:func:`count_tokens` if the encoding is loaded already, else four characters a token.
    For code that cannot wait (a stream being cancelled): loading an encoding takes ~0.5 s,
    which on the event loop would stall every other request."""
    if encoding_name_for(model) in _encodings:
        return count_tokens(text, model)
    return (len(text) + 3) // 4


def _safe_pieces(text: str) -> Iterator[str]:
    """Split ``text`` so that no whitespace run longer than ``MAX_WHITESPACE_RUN`` stays whole."""
    if len(text) <= MAX_WHITESPACE_RUN:
        yield text
        return
    start = 0
    for run in _LONG_WHITESPACE.finditer(text):
        yield text[start : run.start()]
        for cut in range(run.start(), run.end(), MAX_WHITESPACE_RUN):
            yield text[cut : min(cut + MAX_WHITESPACE_RUN, run.end())]
        start = run.end()
    yield text[start:]


async def count_tokens_async(text: str, model: str) -> int:
    """:func:`count_tokens`, run in a worker thread when ``text`` is ``OFFLOAD_CHARS`` or longer.

    The first call for an encoding not loaded yet also goes to a thread.
    """
    if len(text) < OFFLOAD_CHARS and encoding_name_for(model) in _encodings:
        return count_tokens(text, model)
    return await asyncio.to_thread(count_tokens, text, model)


# A 1024×1024 image at OpenAI's high detail; used where no upstream figure exists.
ATTACHMENT_TOKEN_ESTIMATE = 765


async def estimate_input_tokens(prompt: str, model: str, attachments: int) -> int:
    """The prompt's tokens plus an estimate per attachment (1min.ai does not say what it
    bills for an image or a file)."""
    return await count_tokens_async(prompt, model) + ATTACHMENT_TOKEN_ESTIMATE * attachments


def warm_up(models: Iterable[str] = ("gpt-4o", "gpt-4")) -> None:
    """Seed the cache and load the encodings ``models`` use (about 0.5 s; call at start-up)."""
    seed_cache()
    for name in {encoding_name_for(model) for model in models}:
        _encoding(name)
