"""Panoptic quality: hand-computed cases and agreement with cityscapesscripts' evaluator."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfpanoptic.classes import SYNTHIA16_TRAIN_IDS, TRAIN_ID_TO_LABEL_ID
from selfpanoptic.formats.cityscapes_ids import cityscapes_categories
from selfpanoptic.formats.panoptic_png import ids_to_rgb, read_panoptic_png, rgb_to_ids
from selfpanoptic.metrics.panoptic import PanopticEvaluator
from selfpanoptic.metrics.panoptic_files import evaluate_panoptic_folders, format_table
from selfpanoptic.metrics.semantic import SemanticEvaluator

ROAD, SIDEWALK, CAR, PERSON = 7, 8, 26, 24
CATS = {
    ROAD: {"name": "road", "isthing": 0},
    SIDEWALK: {"name": "sidewalk", "isthing": 0},
    PERSON: {"name": "person", "isthing": 1},
    CAR: {"name": "car", "isthing": 1},
}


def seg(sid, cat, crowd=0):
    return {"id": sid, "category_id": cat, "iscrowd": crowd}


def psegs(ids_to_cat):
    return [{"id": k, "category_id": v} for k, v in ids_to_cat.items()]


def evaluate(gt, gt_segs, pred, pred_segs, cats=CATS, subset=None):
    ev = PanopticEvaluator(cats)
    ev.add(np.asarray(gt), gt_segs, np.asarray(pred), pred_segs)
    return ev.results(subset)


def same(a: dict, b: dict) -> bool:
    """Equality of result dicts, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def road_with_car(car_cols, width=10):
    """1 x width image: road (id 7) with a car (id 26001) on ``car_cols``."""
    ids = np.full((1, width), ROAD, dtype=np.int64)
    ids[0, car_cols] = 26001
    return ids


# ---------------------------------------------------------------------------------------------
# hand-checkable cases
# ---------------------------------------------------------------------------------------------


def test_perfect_prediction():
    gt = np.array([[7, 7, 8, 8], [26001, 26001, 26002, 0]])
    segs = [seg(7, ROAD), seg(8, SIDEWALK), seg(26001, CAR), seg(26002, CAR)]
    r = evaluate(gt, segs, gt, psegs({7: ROAD, 8: SIDEWALK, 26001: CAR, 26002: CAR}))
    for group, n in (("All", 3), ("Things", 1), ("Stuff", 2)):
        assert r[group] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": n}
    assert r["per_class"]["person"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}  # absent: 0, not averaged
    assert r["PQ_dagger"] == 1.0


def test_thing_iou_06():
    # GT car on columns 0..4 (5 px), road elsewhere; predicted car on columns 2..4 (3 px, all
    # inside the GT car): IoU 3/5 = 0.6. Predicted road = the other 7 px: IoU with GT road 5/7.
    gt = road_with_car(slice(0, 5))
    pred = np.full((1, 10), ROAD)
    pred[0, 2:5] = 5
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({5: CAR, 7: ROAD}))
    assert r["per_class"]["car"]["sq"] == pytest.approx(0.6)
    assert r["per_class"]["car"]["rq"] == 1.0
    assert r["per_class"]["car"]["pq"] == pytest.approx(0.6)
    assert r["per_class"]["road"]["pq"] == pytest.approx(5 / 7)
    assert r["Things"] == pytest.approx({"pq": 0.6, "sq": 0.6, "rq": 1.0, "n": 1})
    assert r["All"]["n"] == 2 and r["All"]["pq"] == pytest.approx((0.6 + 5 / 7) / 2)


def test_iou_exactly_half_is_not_a_match():
    # GT car 4 px (columns 0..3); predicted car on columns 0..1 (2 px), columns 2..3 void: IoU 2/4
    gt = road_with_car(slice(0, 4))
    pred = np.full((1, 10), ROAD)
    pred[0, 0:2] = 77
    pred[0, 2:4] = 0
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({7: ROAD, 77: CAR}))
    assert r["per_class"]["car"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}  # 1 FN + 1 FP, no TP
    assert r["Things"]["n"] == 1
    # one more predicted pixel (3 of 5 px: IoU 0.6) matches
    gt = road_with_car(slice(0, 5))
    pred[0, 2] = 77
    pred[0, 3:5] = ROAD
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({7: ROAD, 77: CAR}))
    assert r["per_class"]["car"]["sq"] == pytest.approx(0.6)


