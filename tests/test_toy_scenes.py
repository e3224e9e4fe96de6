"""Tests of the toy scene layouts (selfpanoptic.toy.scenes) and their rendering (selfpanoptic.toy.render)."""

from __future__ import annotations

import numpy as np
import pytest

from selfpanoptic.classes import NUM_CLASSES, THING_TRAIN_IDS, class_id
from selfpanoptic.toy.render import STYLES, RenderStyle, render_scene
from selfpanoptic.toy.scenes import PROFILES, Scene, SceneProfile, generate_scene
from selfpanoptic.toy.scenes.camera import Camera
from selfpanoptic.toy.scenes.codes import FACE_FRONT, PART_PLAIN
from selfpanoptic.toy.scenes.raster import Painter, convex_mask, pixel_span

H, W = 128, 256
TRUCK, TRAIN, TERRAIN = class_id("truck"), class_id("train"), class_id("terrain")
THINGS = np.array(THING_TRAIN_IDS)


def _scene(seed: int, profile: SceneProfile = SceneProfile(), size=(H, W), **kw) -> Scene:
    return generate_scene(np.random.default_rng(seed), size[0], size[1], profile, **kw)


def _check_consistent(scene: Scene) -> None:
    sem, inst = scene.semantic, scene.instances
    assert sem.dtype == np.uint8 and inst.dtype == np.int32
    assert sem.max() < NUM_CLASSES
    is_thing = np.isin(sem, THINGS)
    assert np.all(inst[is_thing] > 0), "a thing pixel has no instance"
    assert np.all(inst[~is_thing] == 0), "a stuff pixel has an instance"
    ids = np.unique(inst[inst > 0])
    assert list(ids) == list(range(1, len(ids) + 1)), "instance ids are not 1..K"
    assert sorted(scene.instance_classes) == list(ids), "instance_classes lists hidden or missing instances"
    for i, cls in scene.instance_classes.items():
        assert np.all(sem[inst == i] == cls), f"instance {i} mixes classes"


def test_shapes_and_dtypes():
    for size in ((H, W), (64, 128), (256, 512), (100, 100)):
        scene = _scene(3, size=size)
        assert scene.semantic.shape == size and scene.instances.shape == size
        for extra in (scene.parts, scene.facing, scene.depth, scene.pieces):
            assert extra.shape == size
        _check_consistent(scene)


def test_deterministic():
    a, b = _scene(11), _scene(11)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    np.testing.assert_array_equal(a.instances, b.instances)
    assert a.instance_classes == b.instance_classes
    c = _scene(12)
    assert not np.array_equal(a.semantic, c.semantic)
    img_a = render_scene(a, STYLES["cityscapes"], np.random.default_rng(5))
    img_b = render_scene(b, STYLES["cityscapes"], np.random.default_rng(5))
    np.testing.assert_array_equal(img_a, img_b)


@pytest.mark.parametrize("domain", sorted(PROFILES))
def test_instances_consistent(domain):
    for seed in range(15):
        scene = _scene(seed, PROFILES[domain])
        _check_consistent(scene)
        assert len(scene.instance_classes) > 0 or not np.isin(scene.semantic, THINGS).any()


def test_forced_truck_and_train_visible():
    for seed in range(12):
        scene = _scene(seed, PROFILES["gta"], include_truck=True, include_train=True)
        _check_consistent(scene)
        for cls in (TRUCK, TRAIN):
            sizes = [np.sum(scene.instances == i) for i, c in scene.instance_classes.items() if c == cls]
            assert sizes and max(sizes) >= 20, f"seed {seed}: class {cls} not visible enough: {sizes}"


def test_forced_absent_truck_and_train():
    profile = SceneProfile(truck_prob=1.0, train_prob=1.0)
    for seed in range(12):
        scene = _scene(seed, profile, include_truck=False, include_train=False)
        assert not np.isin(scene.semantic, [TRUCK, TRAIN]).any()
        assert TRUCK not in scene.instance_classes.values() and TRAIN not in scene.instance_classes.values()


def test_forced_at_small_size():
    scene = _scene(4, size=(64, 128), include_truck=True, include_train=True)
    assert {TRUCK, TRAIN} <= set(scene.instance_classes.values())


def test_absent_classes_respected():
    absent = ("terrain", "wall", "rider", "motorcycle", "traffic light")
    profile = SceneProfile(absent_classes=absent, verge_prob=1.0, terrain_verge_prob=1.0, wall_prob=1.0,
                           rider_count=(3, 3), light_prob=1.0, parked_motorcycle_count=(2, 2))
    ids = [class_id(n) for n in absent]
    for seed in range(10):
        scene = _scene(seed, profile)
        _check_consistent(scene)
        assert not np.isin(scene.semantic, ids).any()
    with pytest.raises(ValueError):
        _scene(0, SceneProfile(absent_classes=("truck",)), include_truck=True)
    with pytest.raises(KeyError):
        SceneProfile(absent_classes=("lamppost",))


