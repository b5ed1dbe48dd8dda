"""`convllava info`: JSON output for presets and saved models, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from convllava.cli.main import main


def test_info_on_the_1536_preset_via_the_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "convllava.cli.main", "info", "convllava-1536"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(result.stdout)
    assert info["visual_tokens"] == 576 and info["image_size"] == 1536
    for key in ("vision_params", "projector_params", "language_params", "total_params", "vision_hidden_sizes"):
        assert key in info


def test_info_image_size_override(capsys):
    assert main(["info", "convllava-1536", "--image-size", "2048"]) == 0
    assert json.loads(capsys.readouterr().out)["visual_tokens"] == 1024


def test_info_on_a_saved_model_directory(tiny_model, tmp_path, capsys):
    tiny_model.save_pretrained(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_params"] == sum(p.numel() for p in tiny_model.parameters())
    assert info["visual_tokens"] == 16


def test_info_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2  # a directory without config.json
    assert "without a config.json" in capsys.readouterr().err
    assert main(["info", "no-such-preset"]) == 2  # offline in tests: not a preset, not a reachable repo
    err = capsys.readouterr().err
    assert "convllava-1536" in err and err.count("\n") == 1