def test_void_pixels_leave_the_union():
    # GT car 4 px, then 4 void px; prediction covers car + void: IoU 4/4 = 1 (void not in union)
    gt = np.array([[26001] * 4 + [0] * 4 + [7] * 2])
    pred = np.array([[3] * 8 + [7] * 2])
    r = evaluate(gt, [seg(26001, CAR), seg(7, ROAD)], pred, psegs({3: CAR, 7: ROAD}))
    assert r["per_class"]["car"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0}


def test_prediction_on_void_only_is_not_a_false_positive():
    gt = np.array([[7, 7, 7, 7, 0, 0, 0, 0]])
    pred = np.array([[7, 7, 7, 7, 5, 5, 5, 6]])
    # segment 5 (3 px) lies fully on void: ignored; segment 6 (1 px) on void: ignored
    r = evaluate(gt, [seg(7, ROAD)], pred, psegs({7: ROAD, 5: CAR, 6: SIDEWALK}))
    assert r["per_class"]["car"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    assert r["per_class"]["sidewalk"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    assert r["All"]["n"] == 1 and r["Things"]["n"] == 0 and math.isnan(r["Things"]["pq"])
    # half on void (not more than half) is an FP
    pred = np.array([[7, 7, 7, 5, 5, 0, 0, 0]])
    r = evaluate(gt, [seg(7, ROAD)], pred, psegs({7: ROAD, 5: CAR}))
    assert r["Things"]["n"] == 1 and r["per_class"]["car"]["rq"] == 0.0


def test_crowd_regions():
    # GT: road, a car crowd region (id 26 < 1000, iscrowd 1) and one car instance
    gt = np.array([[7, 7, 26, 26, 26, 26, 26001, 26001, 26001, 26001]])
    segs = [seg(7, ROAD), seg(26, CAR, crowd=1), seg(26001, CAR)]
    # a car prediction exactly on the crowd region: not matched, not an FP; the crowd is no FN
    pred = np.array([[7, 7, 1, 1, 1, 1, 2, 2, 2, 2]])
    r = evaluate(gt, segs, pred, psegs({7: ROAD, 1: CAR, 2: CAR}))
    assert r["per_class"]["car"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0}
    # a person prediction on the car crowd: the crowd of another category does not excuse it -> FP
    r = evaluate(gt, segs, pred, psegs({7: ROAD, 1: PERSON, 2: CAR}))
    assert r["per_class"]["person"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0} and r["Things"]["n"] == 2
    # prediction covering crowd + instance (8 px): IoU with the instance 4/8 -> no match; 4/8 on the
    # crowd is not > 0.5 -> FP; the instance is an FN
    pred = np.array([[7, 7, 1, 1, 1, 1, 1, 1, 1, 1]])
    r = evaluate(gt, segs, pred, psegs({7: ROAD, 1: CAR}))
    assert r["per_class"]["car"]["rq"] == 0.0
    # the crowd pixels never count against a match: instance predicted with one crowd pixel
    # -> IoU 4/5 (the crowd pixel is not void, so it stays in the union)
    pred = np.array([[7, 7, 0, 0, 0, 1, 1, 1, 1, 1]])
    r = evaluate(gt, segs, pred, psegs({7: ROAD, 1: CAR}))
    assert r["per_class"]["car"]["sq"] == pytest.approx(0.8)


def test_absent_classes_are_excluded_from_the_mean():
    gt = np.array([[7, 7, 26001, 26001]])
    pred = np.array([[7, 7, 26001, 26001]])
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({7: ROAD, 26001: CAR}))
    assert r["All"]["n"] == 2 and r["All"]["pq"] == 1.0  # sidewalk and person absent on both sides
    # a class present only as an FP counts with PQ 0
    pred = np.array([[8, 7, 26001, 26001]])
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({7: ROAD, 8: SIDEWALK, 26001: CAR}))
    assert r["All"]["n"] == 3 and r["Stuff"]["n"] == 2
    assert r["per_class"]["sidewalk"]["pq"] == 0.0
    # road: IoU 1/2 is no match (PQ 0, one FP and one FN), sidewalk PQ 0, car PQ 1
    assert r["All"]["pq"] == pytest.approx(1 / 3)
    # restricting to a subset
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({7: ROAD, 8: SIDEWALK, 26001: CAR}),
                 subset=[ROAD, CAR])
    assert set(r["per_class"]) == {"road", "car"} and r["All"]["n"] == 2


