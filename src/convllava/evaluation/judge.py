"""judge.py

A pluggable judge for the GPT-judged benchmarks (MM-Vet, LLaVA-Bench). `OpenAIJudge` speaks the
OpenAI-compatible `POST {base_url}/chat/completions` with the standard library only, so any server (OpenAI,
Azure-compatible proxies, vLLM, SGLang, a local fake in tests) can grade; anything with a `complete` method
of the same signature is a judge too.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Protocol


class JudgeError(RuntimeError):
    """The judge server could not be reached or answered with an error after every retry."""


class Judge(Protocol):
    """Anything that turns a prompt into the judge model's reply text."""

    model: str

    def complete(self, prompt: str, *, system: str | None = None, temperature: float = 0.0,
                 max_tokens: int = 128) -> str: ...  # fmt: skip


class OpenAIJudge:
    """Chat-completions client. `base_url` defaults to `$OPENAI_BASE_URL` or the OpenAI API; the key comes from
    `api_key` or `$OPENAI_API_KEY`. Transport errors and 429/5xx are retried with a growing pause."""

    def __init__(self, model: str = "gpt-4-0613", base_url: str | None = None, api_key: str | None = None,
                 retries: int = 3, timeout: float = 60.0, backoff: float = 2.0) -> None:  # fmt: skip
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.retries, self.timeout, self.backoff = retries, timeout, backoff

    def complete(self, prompt: str, *, system: str | None = None, temperature: float = 0.0,
                 max_tokens: int = 128) -> str:  # fmt: skip
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        body = json.dumps({"model": self.model, "messages": messages, "temperature": temperature,
                           "max_tokens": max_tokens}).encode()  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read())
                return payload["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}: {err.read()[:200]!r}"
                if err.code not in (408, 429) and err.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, OSError, KeyError, ValueError) as err:
                last = str(err)
            if attempt < self.retries:
                time.sleep(self.backoff * (attempt + 1))
        raise JudgeError(f"judge {self.model} at {self.base_url} failed: {last}")
