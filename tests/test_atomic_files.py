"""pipelines.atomic_files: a file is replaced whole or not at all."""

import json
import math

import pytest

from pipelines.atomic_files import atomic_path, atomic_write_json, atomic_write_text, json_safe


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "settings.json"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half of the new")
            raise RuntimeError("killed while writing")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_finished_write_replaces_the_file(tmp_path, durable):
    target = tmp_path / "results.md"
    atomic_write_text(target, "old\n", durable=durable)
    atomic_write_text(target, "new\n", durable=durable)
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]


def test_json_is_valid_with_non_finite_numbers_as_null(tmp_path):
    content = {"loss": math.nan, "scores": [1.5, math.inf, -math.inf], "nested": {"name": "vidéo", "n": 3}}
    path = atomic_write_json(tmp_path / "report.json", content)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"loss": None, "scores": [1.5, None, None], "nested": {"name": "vidéo", "n": 3}}
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
    assert json_safe((1.0, math.nan)) == [1.0, None]