def test_pq_dagger_uses_iou_for_stuff():
    # road GT 6 px, predicted road on 4 of them + 2 px sidewalk: semantic IoU road 4/6, PQ road
    # 4/6 / 1 (IoU 2/3 > 0.5 -> match); sidewalk: GT 2 px, predicted 2 px on road + 1 of its own
    gt = np.array([[7, 7, 7, 7, 7, 7, 8, 8, 26001, 26001]])
    pred = np.array([[7, 7, 7, 7, 8, 8, 8, 0, 5, 5]])
    r = evaluate(gt, [seg(7, ROAD), seg(8, SIDEWALK), seg(26001, CAR)], pred,
                 psegs({7: ROAD, 8: SIDEWALK, 5: CAR}))
    iou_road, iou_sidewalk = 4 / 6, 1 / 4
    assert r["semantic_iou"]["road"] == pytest.approx(iou_road)
    assert r["semantic_iou"]["sidewalk"] == pytest.approx(iou_sidewalk)
    assert r["per_class"]["sidewalk"]["pq"] == 0.0  # IoU 1/4: FP + FN
    assert r["PQ_dagger"] == pytest.approx((iou_road + iou_sidewalk + 1.0) / 3)
    assert r["All"]["pq"] == pytest.approx((4 / 6 + 0.0 + 1.0) / 3)


def test_accumulates_over_images_and_merge():
    gt = road_with_car(slice(0, 5))
    pred_good = road_with_car(slice(0, 5))
    pred_bad = np.full((1, 10), ROAD)
    segs_gt = [seg(7, ROAD), seg(26001, CAR)]
    ev = PanopticEvaluator(CATS)
    ev.add(gt, segs_gt, pred_good, psegs({7: ROAD, 26001: CAR}))
    ev.add(gt, segs_gt, pred_bad, psegs({7: ROAD}))
    r = ev.results()
    # car: TP 1 (IoU 1), FN 1 -> PQ 1 / 1.5
    assert r["per_class"]["car"]["pq"] == pytest.approx(1 / 1.5)
    assert r["num_images"] == 2
    ev2 = PanopticEvaluator(CATS)
    ev2.add(gt, segs_gt, pred_good, psegs({7: ROAD, 26001: CAR}))
    ev3 = PanopticEvaluator(CATS)
    ev3.add(gt, segs_gt, pred_bad, psegs({7: ROAD}))
    assert same(ev2.merge(ev3).results(), r)


def test_input_errors():
    gt = road_with_car(slice(0, 5))
    ev = PanopticEvaluator(CATS)
    with pytest.raises(ValueError, match="not in segments_info"):
        ev.add(gt, [seg(7, ROAD), seg(26001, CAR)], gt, psegs({7: ROAD}))
    with pytest.raises(ValueError, match="not in the PNG"):
        ev.add(gt, [seg(7, ROAD), seg(26001, CAR)], gt, psegs({7: ROAD, 26001: CAR, 4: CAR}))
    with pytest.raises(ValueError, match="unknown category_id 99"):
        ev.add(gt, [seg(7, ROAD), seg(26001, CAR)], gt, psegs({7: ROAD, 26001: 99}))
    with pytest.raises(ValueError, match="shape"):
        ev.add(gt, [seg(7, ROAD), seg(26001, CAR)], gt[:, :5], psegs({7: ROAD, 26001: CAR}))
    with pytest.raises(ValueError, match="unknown category id"):
        ev.results(category_subset=[5])


def test_large_prediction_ids_and_rgb_round_trip():
    rng = np.random.default_rng(0)
    ids = rng.choice(np.array([0, 1, 255, 256, 70000, (1 << 24) - 1]), size=(4, 6))
    assert (rgb_to_ids(ids_to_rgb(ids)) == ids).all()
    gt = road_with_car(slice(0, 5))
    pred = np.where(gt == ROAD, (1 << 24) - 1, 12345678)
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], pred, psegs({(1 << 24) - 1: ROAD, 12345678: CAR}))
    assert r["All"]["pq"] == 1.0


