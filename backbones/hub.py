"""Fetching backbone files from the Hugging Face hub (or a URL) that fails fast when the network is absent.

Every lookup tries the local cache first (no network). Only if the file is not cached, the hub is not in
offline mode (``HF_HUB_OFFLINE=1``) and a 3-second TCP probe of the endpoint succeeds is it downloaded;
otherwise one ``UsageError`` line (exit code 2: the user has to provide the files) says what is missing and
how to point kmat at a local folder or the HF cache, instead of the hub client's minute of retries and a
traceback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from kmat_cli.api import RuntimeFailure, UsageError

__all__ = ["fetch_file", "fetch_first", "fetch_snapshot", "fetch_url", "offline_hint"]

PROBE_TIMEOUT_S = 3.0
TEXT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
)


def offline_hint(what: str, reason: str) -> str:
    """The one-line message for a file that is neither cached nor downloadable."""
    return (
        f"cannot load {what}: {reason}; download it once where the hub is reachable (it is then kept in the "
        f"Hugging Face cache, HF_HOME or HF_HUB_CACHE), or point kmat at a local folder with "
        f"--backbone /path/to/folder (open_clip_config.json, weights, tokenizer files); "
        f"for a quick try without weights: --backbone phantom"
    )


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``url``'s host (or the configured HTTPS proxy) opens in time."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlparse(proxy if proxy else url)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        with socket.create_connection((target.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return any(
        os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _check_online(what: str) -> None:
    if _offline():
        raise UsageError(offline_hint(what, "not in the local cache and HF_HUB_OFFLINE is set"))
    if not _reachable(_endpoint()):
        raise UsageError(offline_hint(what, f"not in the local cache and {_endpoint()} is unreachable"))


def fetch_file(repo_id: str, filename: str, *, cache_dir: str | None = None) -> Path:
    """Local path of ``filename`` in hub repo ``repo_id``: from the cache, else downloaded."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=True))
    except (EntryNotFoundError, FileNotFoundError, OSError):
        pass
    what = f"{filename} of hf-hub:{repo_id}"
    _check_online(what)
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, etag_timeout=10))
    except EntryNotFoundError as exc:
        raise FileNotFoundError(f"{what} does not exist") from exc
    except Exception as exc:  # the hub client raises many kinds; the user needs one line
        raise RuntimeFailure(offline_hint(what, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")) from exc


def fetch_first(repo_id: str, filenames: Sequence[str], *, cache_dir: str | None = None) -> Path:
    """The first of ``filenames`` that exists in ``repo_id`` (cached ones preferred, in the given order)."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:  # cache pass: no network at all
        hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(hit, str):
            return Path(hit)
    for name in filenames:
        try:
            return fetch_file(repo_id, name, cache_dir=cache_dir)
        except FileNotFoundError:
            continue
    raise RuntimeFailure(f"hf-hub:{repo_id} has none of {', '.join(filenames)}")


def fetch_snapshot(
    repo_id: str, patterns: Sequence[str] = TEXT_FILES, *, cache_dir: str | None = None
) -> Path:
    """A local folder with the files of ``repo_id`` matching ``patterns`` (e.g. an HF config + tokenizer)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                repo_id, allow_patterns=list(patterns), cache_dir=cache_dir, local_files_only=True
            )
        )
        if any(folder.iterdir()):
            return folder
    except (FileNotFoundError, OSError, ValueError):  # LocalEntryNotFoundError is a FileNotFoundError
        pass
    what = f"hf-hub:{repo_id} (config and tokenizer)"
    _check_online(what)
    try:
        return Path(
            snapshot_download(repo_id, allow_patterns=list(patterns), cache_dir=cache_dir, etag_timeout=10)
        )
    except Exception as exc:
        raise RuntimeFailure(offline_hint(what, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")) from exc


def fetch_url(url: str, *, cache_dir: str | None = None) -> Path:
    """open_clip's URL download (``~/.cache/clip``), probing the host first so that it fails fast."""
    from open_clip import download_pretrained_from_url

    target = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(urlparse(url).path)
    if not target.is_file() and not _reachable(url):
        raise UsageError(
            f"cannot load weights {url}: not in {target.parent} and the host is unreachable; download the "
            f"file there, or pass --set backbone.pretrained=/path/to/weights"
        )
    try:
        return Path(download_pretrained_from_url(url, cache_dir=str(target.parent)))
    except Exception as exc:
        raise RuntimeFailure(f"cannot download {url}: {type(exc).__name__}: {exc}") from exc
