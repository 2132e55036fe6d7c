"""The digit judge: a trained LeNet-5 whose numbers separate real digits from the trivial baseline."""

import pytest
import torch

from deepatlas.data.real import mnist_subset
from deepatlas.zoo.generative import judge as J


def test_judge_scores_real_digits_far_better_than_independent_pixels(quiet_run):
    judge = J.digit_judge(quiet_run, epochs=1)
    assert judge.test_acc > 0.85
    ref = J.reference_numbers(quiet_run, judge, n=500)
    assert ref["real_fd"] < 0.2 * ref["baseline_fd"]
    assert ref["real_confident"] > ref["baseline_confident"] + 0.3
    assert ref["real_classes"] == 10
    binary = J.reference_numbers(quiet_run, judge, binary=True, n=500)
    assert binary["real_fd"] < 0.2 * binary["baseline_fd"]


def test_judge_is_cached_on_disk_and_identical_when_reloaded(quiet_run):
    first = J.digit_judge(quiet_run, epochs=1)
    J._loaded.clear()
    again = J.digit_judge(quiet_run, epochs=1)
    assert again is not first
    x = mnist_subset(flatten=False).x_test[:64]
    assert torch.equal(first.features(x), again.features(x))
    assert first.features(x).shape == (64, 84)
    assert torch.equal(first.predict(x), first.probs(x).argmax(-1))


def test_judge_rejects_images_of_the_wrong_shape(quiet_run):
    judge = J.digit_judge(quiet_run, epochs=1)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        judge.probs(torch.rand(4, 784))
    with pytest.raises(ValueError, match="at least 1 epoch"):
        J.digit_judge(quiet_run, epochs=0)


def test_independent_pixels_match_the_training_marginals():
    x = (torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    draws = J.independent_pixels(x, 4000, torch.Generator().manual_seed(1), binary=True)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert (draws.mean(0) - x.mean(0)).abs().max() < 0.05
    grey = J.independent_pixels(torch.rand(500, 1, 28, 28), 100, torch.Generator().manual_seed(2))
    assert grey.min() >= 0 and grey.max() <= 1