def test_ids_beyond_the_lookup_table_give_the_same_results():
    # ids >= 2^24 (possible through the array API, not in PNGs) take the binary-search path
    rng = np.random.default_rng(1)
    gt = np.array([[7, 7, 7, 0, 26001, 26001, 26002, 26], [7, 8, 8, 0, 26001, 26001, 26002, 26]])
    gt_segs = [seg(7, ROAD), seg(8, SIDEWALK), seg(26001, CAR), seg(26002, CAR), seg(26, CAR, crowd=1)]
    pred = np.array([[1, 1, 2, 3, 4, 4, 4, 5], [1, 2, 2, 0, 4, 4, 0, 5]])
    pred_cat = {1: ROAD, 2: SIDEWALK, 3: PERSON, 4: CAR, 5: CAR}
    small = evaluate(gt, gt_segs, pred, psegs(pred_cat))
    big_gt = np.where(gt > 0, gt + (1 << 40), 0)
    big_segs = [dict(s, id=s["id"] + (1 << 40)) for s in gt_segs]
    perm = rng.permutation(6)
    big_pred_ids = {k: int(1 << 33) + int(perm[k]) for k in pred_cat}
    big_pred = np.vectorize(lambda v: big_pred_ids.get(v, 0))(pred)
    big = evaluate(big_gt, big_segs, big_pred, [{"id": big_pred_ids[k], "category_id": v} for k, v in pred_cat.items()])
    assert same(big, small)
    # person (on void) and the car on the crowd region are ignored; car: 1 TP (IoU 4/5), 1 FN
    assert small["Things"]["n"] == 1 and small["per_class"]["car"]["rq"] == pytest.approx(1 / 1.5)
    assert small["per_class"]["car"]["sq"] == pytest.approx(0.8)


def test_gt_pixels_with_unlisted_ids_are_neither_void_nor_matched():
    # as in the official code: such pixels stay in the union of a prediction overlapping them
    gt = np.array([[26001] * 4 + [999] * 2 + [7] * 4])
    pred = np.array([[5] * 6 + [7] * 4])
    r = evaluate(gt, [seg(26001, CAR), seg(7, ROAD)], pred, psegs({5: CAR, 7: ROAD}))
    assert r["per_class"]["car"]["sq"] == pytest.approx(4 / 6)
    assert r["semantic_iou"]["car"] == pytest.approx(1.0)  # unlisted GT pixels are ignored there


def test_cityscapes_categories_and_table():
    cats = cityscapes_categories()  # the list the evaluator also gets from a GT JSON
    assert [c["id"] for c in cats] == list(TRAIN_ID_TO_LABEL_ID) and sum(c["isthing"] for c in cats) == 8
    gt = road_with_car(slice(0, 5))
    r = evaluate(gt, [seg(7, ROAD), seg(26001, CAR)], gt, psegs({7: ROAD, 26001: CAR}), cats=cats)
    table = format_table(r)
    assert "All           | 100.0  100.0  100.0     2" in table and "bicycle" in table


# ---------------------------------------------------------------------------------------------
# agreement with the official evaluator on random data in the official format
# ---------------------------------------------------------------------------------------------

STUFF_LABELS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23]
THING_LABELS = [24, 25, 26, 27, 28, 31, 32, 33]
ALL_LABELS = STUFF_LABELS + THING_LABELS


def official_categories() -> list[dict]:
    from cityscapesscripts.helpers.labels import labels

    return [
        {"id": int(lb.id), "name": lb.name, "color": lb.color, "supercategory": lb.category,
         "isthing": 1 if lb.hasInstances else 0}
        for lb in labels if not lb.ignoreInEval
    ]


def random_gt(rng, height, width) -> np.ndarray:
    """Cityscapes-like segment-id map: stuff ids = labelId, thing instances labelId*1000+k, crowd
    regions labelId (< 1000) of thing classes, void 0."""
    ids = np.full((height, width), rng.choice(STUFF_LABELS), dtype=np.int64)
    for _ in range(10):  # stuff rectangles
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(4, height // 2), rng.integers(4, width // 2)
        ids[y:y + h, x:x + w] = rng.choice(STUFF_LABELS)
    for _ in range(3):  # void blobs
        y, x = rng.integers(0, height), rng.integers(0, width)
        ids[y:y + rng.integers(2, 12), x:x + rng.integers(2, 20)] = 0
    for _ in range(2):  # crowd regions
        y, x = rng.integers(0, height), rng.integers(0, width)
        ids[y:y + rng.integers(3, 15), x:x + rng.integers(3, 25)] = rng.choice(THING_LABELS)
    yy, xx = np.mgrid[:height, :width]
    counter = {}
    for _ in range(int(rng.integers(8, 16))):  # thing instances: ellipses, some tiny
        label = int(rng.choice(THING_LABELS[:4] if rng.random() < 0.6 else THING_LABELS))
        counter[label] = counter.get(label, 0) + 1
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        ry, rx = (rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)) if rng.random() < 0.2 else (
            rng.uniform(2, 12), rng.uniform(2, 20))
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        ids[mask] = label * 1000 + counter[label]
    return ids


