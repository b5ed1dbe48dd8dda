"""batcher.py

`Batcher`: one worker thread owns the model. Requests wait in a queue; compatible ones (same generation
settings) that arrive within `wait_s` of each other are answered in one left-padded batch of at most
`max_batch_size`. Streaming requests run one at a time on the same thread, so the model is never used
by two threads at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..inference import ConvLlavaPipeline, Request


@dataclass
class Job:
    request: Request
    generation: dict[str, Any]
    future: Future = field(default_factory=Future)
    on_piece: Callable[[str], None] | None = None  # set for streaming jobs

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.generation.items()))


class Batcher:
    def __init__(self, pipeline: ConvLlavaPipeline, max_batch_size: int = 8, wait_s: float = 0.01) -> None:
        self.pipeline = pipeline
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.batches_run = 0
        self._thread = threading.Thread(target=self._loop, name="convllava-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        self.jobs.put(job)
        return job.future

    def close(self) -> None:
        self.jobs.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        pending: list[Job] = []
        while True:
            job = pending.pop(0) if pending else self.jobs.get()
            if job is None:
                return
            if job.on_piece is not None:
                self._stream(job)
                continue
            batch = [job]
            while len(batch) < self.max_batch_size:
                try:
                    other = self.jobs.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if other is not None and other.on_piece is None and other.key == job.key:
                    batch.append(other)
                else:
                    pending.append(other)  # answered after this batch, in arrival order
                    break
            self._run(batch)

    def _run(self, batch: list[Job]) -> None:
        try:
            answers = self.pipeline.generate([j.request for j in batch], **batch[0].generation)
            self.batches_run += 1
            for job, answer in zip(batch, answers, strict=True):
                job.future.set_result(answer)
        except Exception as err:
            if len(batch) > 1:  # isolate the request that failed
                for job in batch:
                    self._run([job])
            else:
                batch[0].future.set_exception(err)

    def _stream(self, job: Job) -> None:
        try:
            text = ""
            for piece in self.pipeline.stream(list(job.request.messages), list(job.request.images), **job.generation):
                text += piece
                job.on_piece(piece)
            job.future.set_result(text.strip())
        except Exception as err:
            job.future.set_exception(err)
