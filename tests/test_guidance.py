"""Instance guidance of pseudo-labels (:mod:`selfpanoptic.pseudo.guidance`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfpanoptic.pseudo.guidance import refine_with_instances, sample_instances


def test_refine_with_instances_majority_and_untouched_unlabelled_instances():
    labels = np.array(
        [
            [13, 13, 14, 0, 255],
            [13, 255, 14, 0, 255],
            [8, 8, 8, 255, 255],
        ],
        dtype=np.uint8,
    )
    instances = np.array(
        [
            [5, 5, 5, 0, 9],
            [5, 5, 5, 0, 9],
            [0, 0, 0, 7, 9],
        ]
    )
    refined = refine_with_instances(labels, instances)
    expected = labels.copy()
    expected[instances == 5] = 13  # 3 x car vs 2 x truck; the ignored pixel is filled too
    assert refined.dtype == np.uint8
    np.testing.assert_array_equal(refined, expected)
    assert refined[2, 3] == 255 and (refined[:, 4] == 255).all()  # all-ignore instances untouched
    np.testing.assert_array_equal(labels[1], [13, 255, 14, 0, 255])  # input untouched


def test_refine_with_instances_int64_and_torch():
    labels = np.array([[11, 12, 12], [255, 3, 3]], dtype=np.int64)
    instances = np.array([[1, 1, 1], [1, 0, 2]])
    refined = refine_with_instances(labels, instances)
    assert refined.dtype == np.int64
    np.testing.assert_array_equal(refined, [[12, 12, 12], [12, 3, 3]])
    as_torch = refine_with_instances(torch.from_numpy(labels), torch.from_numpy(instances))
    assert torch.equal(as_torch, torch.from_numpy(refined))


def test_refine_with_instances_non_contiguous_ids_and_ids_without_a_class():
    # ids 3, 40, 1000 are far apart; 77 has only ignored pixels, so it is not in the lookup
    # table (smaller and larger ids around it are); 0 = no instance
    labels = np.array(
        [
            [5, 5, 6, 255, 2, 2],
            [5, 255, 6, 255, 9, 9],
            [7, 7, 7, 1, 0, 255],
        ],
        dtype=np.uint8,
    )
    instances = np.array(
        [
            [3, 3, 3, 77, 1000, 1000],
            [3, 3, 40, 77, 1000, 1000],
            [0, 0, 40, 0, 0, 1000],
        ],
        dtype=np.int32,
    )
    refined = refine_with_instances(labels, instances)
    expected = labels.copy()
    expected[instances == 3] = 5  # 3 x class 5 vs 1 x class 6
    expected[instances == 40] = 6  # tie 6 vs 7: the smaller class id
    expected[instances == 1000] = 2  # tie 2 vs 9: the smaller class id; its ignored pixel is filled
    assert refined.dtype == np.uint8
    np.testing.assert_array_equal(refined, expected)
    assert (refined[instances == 77] == 255).all()  # no labelled pixel: left alone
    np.testing.assert_array_equal(refined[instances == 0], labels[instances == 0])
    # the same through torch, with ids as int64
    as_torch = refine_with_instances(torch.from_numpy(labels), torch.from_numpy(instances.astype(np.int64)))
    assert as_torch.dtype == torch.uint8
    assert torch.equal(as_torch, torch.from_numpy(expected))
    # no instance at all, or only all-ignored instances: nothing changes
    np.testing.assert_array_equal(refine_with_instances(labels, np.zeros_like(instances)), labels)
    only_ignored = np.where(instances == 77, 77, 0)
    np.testing.assert_array_equal(refine_with_instances(labels, only_ignored), labels)


def test_sample_instances_keeps_rounded_fraction_deterministically():
    instances = np.repeat(np.array([[0, 3, 4, 8, 10, 11, 20, 21]]), 2, axis=0)  # K = 7
    kept = sample_instances(instances, 0.3, np.random.default_rng(0))
    ids = set(np.unique(kept[kept > 0]).tolist())
    assert len(ids) == round(0.3 * 7) == 2
    assert ids <= {3, 4, 8, 10, 11, 20, 21}
    # kept instances keep all their pixels, the others become 0
    for i in ids:
        assert (kept[instances == i] == i).all()
    assert (kept[~np.isin(instances, list(ids))] == 0).all()
    np.testing.assert_array_equal(kept, sample_instances(instances, 0.3, np.random.default_rng(0)))
    assert kept.dtype == instances.dtype
    np.testing.assert_array_equal(sample_instances(instances, 1.0, np.random.default_rng(1)), instances)
    assert (sample_instances(instances, 0.0, np.random.default_rng(1)) == 0).all()
    assert len(np.unique(sample_instances(instances, 0.5, np.random.default_rng(2)))) - 1 == 4  # 3.5 -> 4
    with pytest.raises(ValueError):
        sample_instances(instances, 1.5, np.random.default_rng(0))


def test_refine_with_instances_trusts_only_kept_agreeing_instances():
    # instance 1: 4 pixels, 3 kept (car, car, truck): kept share 0.75, agreement 2/3
    # instance 2: 4 pixels, 1 kept (person): kept share 0.25, agreement 1
    labels = np.array([[13, 13, 14, 255], [11, 255, 255, 255]], dtype=np.uint8)
    instances = np.array([[1, 1, 1, 1], [2, 2, 2, 2]])
    everything = refine_with_instances(labels, instances)
    np.testing.assert_array_equal(everything, [[13, 13, 13, 13], [11, 11, 11, 11]])
    kept_only = refine_with_instances(labels, instances, fill_ignored=False)
    np.testing.assert_array_equal(kept_only, [[13, 13, 13, 255], [11, 255, 255, 255]])
    # instance 2 is mostly ignored: left alone; instance 1 still fills
    np.testing.assert_array_equal(refine_with_instances(labels, instances, min_kept_share=0.5),
                                  [[13, 13, 13, 13], [11, 255, 255, 255]])
    # instance 1's kept pixels disagree (2/3 < 0.7): left alone; instance 2 agrees fully
    np.testing.assert_array_equal(refine_with_instances(labels, instances, min_agreement=0.7),
                                  [[13, 13, 14, 255], [11, 11, 11, 11]])
    # both guards at their bounds: 0.75 >= 0.75 and 2/3 >= 0.66 trust instance 1
    np.testing.assert_array_equal(
        refine_with_instances(labels, instances, min_kept_share=0.75, min_agreement=0.66, fill_ignored=False),
        [[13, 13, 13, 255], [11, 255, 255, 255]])