def gt_segments_info(ids: np.ndarray) -> list[dict]:
    """segments_info exactly as createPanopticImgs (useTrainId=False) writes it."""
    info = []
    for sid in np.unique(ids):
        if sid == 0:
            continue
        label = int(sid) if sid < 1000 else int(sid) // 1000
        crowd = int(sid < 1000 and label in THING_LABELS)
        mask = ids == sid
        cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
        info.append({"id": int(sid), "category_id": label, "area": int(mask.sum()),
                     "bbox": [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)],
                     "iscrowd": crowd})
    return info


def random_prediction(rng, gt: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Perturb a GT map: jitter, split, merge, drop, shift, misclassify, spurious and tiny segments;
    then give every segment a random id in [1, 2^24)."""
    height, width = gt.shape
    pred = gt.copy()
    category = {int(s): (int(s) if s < 1000 else int(s) // 1000) for s in np.unique(gt) if s}
    next_id = [10_000_000]

    def new_segment(cat):
        next_id[0] += 1
        category[next_id[0]] = cat
        return next_id[0]

    # boundary jitter: copy ids from a shifted map on ~8 % of the pixels
    shifted = np.roll(gt, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
    jitter = rng.random(gt.shape) < 0.08
    pred[jitter] = shifted[jitter]
    segments = [int(s) for s in np.unique(gt) if s]
    for s in segments:
        mask = pred == s
        if not mask.any():
            continue
        op = rng.random()
        if op < 0.12:  # split in two along x
            xs = np.nonzero(mask)[1]
            pred[mask & (np.arange(width)[None, :] > np.median(xs))] = new_segment(category[s])
        elif op < 0.2:  # drop (predicted void)
            pred[mask] = 0
        elif op < 0.3:  # shift a thing by a few pixels
            dy, dx = int(rng.integers(-3, 4)), int(rng.integers(-3, 4))
            pred[mask] = 0
            pred[np.roll(mask, (dy, dx), axis=(0, 1))] = s
        elif op < 0.38:  # misclassify
            category[s] = int(rng.choice(ALL_LABELS))
    # merge pairs of same-category things
    by_cat = {}
    for s in np.unique(pred):
        if s >= 1000 and s < 10_000_000:
            by_cat.setdefault(category[int(s)], []).append(int(s))
    for members in by_cat.values():
        if len(members) >= 2 and rng.random() < 0.5:
            pred[pred == members[1]] = members[0]
    # spurious segments: random rectangles (some on void), tiny ones
    void_y, void_x = np.nonzero(gt == 0)
    for k in range(6):
        if k < 2 and void_y.size:
            i = rng.integers(void_y.size)
            y, x = void_y[i], void_x[i]
        else:
            y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = (1, int(rng.integers(1, 3))) if k % 3 == 2 else (int(rng.integers(2, 8)), int(rng.integers(2, 12)))
        pred[y:y + h, x:x + w] = new_segment(int(rng.choice(ALL_LABELS)))
    # crowd regions predicted as instances of their class
    for s in segments:
        if s < 1000 and s in THING_LABELS and rng.random() < 0.7:
            pred[pred == s] = new_segment(s)
    # final random relabelling
    present = [int(s) for s in np.unique(pred) if s]
    new_ids = rng.choice(np.arange(1, 1 << 24), size=len(present), replace=False)
    lut = {old: int(new) for old, new in zip(present, new_ids)}
    out = np.zeros_like(pred)
    for old, new in lut.items():
        out[pred == old] = new
    segments_info = [{"id": lut[old], "category_id": category[old]} for old in present]
    rng.shuffle(segments_info)
    return out, segments_info


def write_dataset(root: Path, seed: int, n_images=5, height=64, width=128):
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    images, gt_anns, pred_anns = [], [], []
    for i in range(n_images):
        image_id = f"city_{seed:06d}_{i:06d}"
        gt = random_gt(rng, height, width)
        pred, pred_info = random_prediction(rng, gt)
        gt_name = f"{image_id}_gtFine_panoptic.png"
        pred_name = f"{image_id}_pred.png"
        Image.fromarray(ids_to_rgb(gt)).save(gt_dir / gt_name)
        Image.fromarray(ids_to_rgb(pred)).save(pred_dir / pred_name)
        images.append({"id": image_id, "width": width, "height": height,
                       "file_name": f"{image_id}_leftImg8bit.png"})
        gt_anns.append({"image_id": image_id, "file_name": gt_name, "segments_info": gt_segments_info(gt)})
        pred_anns.append({"image_id": image_id, "file_name": pred_name, "segments_info": pred_info})
    rng.shuffle(pred_anns)  # matched by image_id, not by order
    gt_json, pred_json = root / "gt.json", root / "pred.json"
    gt_json.write_text(json.dumps({"images": images, "annotations": gt_anns,
                                   "categories": official_categories()}, sort_keys=True, indent=4))
    pred_json.write_text(json.dumps({"annotations": pred_anns}))
    return gt_json, gt_dir, pred_json, pred_dir


def semantic_reference(gt_json, gt_dir, pred_json, pred_dir):
    """Stuff IoU from selfpanoptic.metrics.semantic on trainId maps derived from the panoptic PNGs."""
    label_to_train = {lab: t for t, lab in enumerate(TRAIN_ID_TO_LABEL_ID)}
    ev = SemanticEvaluator()
    preds = {a["image_id"]: a for a in json.loads(Path(pred_json).read_text())["annotations"]}
    for ann in json.loads(Path(gt_json).read_text())["annotations"]:
        maps = []
        for folder, a in ((gt_dir, ann), (pred_dir, preds[ann["image_id"]])):
            ids = read_panoptic_png(Path(folder) / a["file_name"])
            train = np.full(ids.shape, 255, dtype=np.uint8)
            for s in a["segments_info"]:
                train[ids == s["id"]] = label_to_train[s["category_id"]]
            maps.append(train)
        ev.add(maps[0], maps[1])
    return ev.iou()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agreement_with_official_evaluator(tmp_path, seed):
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic

    gt_json, gt_dir, pred_json, pred_dir = write_dataset(tmp_path, seed)
    ours = evaluate_panoptic_folders(gt_json, gt_dir, pred_json, pred_dir)
    with redirect_stdout(io.StringIO()):
        theirs = evaluatePanoptic(str(gt_json), str(gt_dir), str(pred_json), str(pred_dir),
                                  str(tmp_path / "official.json"))
    names = {c["id"]: c["name"] for c in official_categories()}
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == theirs[group]["n"]
        for key in ("pq", "sq", "rq"):
            assert ours[group][key] == pytest.approx(theirs[group][key], abs=1e-9, rel=0), (group, key)
    assert set(ours["per_class"]) == set(names.values())
    for label, r in theirs["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert ours["per_class"][names[label]][key] == pytest.approx(r[key], abs=1e-9, rel=0), (label, key)
    # the data exercise every path: matches, FPs, FNs in both groups
    assert 0.1 < ours["All"]["pq"] < 0.95 and ours["Things"]["n"] >= 4 and ours["Stuff"]["n"] >= 6

    # PQ-dagger's stuff IoU equals the semantic evaluator's IoU on the same category maps
    iou = semantic_reference(gt_json, gt_dir, pred_json, pred_dir)
    for t, label in enumerate(TRAIN_ID_TO_LABEL_ID):
        mine = ours["semantic_iou"][names[label]]
        assert (math.isnan(iou[t]) and math.isnan(mine)) or mine == pytest.approx(iou[t], abs=1e-12)

    # the 16-class Synthia subset: same per-class numbers, means over the subset only
    subset = [TRAIN_ID_TO_LABEL_ID[t] for t in SYNTHIA16_TRAIN_IDS]
    ours16 = evaluate_panoptic_folders(gt_json, gt_dir, pred_json, pred_dir, category_subset=subset)
    assert list(ours16["per_class"]) == [names[lab] for lab in subset]
    for label in subset:
        assert ours16["per_class"][names[label]] == ours["per_class"][names[label]]
    ev = evaluator_over(gt_json, gt_dir, pred_json, pred_dir)
    present = {cid for k, cid in enumerate(ev.categories) if ev.tp[k] + ev.fp[k] + ev.fn[k] > 0}
    for group, keep in (("All", lambda lab: True), ("Things", lambda lab: lab in THING_LABELS),
                        ("Stuff", lambda lab: lab in STUFF_LABELS)):
        labels = [lab for lab in subset if keep(lab) and lab in present]
        assert ours16[group]["n"] == len(labels)
        for key in ("pq", "sq", "rq"):
            expected = np.mean([theirs["per_class"][lab][key] for lab in labels])
            assert ours16[group][key] == pytest.approx(expected, abs=1e-9, rel=0)


def evaluator_over(gt_json, gt_dir, pred_json, pred_dir) -> PanopticEvaluator:
    gt = json.loads(Path(gt_json).read_text())
    ev = PanopticEvaluator(gt["categories"])
    preds = {a["image_id"]: a for a in json.loads(Path(pred_json).read_text())["annotations"]}
    for ann in gt["annotations"]:
        p = preds[ann["image_id"]]
        ev.add(read_panoptic_png(Path(gt_dir) / ann["file_name"]), ann["segments_info"],
               read_panoptic_png(Path(pred_dir) / p["file_name"]), p["segments_info"])
    return ev


def test_pq_dagger_formula_on_random_data(tmp_path):
    gt_json, gt_dir, pred_json, pred_dir = write_dataset(tmp_path, 7, n_images=3)
    ours = evaluate_panoptic_folders(gt_json, gt_dir, pred_json, pred_dir)
    ev = evaluator_over(gt_json, gt_dir, pred_json, pred_dir)
    assert same(ev.results(), ours)
    present = (ev.tp + ev.fp + ev.fn)[:-1] > 0
    values = []
    for k, (cid, info) in enumerate(ev.categories.items()):
        if info["isthing"]:
            if present[k]:
                values.append(ours["per_class"][info["name"]]["pq"])
        elif not math.isnan(ours["semantic_iou"][info["name"]]):
            values.append(ours["semantic_iou"][info["name"]])
    assert ours["PQ_dagger"] == pytest.approx(np.mean(values), abs=1e-12)


def test_folder_errors(tmp_path):
    gt_json, gt_dir, pred_json, pred_dir = write_dataset(tmp_path, 3, n_images=2)
    data = json.loads(pred_json.read_text())
    # missing prediction for an image
    dropped = data["annotations"].pop(0)
    bad = tmp_path / "missing.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=dropped["image_id"]):
        evaluate_panoptic_folders(gt_json, gt_dir, bad, pred_dir)
    # a PNG id missing from segments_info
    data["annotations"].append(dropped)
    dropped["segments_info"] = dropped["segments_info"][1:]
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=dropped["file_name"]):
        evaluate_panoptic_folders(gt_json, gt_dir, bad, pred_dir)
    # a PNG that is not RGB
    dropped["segments_info"] = []
    bad.write_text(json.dumps(data))
    Image.fromarray(np.zeros((64, 128), dtype=np.uint8), "L").save(pred_dir / dropped["file_name"])
    with pytest.raises(ValueError, match="must be RGB"):
        evaluate_panoptic_folders(gt_json, gt_dir, bad, pred_dir)


def test_threaded_and_serial_reading_agree(tmp_path):
    paths = write_dataset(tmp_path, 11, n_images=4)
    assert same(evaluate_panoptic_folders(*paths, num_workers=0), evaluate_panoptic_folders(*paths, num_workers=3))


def test_ground_truth_errors_name_the_ground_truth_file(tmp_path):
    gt_json, gt_dir, pred_json, pred_dir = write_dataset(tmp_path, 4, n_images=2)
    data = json.loads(gt_json.read_text())
    ann = data["annotations"][1]
    ann["segments_info"].append(dict(ann["segments_info"][0]))  # duplicate id
    gt_json.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{ann['file_name']}.*duplicate GT segment id"):
        evaluate_panoptic_folders(gt_json, gt_dir, pred_json, pred_dir)
