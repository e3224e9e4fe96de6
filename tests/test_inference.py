"""Inference settings: sliding windows, scales, flips, output size (selfpanoptic.dense), their use
by the prediction functions and the validation of the `inference` config section."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from selfpanoptic.config import validate_config
from selfpanoptic.dense import dense_predict
from selfpanoptic.errors import InputError
from selfpanoptic.inference import image_instances, predict_semantic_batch
from selfpanoptic.settings import InferenceSettings

SOFTMAX = partial(torch.softmax, dim=1)


def _section(**kw) -> dict:
    """An ``inference`` config section: the schema's defaults, changed by ``kw``."""
    return {"mode": "whole", "crop": [64, 128], "stride": [32, 64], "scales": [1.0], "flip": False, **kw}


def _settings(**kw) -> InferenceSettings:
    return InferenceSettings.from_config(_section(**kw))


def _pointwise() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 5, kernel_size=1).eval()


class CallCounter(torch.nn.Module):
    """Returns, for the k-th call (from 1), a one-channel map full of k: which window wrote where."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.full((x.shape[0], 1, *x.shape[-2:]), float(self.calls))


def _column(x):
    """The column index of each pixel in the tensor it is given (depends on the window's position)."""
    return torch.arange(x.shape[-1], dtype=torch.float32).expand(x.shape[0], 1, *x.shape[-2:])


@torch.no_grad()
@pytest.mark.parametrize("crop,stride", [([4, 5], [2, 3]), ([3, 7], [3, 7]), ([8, 8], [1, 1]), ([20, 20], [5, 5])])
def test_a_pointwise_model_gives_the_same_output_whole_and_sliding(crop, stride):
    model, x = _pointwise(), torch.randn(2, 3, 7, 11)
    whole = dense_predict(model, x, _settings())
    slide = dense_predict(model, x, _settings(mode="slide", crop=crop, stride=stride))
    assert torch.allclose(slide, whole, atol=1e-6)


@torch.no_grad()
def test_a_config_section_converts_to_its_settings_and_none_is_the_default_pass():
    section = _section(mode="slide", crop=[4, 5], stride=[2, 3], scales=[1.0, 1.5], flip=True)
    typed = InferenceSettings.from_config(section)
    assert (typed.mode, typed.crop, typed.stride, typed.scales, typed.flip) == ("slide", (4, 5), (2, 3), (1.0, 1.5), True)
    model, x = _pointwise(), torch.randn(2, 3, 7, 11)
    assert torch.equal(dense_predict(model, x, InferenceSettings()), dense_predict(model, x, None))


@torch.no_grad()
def test_the_default_is_one_forward_pass_bit_for_bit():
    model, x = _pointwise(), torch.randn(2, 3, 7, 11)
    expected = torch.softmax(model(x).float(), dim=1)
    assert torch.equal(dense_predict(model, x, None, activation=SOFTMAX), expected)
    assert torch.equal(dense_predict(model, x, _settings(), (7, 11), SOFTMAX), expected)
    # a crop over the whole image is one window: the same single pass
    assert torch.equal(dense_predict(model, x, _settings(mode="slide", crop=[7, 11], stride=[7, 11])), model(x))


def test_overlapping_windows_are_averaged_and_the_last_is_aligned_to_the_edge():
    # width 6, crop 3, stride 2: windows [0,3), [2,5), then [3,6) (moved back to the edge: 6 - 3
    # is not a multiple of 2); height 2 = crop: one row of windows
    x = torch.zeros(1, 3, 2, 6)
    out = dense_predict(CallCounter(), x, _settings(mode="slide", crop=[2, 3], stride=[2, 2]))
    expected = torch.tensor([1, 1, (1 + 2) / 2, (2 + 3) / 2, (2 + 3) / 2, 3]).expand(2, 6)
    assert torch.equal(out[0, 0], expected)
    # position-dependent output: each window writes 0, 1, 2 from its own left edge
    out = dense_predict(_column, x, _settings(mode="slide", crop=[2, 3], stride=[2, 2]))
    assert torch.equal(out[0, 0, 0], torch.tensor([0, 1, (2 + 0) / 2, (1 + 0) / 2, (2 + 1) / 2, 2]))


def test_every_pixel_is_covered_and_windows_are_counted_in_two_dimensions():
    # height 5, crop 2, stride 2: rows [0,2), [2,4), [3,5); width 7, crop 3, stride 3: [0,3), [3,6), [4,7)
    model = CallCounter()
    ones = dense_predict(lambda t: torch.ones(t.shape[0], 1, *t.shape[-2:]), torch.zeros(2, 3, 5, 7),
                         _settings(mode="slide", crop=[2, 3], stride=[2, 3]))
    assert torch.equal(ones, torch.ones(2, 1, 5, 7))  # an uncovered pixel would be 0 / 0 = nan
    out = dense_predict(model, torch.zeros(1, 3, 5, 7), _settings(mode="slide", crop=[2, 3], stride=[2, 3]))
    assert model.calls == 9
    # window k (row-major, from 1) at rows r, columns c; pixel (3, 4) is in windows 5, 6 (row
    # [2,4)) and 8, 9 (row [3,5)); pixel (0, 0) only in window 1; pixel (4, 6) only in window 9
    assert out[0, 0, 3, 4] == (5 + 6 + 8 + 9) / 4
    assert out[0, 0, 0, 0] == 1 and out[0, 0, 4, 6] == 9
    assert out[0, 0, 2, 3] == 5  # row 2 is only in [2,4), column 3 only in [3,6)
    assert out[0, 0, 2, 4] == (5 + 6) / 2  # column 4 is in [3,6) and [4,7)


def test_an_image_smaller_than_the_crop_is_taken_whole_in_that_dimension():
    model = CallCounter()
    out = dense_predict(model, torch.zeros(1, 3, 4, 6), _settings(mode="slide", crop=[8, 4], stride=[8, 2]))
    assert model.calls == 2  # height: one window of 4 rows; width: [0,4), [2,6)
    assert torch.equal(out[0, 0, :, 2:4], torch.full((4, 2), 1.5))


@torch.no_grad()
def test_flip_of_a_mirror_symmetric_model_changes_nothing_and_of_an_asymmetric_one_averages():
    model, x = _pointwise(), torch.randn(1, 3, 4, 6)
    assert torch.allclose(dense_predict(model, x, _settings(flip=True)), model(x), atol=1e-6)
    # the column index, mirrored back, is 5 - column: the mean is 2.5 everywhere
    assert torch.equal(dense_predict(_column, x, _settings(flip=True)), torch.full((1, 1, 4, 6), 2.5))
    # in slide mode too: the flip is of the whole image, the windows of the mirrored image
    assert torch.equal(dense_predict(_column, x, _settings(mode="slide", crop=[4, 6], stride=[4, 6], flip=True)),
                       torch.full((1, 1, 4, 6), 2.5))


def test_scales_resize_the_image_and_the_output_back():
    # one row [0, 4]; scale 2: bilinear to [0, 1, 3, 4] (align_corners=False), the identity model
    # returns it, resized back: [(0 + 1) / 2, (3 + 4) / 2] = [0.5, 3.5]; mean with scale 1's [0, 4]
    x = torch.tensor([0.0, 4.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2).contiguous()
    out = dense_predict(lambda t: t, x, _settings(scales=[1.0, 2.0]))
    assert torch.equal(out[0, :, 0], torch.tensor([[0.25, 3.75]] * 3))
    seen = []
    dense_predict(lambda t: seen.append(tuple(t.shape[-2:])) or t, torch.zeros(1, 3, 5, 7), _settings(scales=[0.5, 1.5]))
    assert seen == [(2, 4), (8, 10)]  # round(2.5) = 2 (Python's round), round(3.5) = 4, 7.5 -> 8, 10.5 -> 10


def test_the_output_size_upsamples_probabilities_before_the_argmax():
    # two pixels, three classes: class 0 wins on the left, class 1 on the right, class 2 is
    # second on both; bilinearly to 4 pixels the middle ones are 3:1 mixes, where class 2 wins
    prob = torch.tensor([[0.55, 0.0, 0.45], [0.0, 0.55, 0.45]]).T.reshape(1, 3, 1, 2)
    logits = torch.log(prob.clamp_min(1e-12))
    out = dense_predict(lambda t: logits.expand(t.shape[0], 3, 1, 2), torch.zeros(1, 3, 1, 2), None, (1, 4), SOFTMAX)
    assert out.argmax(1).tolist() == [[[0, 2, 2, 1]]]
    nearest = torch.nn.functional.interpolate(prob.argmax(1, keepdim=True).float(), size=(1, 4), mode="nearest")
    assert nearest.long().tolist() == [[[[0, 0, 1, 1]]]]
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([0.4125, 0.1375, 0.45]), atol=1e-6)


def test_predict_semantic_batch_returns_labels_at_the_output_size():
    model = _pointwise().float()
    images = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    labels, conf = predict_semantic_batch(model, images, torch.device("cpu"))
    from selfpanoptic.augment.normalise import normalise

    with torch.no_grad():
        prob = torch.softmax(model(normalise(images)).float(), dim=1)
    assert np.array_equal(labels, prob.argmax(1).numpy().astype(np.uint8))  # the default: as before
    assert np.array_equal(conf, prob.max(1).values.numpy().astype(np.float16))
    labels, conf = predict_semantic_batch(model, images, torch.device("cpu"), _settings(flip=True), size=(8, 12))
    assert labels.shape == conf.shape == (2, 8, 12) and labels.dtype == np.uint8 and conf.dtype == np.float16


def test_image_instances_cluster_embeddings_at_the_output_size():
    seen = []

    def cluster(embeddings, semantic, confidence, classes):
        seen.append(tuple(embeddings.shape))
        return [(np.ones(semantic.shape[1:], dtype=np.int32), {1: classes[0]}) for _ in semantic]

    images = np.zeros((2, 4, 6, 3), dtype=np.uint8)
    semantic, confidence = np.zeros((2, 8, 12), dtype=np.uint8), np.full((2, 8, 12), 0.5)
    found = list(image_instances([(_pointwise(), [13])], images, semantic, confidence, cluster, torch.device("cpu"),
                                 _settings(scales=[1.0, 2.0]), size=(8, 12)))
    assert seen == [(2, 5, 8, 12)]
    assert [rows for _, rows, _ in found] == [[(1, 13, 96)], [(1, 13, 96)]]
    with pytest.raises(ValueError, match="output size"):  # semantic maps of the output size, not the images'
        next(image_instances([(_pointwise(), [13])], images, semantic, confidence, cluster, torch.device("cpu")))


def test_inference_settings_are_validated_by_key():
    assert validate_config({})["inference"] == _section()
    with pytest.raises(InputError, match=r"inference\.stride \[32, 64\] exceeds inference\.crop \[32, 32\] in width"):
        validate_config({"inference": {"crop": [32, 32]}})
    with pytest.raises(InputError) as info:
        validate_config({"inference": {"mode": "tiles", "scales": [0.0], "flip": "yes", "crop": [64]}})
    message = str(info.value)
    for key in ("'inference.mode'", "'inference.scales.0'", "'inference.flip'", "'inference.crop'"):
        assert key in message, key