def test_synthia_has_no_terrain():
    for seed in range(10):
        assert not (_scene(seed, PROFILES["synthia"]).semantic == TERRAIN).any()


def test_all_classes_covered():
    seen = np.zeros(NUM_CLASSES, dtype=bool)
    for seed in range(40):
        seen |= np.bincount(_scene(seed).semantic.ravel(), minlength=NUM_CLASSES) > 0
    assert seen.all(), f"classes never generated: {np.flatnonzero(~seen)}"


def test_sky_on_top_road_at_bottom():
    road, sky = class_id("road"), class_id("sky")
    for seed in range(10):
        sem = _scene(seed).semantic
        assert (sem[0] == sky).any() or (sem[0] == class_id("building")).any() or (sem[0] == class_id("vegetation")).any()
        assert not (sem[-1] == sky).any()
        assert (sem == road).mean() > 0.05


def test_render_uint8_and_styles_differ():
    scene = _scene(7)
    images = {}
    for name, style in STYLES.items():
        img = render_scene(scene, style, np.random.default_rng(0))
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        assert img.std() > 10  # not a blank image
        images[name] = img.astype(np.int32)
    names = sorted(images)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(images[a] - images[b]).mean() > 5, f"{a} and {b} render alike"


def test_render_classes_distinguishable():
    """Mean colours of road, vegetation and sky differ in every style (a model can learn them)."""
    scene = _scene(2)
    for style in STYLES.values():
        img = render_scene(scene, style, np.random.default_rng(1)).astype(float)
        means = [img[scene.semantic == class_id(n)].mean(axis=0) for n in ("road", "vegetation", "sky")
                 if (scene.semantic == class_id(n)).any()]
        for i in range(len(means)):
            for j in range(i + 1, len(means)):
                assert np.abs(means[i] - means[j]).sum() > 30


def test_render_style_validates_palette():
    with pytest.raises(ValueError):
        RenderStyle(palette=((0, 0, 0),) * 5)


def test_camera_projection_hand_checked():
    cam = Camera(H=100, W=200, y_h=40.0, vx=100.0, f=160.0, h_c=1.5)
    assert cam.x(2.0, 10.0) == pytest.approx(132.0)  # vx + f * X / Z
    assert cam.y(0.0, 10.0) == pytest.approx(64.0)  # ground: y_h + f * h_c / Z
    assert cam.y(1.5, 10.0) == pytest.approx(40.0)  # a point at camera height lies on the horizon
    assert cam.depth_of_row_frac(0.5) == pytest.approx(8.0)  # f * h_c / (0.5 * (H - y_h))
    assert cam.row_frac_of_depth(8.0) == pytest.approx(0.5)
    assert cam.visible_x_range(10.0) == pytest.approx((-6.25, 6.25))


def test_rasteriser_owns_pixels_by_centre():
    # half-open [lo, hi) on pixel centres c + 0.5, clipped to the image
    assert pixel_span(0.4, 2.6, 10) == (0, 3)
    assert pixel_span(0.6, 2.5, 10) == (1, 2)
    assert pixel_span(-3.0, 20.0, 10) == (0, 10)
    # right triangle (0,0)-(4,0)-(0,4): centre (c+.5, r+.5) inside iff r + c <= 3, either winding
    expected = np.add.outer(np.arange(4), np.arange(4)) <= 3
    for xs, ys in (([0.0, 4.0, 0.0], [0.0, 0.0, 4.0]), ([0.0, 0.0, 4.0], [0.0, 4.0, 0.0])):
        r0, c0, mask = convex_mask(xs, ys, 5, 5)
        assert (r0, c0) == (0, 0)
        np.testing.assert_array_equal(mask, expected)
    assert convex_mask([7.0, 9.0, 8.0], [1.0, 1.0, 3.0], 5, 5) is None  # off the image
    # a sliver thinner than a pixel covers one column with min_size, none without
    cam = Camera(H=5, W=5, y_h=2.0, vx=2.5, f=5.0, h_c=1.5)
    painter = Painter(cam, absent=frozenset({TERRAIN}), first_piece=7)
    assert painter.begin(class_id("car"), 12.0)
    painter.rect(1.2, 1.0, 1.4, 3.0)
    assert not painter.pid.any()
    painter.rect(1.2, 1.0, 1.4, 3.0, min_size=True)
    assert np.argwhere(painter.pid).tolist() == [[1, 1], [2, 1]]
    assert painter.instance_classes == {1: class_id("car")}
    assert painter.attrs[painter.pid[1, 1]] == (class_id("car"), 1, PART_PLAIN, FACE_FRONT, 12.0, 7)
    assert not painter.begin(TERRAIN, 3.0)  # absent class: drawing is ignored
    painter.rect(0.0, 0.0, 5.0, 5.0)
    assert np.count_nonzero(painter.pid) == 2
