"""Judge-based benchmarks: MM-Vet and LLaVA-Bench prompts, parsing, retry schedules and aggregation, graded through
`OpenAIJudge` against a fake OpenAI-compatible judge on loopback. lmms-eval LLaVA-Bench parse vectors come from
running lmms-eval 0.7.3's `_parse_comparative_scores`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from convllava.evaluation.metrics import (
    JudgeError,
    OpenAIJudge,
    llavabench_aggregate,
    llavabench_judge,
    mmvet_aggregate,
    mmvet_judge,
    mmvet_prompt,
    parse_llavabench_scores,
    parse_mmvet_score,
)
from convllava.evaluation.mmvet import RETRY_SUFFIX

LLAVAW_LMMS = {
    "8 7\nbecause": [8.0, 7.0],
    "8, 7": [8.0, 7.0],
    "Assistant 1: 8\nAssistant 2: 7": [1.0, 8.0],
    "9.5 6": [9.5, 6.0],
    "  7 8 9": [7.0, 8.0],
    "no scores here": [-1, -1],
    "10;4": [10.0, 4.0],
    "-1 5": [-1.0, 5.0],
}


class FakeJudge:
    """An OpenAI-compatible /chat/completions server that answers from a script and records each request."""

    def __init__(self, replies: list[str], status: int = 200) -> None:
        self.replies, self.status, self.requests = list(replies), status, []
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                if judge.status != 200:
                    self.send_response(judge.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "boom"}')
                    return
                reply = judge.replies.pop(0) if judge.replies else "no idea"
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def client(self, **kwargs) -> OpenAIJudge:
        return OpenAIJudge(model="judge-x", base_url=self.url, api_key="sk-test", backoff=0.0, **kwargs)


@pytest.fixture
def fake_judge():
    servers = []

    def make(replies, status=200):
        servers.append(FakeJudge(replies, status))
        return servers[-1]

    yield make
    for s in servers:
        s.server.shutdown()


def test_mmvet_prompt_official_and_lmms_layouts():
    official = mmvet_prompt("What is it?", "cat<OR>kitten", "a cat", protocol="llava")
    assert "Just complete the last space of the correctness score.\n\nQuestion | Ground truth" in official
    assert official.endswith("| 1.0\n\nWhat is it? | cat <OR> kitten | a cat | ")
    lmms = mmvet_prompt("What is it?", "cat<OR>kitten", "a cat")
    assert "correctness score.\ngpt_query_prompt | Ground truth" in lmms
    assert lmms.endswith("| 1.0\n\nWhat is it? | cat <OR> kitten | a cat |")
    vlm = mmvet_prompt("Q", "A", "P", protocol="vlmevalkit")
    assert vlm.startswith("\nCompare the ground truth") and vlm.endswith("\nQ | A | P | ")


@pytest.mark.parametrize(
    ("reply", "official", "lmms", "vlmevalkit"),
    [("0.5", 0.5, 0.5, 0.5), ("0.8 because", 0.8, 0.8, None), (" 0.3", None, 0.3, 0.3), ("1.5", None, None, None),
     ("abc", None, None, None), ("1.0\n", 1.0, 1.0, 1.0), ("0", 0.0, 0.0, 0.0)],
)  # fmt: skip
def test_mmvet_score_parsing(reply, official, lmms, vlmevalkit):
    assert parse_mmvet_score(reply, "llava") == official
    assert parse_mmvet_score(reply, "lmms-eval") == lmms
    assert parse_mmvet_score(reply, "vlmevalkit") == vlmevalkit


def test_mmvet_official_retry_appends_the_digit_request(fake_judge):
    judge = fake_judge(["The answer", "0.4"])
    assert mmvet_judge(judge.client(), "Q?", "A", "pred", protocol="llava") == 0.4
    first, second = judge.requests
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["model"] == "judge-x" and first["max_tokens"] == 3 and first["temperature"] == 0.0
    assert second["messages"][0]["content"] == first["messages"][0]["content"] + RETRY_SUFFIX
    assert second["temperature"] == 0.0


@pytest.mark.parametrize(("protocol", "calls", "temperatures"), [
    ("llava", 5, [0.0, 0.0, 0.5, 1.0, 1.5]), ("lmms-eval", 4, [0.0, 0.5, 1.0, 1.5]),
    ("vlmevalkit", 5, [0.0, 0.5, 1.0, 1.5, 2.0])])  # fmt: skip
def test_mmvet_gives_zero_after_the_reference_number_of_failures(fake_judge, protocol, calls, temperatures):
    judge = fake_judge(["nope"] * 10)
    assert mmvet_judge(judge.client(), "Q?", "A", "pred", protocol=protocol) == 0.0
    assert [r["temperature"] for r in judge.requests] == temperatures
    assert len(judge.requests) == calls


def test_mmvet_aggregate_by_capability_and_integration():
    rows = [{"capability": "rec,ocr", "score": 1.0}, {"capability": "ocr", "score": 0.5},
            {"capability": "rec,spat", "score": 0.0}, {"capability": "ocr,math", "score": 1.0}]  # fmt: skip
    result = mmvet_aggregate(rows)
    assert result["total"] == pytest.approx(62.5)
    caps = result["capabilities"]
    assert caps["rec"] == pytest.approx(50.0) and caps["ocr"] == pytest.approx(250 / 3)
    assert caps["math"] == pytest.approx(100.0) and caps["know"] == 0.0
    assert result["integrations"] == pytest.approx({"ocr_rec": 100.0, "ocr": 50.0, "rec_spat": 0.0, "math_ocr": 100.0})
    with pytest.raises(ValueError, match="at least one"):
        mmvet_aggregate([])


@pytest.mark.parametrize(("review", "expected"), list(LLAVAW_LMMS.items()))
def test_llavabench_parse_matches_lmms_eval(review, expected):
    assert parse_llavabench_scores(review) == expected


@pytest.mark.parametrize(
    ("review", "expected"),
    [("8 7\nbecause", [8, 7]), ("8, 7", [-1, -1]), ("9.5 6", [9.5, 6]), ("Assistant 1: 8", [-1, -1]),
     ("7 8 9", [-1, -1])],
)  # fmt: skip
def test_llavabench_parse_llava(review, expected):
    assert parse_llavabench_scores(review, protocol="llava") == expected


def test_llavabench_judge_request_and_relative_score(fake_judge):
    judge = fake_judge(["8 6\nAssistant 2 misses the dog."])
    scores, review = llavabench_judge(judge.client(), ["a dog", "on grass"], "What?", "A dog.", "Grass.")
    assert scores == [8.0, 6.0] and review.startswith("8 6")
    (request,) = judge.requests
    assert request["temperature"] == 0.2 and request["max_tokens"] == 1024
    system, user = request["messages"]
    assert system["role"] == "system" and "precise assistant" in system["content"]
    assert user["content"].startswith("[Context]\na dog\non grass\n\n[Question]\nWhat?\n\n[Assistant 1]\nA dog.")
    rows = [{"scores": [10, 6], "category": "conv"}, {"scores": [8, 7], "category": "conv"},
            {"scores": [9, 5], "category": "detail"}]  # fmt: skip
    result = llavabench_aggregate(rows)
    assert result["all"]["relative"] == 66.7
    assert result["conv"] == {"relative": 72.2, "reference": 90.0, "model": 65.0}
    assert llavabench_aggregate([{"scores": [8, 6]}, {"scores": [-1, -1]}])["all"]["relative"] == 71.4


def test_judge_errors_name_the_server(fake_judge):
    judge = fake_judge([], status=500)
    with pytest.raises(JudgeError, match=r"judge-x at http://127\.0\.0\.1:\d+/v1 failed: HTTP 500"):
        judge.client(retries=2).complete("hi")
    assert len(judge.requests) == 3  # server errors are retried
    bad = fake_judge([], status=401)
    with pytest.raises(JudgeError, match="HTTP 401"):
        bad.client(retries=2).complete("hi")
    assert len(bad.requests) == 1  # client errors are not
