"""Talking to the network for the download rules: retries with back-off, a timeout per attempt,
and a clear error naming the dataset, the source and the URL or id once every attempt failed."""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import DataSourceError

# Errors worth another attempt: connection failures and timeouts (OSError covers urllib's
# URLError, requests' exceptions and socket errors) and answers cut short.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class DownloadPolicy:
    """How hard to try (config key ``download``): attempts in all, the wait before the second
    attempt (doubled each time) and the longest an attempt may take."""

    attempts: int = 4
    backoff_seconds: float = 5.0
    timeout_seconds: float = 300.0

    @classmethod
    def from_config(cls, config: dict) -> DownloadPolicy:
        d = config.get("download") or {}
        return cls(
            int(d.get("attempts", cls.attempts)),
            float(d.get("backoff_seconds", cls.backoff_seconds)),
            float(d.get("timeout_seconds", cls.timeout_seconds)),
        )


def call_with_timeout(action: Callable, seconds: float):
    """Run ``action()`` and give up after ``seconds``.

    Some clients (requests inside openml-python) wait forever by default, so the attempt runs in
    a daemon thread; one that never answers is abandoned and dies with the process.
    """
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = action()
        except BaseException as e:  # handed to the caller below
            outcome["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no complete answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def with_retries(
    action: Callable,
    what: str,
    policy: DownloadPolicy,
    log=print,
    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    hint: str = "",
):
    """Call ``action()`` up to ``policy.attempts`` times; errors not in ``transient`` end at once.

    ``what`` names the dataset, the source and the URL or id, for the log and the final error.
    """
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(policy.timeout_seconds)  # bounds every blocking read of urllib-based clients
    delay = policy.backoff_seconds
    try:
        for attempt in range(1, policy.attempts + 1):
            try:
                return call_with_timeout(action, policy.timeout_seconds)
            except transient as e:
                last = e
                if attempt == policy.attempts:
                    break
                log(
                    f"{what}: attempt {attempt}/{policy.attempts} failed ({type(e).__name__}: {e}); "
                    f"next attempt in {delay:g} s"
                )
                time.sleep(delay)
                delay *= 2
    finally:
        socket.setdefaulttimeout(previous_timeout)
    raise DataSourceError(
        f"{what}: download failed after {policy.attempts} attempt(s) "
        f"({policy.timeout_seconds:g} s timeout each): {type(last).__name__}: {last}. {hint}".rstrip()
    )


def download_url(url: str, dest: Path, timeout: float, md5: str | None = None) -> None:
    """Stream ``url`` into ``dest`` (a temporary file of the caller); an answer shorter than its
    Content-Length or with another MD5 than ``md5`` raises OSError (worth another attempt)."""
    h = hashlib.md5()
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        expected = response.headers.get("Content-Length")
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)
            h.update(block)
            size += len(block)
    if expected is not None and size != int(expected):
        raise OSError(f"download of {url} stopped after {size} of {int(expected)} bytes")
    if md5 is not None and h.hexdigest() != md5.lower():
        raise OSError(f"downloaded file from {url} has MD5 {h.hexdigest()}, expected {md5}")
