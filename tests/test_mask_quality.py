"""pipelines.masks.quality against brute-force counts and hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from pipelines import fame
from pipelines.masks.quality import foreground_kept, mask_agreement, roc_auc, top_fraction_mask


def brute_force_auc(scores, truth):
    """Every (foreground, background) pair: 1 if the foreground pixel scores higher, 1/2 on a tie."""
    scores, truth = np.ravel(scores), np.ravel(truth)
    total = 0.0
    for p in scores[truth]:
        for n in scores[~truth]:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (truth.sum() * (~truth).sum())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("levels", [3, 20, None])  # few levels: many ties; None: continuous
def test_roc_auc_matches_pairwise_count(seed, levels):
    rng = np.random.default_rng(seed)
    truth = rng.random((7, 9)) < 0.3
    scores = rng.random((7, 9)) + 0.3 * truth
    if levels is not None:
        scores = np.floor(scores * levels)
    assert roc_auc(scores, truth) == pytest.approx(brute_force_auc(scores, truth), abs=1e-12)


def test_roc_auc_hand_computed():
    # Foreground scores 3, 2; background 2, 1, 0. Pairs: (3: beats 3) + (2: ties 1, beats 2) = 5.5 of 6.
    assert roc_auc([3, 2, 2, 1, 0], [True, True, False, False, False]) == pytest.approx(5.5 / 6)
    assert roc_auc([0, 1], [False, True]) == 1.0
    assert roc_auc([1, 0], [False, True]) == 0.0
    assert roc_auc([5, 5, 5], [True, False, True]) == 0.5


def test_roc_auc_is_nan_with_one_class():
    assert math.isnan(roc_auc([1, 2, 3], [True, True, True]))
    assert math.isnan(roc_auc([1, 2, 3], [False, False, False]))


def test_roc_auc_accepts_tensors_and_uint8_maps():
    scores = torch.tensor([[200, 10], [255, 0]], dtype=torch.uint8)
    truth = torch.tensor([[True, False], [True, False]])
    assert roc_auc(scores, truth) == 1.0


def test_top_fraction_mask_agrees_with_select_foreground():
    soft = torch.rand(3, 11, 13, generator=torch.Generator().manual_seed(0))
    soft[0, :4] = 0.5  # ties
    for beta in (0.5, 0.3):
        expected = fame.select_foreground(soft, beta=beta).numpy()
        np.testing.assert_array_equal(top_fraction_mask(soft.numpy(), beta=beta), expected)
        uint8 = torch.round(soft * 255).to(torch.uint8)
        expected = fame.select_foreground(uint8.float(), beta=beta).numpy()
        np.testing.assert_array_equal(top_fraction_mask(uint8.numpy(), beta=beta), expected)


def test_foreground_kept_hand_computed():
    soft = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]])  # top half (3 pixels): 0.9, 0.8, 0.7
    truth = np.array([[True, False, True], [True, True, False]])  # 4 foreground pixels: 0.9, 0.1, 0.7, 0.2
    assert foreground_kept(soft, truth) == pytest.approx(2 / 4)
    assert foreground_kept(soft, truth, beta=1.0) == 1.0
    assert foreground_kept(soft, truth, beta=0.0) == 0.0
    assert math.isnan(foreground_kept(soft, np.zeros_like(truth)))


def test_foreground_kept_pools_a_batch():
    soft = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two 1x2 maps; the top half is the 1.0 pixel
    truth = np.array([[[True, True]], [[True, False]]])
    assert foreground_kept(soft, truth) == pytest.approx(1 / 3)


def test_mask_agreement():
    a = np.array([[True, True, False], [False, True, False]])
    b = np.array([[True, False, False], [False, True, True]])
    assert mask_agreement(a, b) == pytest.approx(2 / 4)
    assert mask_agreement(a, a) == 1.0
    assert mask_agreement(a, ~a) == 0.0
    assert mask_agreement(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
