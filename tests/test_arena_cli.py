"""`vla-arena` without the service: run, battle, leaderboard, list, show, vote, rerun, blob-info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_server.arena.cli import main

SMALL = ["--steps", "6", "--width", "64", "--height", "48"]


def arena(tmp_path: Path, *args: str) -> int:
    return main(["--data", str(tmp_path / "data"), "--provider", "tests.arena_fakes:TestProvider", *args])


def test_run_show_list_rerun_and_blob_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert arena(tmp_path, "run", "--model", "reach-slow", "--instruction", "pick up the red cube", *SMALL,
                 "--out", str(out), "--json") == 0
    ep = json.loads(capsys.readouterr().out)
    assert ep["status"] == "done" and ep["metrics"]["latency_ms"] == 200.0
    assert {p.name for p in out.iterdir()} >= {"video.mp4", "trajectory.mcap", "final.blob", "start.blob"}

    # continue from the copied final blob, with an explicit latency override
    assert arena(tmp_path, "run", "--model", "reach", "--instruction", "pick up the red cube", *SMALL,
                 "--blob", str(out / "final.blob"), "--latency-ms", "0", "--no-video") == 0
    text = capsys.readouterr().out
    assert "success False" in text and "latency 0.0 ms" in text

    assert arena(tmp_path, "list") == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 2 and "reach-slow" in listed[1]
    assert arena(tmp_path, "show", ep["id"]) == 0
    shown = capsys.readouterr().out
    assert "log (last 15 lines)" in shown and "step 6/6" in shown
    assert arena(tmp_path, "rerun", ep["id"]) == 0
    assert "done" in capsys.readouterr().out
    assert arena(tmp_path, "blob-info", str(out / "final.blob")) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["made_by"] == "arena" and info["actions_in_flight"] >= 1


def test_battles_then_leaderboard_and_vote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert arena(tmp_path, "--executor", "inline", "battle", "--model-a", "reach", "--model-b", "counter",
                 "--instruction", "pick up the red cube", *SMALL, "--count", "3", "--scene", "shuffled") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(" vs counter → " in line for line in lines)
    assert arena(tmp_path, "leaderboard", "--rounds", "20", "--json") == 0
    board = json.loads(capsys.readouterr().out)
    assert board["battles"] == 3 and {r["model"] for r in board["rows"]} == {"reach", "counter"}
    assert arena(tmp_path, "--executor", "inline", "battle", "--model-a", "reach", "--model-b", "reach-slow",
                 "--instruction", "pick up the red cube", *SMALL, "--outcome-by", "vote", "--json") == 0
    bid = json.loads(capsys.readouterr().out)[0]["id"]
    assert arena(tmp_path, "vote", bid, "b") == 0
    assert "outcome b" in capsys.readouterr().out
    assert arena(tmp_path, "leaderboard", "--rounds", "0") == 0
    table = capsys.readouterr().out
    assert "4 decided battles" in table and "reach-slow" in table


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert arena(tmp_path, "run", "--model", "nope", "--instruction", "x", *SMALL) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert arena(tmp_path, "run", "--model", "reach", "--instruction", "x", "--hz", "15") == 2
    assert "whole number of 2 ms steps" in capsys.readouterr().err
    assert arena(tmp_path, "run", "--model", "reach", "--instruction", "x", "--from-recording",
                 str(tmp_path / "missing.mcap"), "--at", "1") == 2
    assert "cannot open recording" in capsys.readouterr().err
    assert arena(tmp_path, "blob-info", "not-a-blob") == 2
    assert "not valid base64" in capsys.readouterr().err
    assert arena(tmp_path, "run", "--model", "failing", "--instruction", "x", *SMALL) == 1
    assert "model exploded" in capsys.readouterr().out
