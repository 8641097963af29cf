"""Progress lines: one clean line per update (bar, steps, epoch, loss, clips/s, data wait,
ETA), one summary line per epoch, no doubled labels (issue 20: ``epoch=epoch 4/90``)."""

from __future__ import annotations

import re

from fame_cli.console import PlainProgress, duration, plain_line
from fame_cli.pretrain import progress_events


def test_duration():
    assert [duration(s) for s in (0, 59.4, 75, 4000, float("nan"), float("inf"))] == [
        "0s", "59s", "1m15s", "1h06m", "?", "?"]


def test_plain_line_shows_each_value_once():
    line = plain_line("pretrain", 120, 480, {"epoch": "epoch 2/8", "loss": "loss 3.090", "speed": "12 clips/s",
                                             "wait": "data wait 2%"}, 62, 186, "steps")
    assert line == ("pretrain [#####...............] 120/480 steps epoch 2/8 loss 3.090 12 clips/s data wait 2% "
                    "elapsed 1m02s ETA 3m06s")


def test_plain_progress_rate_counts_only_this_run(monkeypatch, capsys):
    clock = iter([0.0, 10.0, 20.0, 30.0])
    monkeypatch.setattr("fame_cli.console.time.perf_counter", lambda: next(clock))
    progress = PlainProgress("pretrain", 0, every=5.0, unit="steps")
    progress.update(100, total=200)  # a resumed run starts at step 100: no line, the rate starts here
    progress.update(110, loss="loss 1.000")  # 10 steps in 10 s: 90 left, 90 s
    progress.update(200)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["pretrain [###########.........] 110/200 steps loss 1.000 elapsed 10s ETA 1m30s",
                     "pretrain [####################] 200/200 steps elapsed 20s ETA 0s"]


def test_pretrain_prints_one_line_per_update_and_one_per_epoch(capsys):
    settings = {"epochs": 2}
    step = {"loss": 3.09, "clips_per_s": 12.4, "data_time": 0.02, "step_time": 0.98, "epochs": 2}
    metrics = {"loss": 3.0, "top1": 10.0, "top5": 50.0, "clips_per_s": 12.0, "data_time": 0.02, "step_time": 0.98}
    with progress_events(True) as on_event:
        on_event("start", {"videos": 8, "steps_per_epoch": 2, "world_size": 1, "device": "cpu", "step": 0,
                           "start_epoch": 0, "settings": settings, "threads": "threads: 1 torch thread(s) in this process"})
        for epoch in (1, 2):
            for s in (1, 2):
                on_event("step", {**step, "step": 2 * (epoch - 1) + s, "epoch": epoch})
            on_event("epoch", {"epoch": epoch, "epochs": 2, "step": 2 * epoch, "metrics": metrics,
                               "checkpoint": "run/checkpoints/latest.pt"})
    err = capsys.readouterr().err
    assert "=" not in err  # no key=value labels, no doubled ones
    assert len(re.findall(r"^epoch \d/2: loss 3.000 top1 10.0% top5 50.0% 12 clips/s data wait 2%", err, re.M)) == 2
    bars = [line for line in err.splitlines() if line.startswith("pretrain [")]
    assert bars and bars[-1].startswith("pretrain [####################] 4/4 steps epoch 2/2 loss 3.090 12 clips/s "
                                        "data wait 2% elapsed")
    assert all(len(re.findall(r"loss", line)) == 1 for line in bars)
