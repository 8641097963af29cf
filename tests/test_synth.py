import json

import numpy as np

from pipelines.data.synth import MOTIONS, load_ground_truth
from pipelines.data.video import read_video


def test_synth_writes_ucf101_layout(synth_dataset):
    lists = synth_dataset / "ucfTrainTestlist"
    classes = [line.split()[1] for line in (lists / "classInd.txt").read_text().splitlines()]
    assert classes == list(MOTIONS)[:3]
    for fold in (1, 2, 3):
        train = (lists / f"trainlist0{fold}.txt").read_text().split("\n")
        test = (lists / f"testlist0{fold}.txt").read_text().split("\n")
        train_paths = {line.rsplit(" ", 1)[0] for line in train if line}
        test_paths = {line for line in test if line}
        assert train_paths and test_paths and not train_paths & test_paths
        assert len(train_paths | test_paths) == 12
        for path in train_paths | test_paths:
            assert (synth_dataset / "UCF-101" / path).is_file()
    assert json.loads((synth_dataset / "synth.json").read_text())["settings"]["classes"] == 3


def test_ground_truth_marks_the_moving_shape(synth_dataset):
    relative = "Horizontal/v_Horizontal_g01_c01.avi"
    frames, _ = read_video(synth_dataset / "UCF-101" / relative, short_side=None)
    mask = load_ground_truth(synth_dataset, relative)
    assert mask.shape == frames.shape[:3]
    share = mask.mean()
    assert 0.02 < share < 0.3
    # the background is static: outside the foreground of both frames, frames differ only by noise/codec
    still = ~(mask[0] | mask[10])
    diff = np.abs(frames[0].astype(int) - frames[10].astype(int)).sum(-1)
    assert diff[still].mean() < 12
    # and the shape moves
    assert (mask[0] != mask[10]).any()


def test_backgrounds_are_unique_per_video(synth_dataset):
    a, _ = read_video(synth_dataset / "UCF-101" / "Vertical/v_Vertical_g01_c01.avi", short_side=None)
    b, _ = read_video(synth_dataset / "UCF-101" / "Vertical/v_Vertical_g02_c01.avi", short_side=None)
    assert np.abs(a[0].astype(int) - b[0].astype(int)).mean() > 20
