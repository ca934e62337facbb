"""Hair removal, lesion centring and the determinism of preprocessing."""
import cv2
import numpy as np

from dermsynth.data.hair_score import score_hair_removal
from dermsynth.data.preprocess import (PrepConfig, center_crop, hair_mask, lesion_box, preprocess_image, remove_hair,
                                       to_working)
from dermsynth.demo.phantom import STYLES, render, render_with_truth, sample_lesion

SKIN = (215, 170, 150)


def _skin(h=200, w=260, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), SKIN, np.float32) + rng.normal(0, 2, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _lesion(img, center, radius, color=(90, 55, 35)):
    cv2.circle(img, center, radius, color, -1, cv2.LINE_AA)
    return img


def test_hair_pixels_are_removed():
    img = _skin()
    hair = np.zeros(img.shape[:2], np.uint8)
    cv2.line(hair, (10, 20), (250, 180), 255, 2)
    cv2.line(hair, (30, 190), (200, 5), 255, 1)
    img[hair > 0] = (25, 20, 15)
    mask = hair_mask(img, 0.04, 10)
    assert (mask[hair > 0] > 0).mean() > 0.95  # the black-hat finds the hair
    clean = remove_hair(img, 0.04, 10, 3)
    diff = np.abs(clean[hair > 0].astype(int) - np.array(SKIN)).mean()
    assert diff < 15, f"hair pixels still {diff:.1f} grey levels from skin"
    assert np.abs(clean[hair == 0].astype(int) - img[hair == 0]).mean() < 1.0  # skin left alone


def test_hair_removal_keeps_the_lesion():
    img = _lesion(_skin(), (130, 100), 45)
    clean = remove_hair(img, 0.04, 10, 3)
    assert np.abs(clean[80:120, 110:150].astype(int) - img[80:120, 110:150]).mean() < 2


def test_lesion_is_found_and_centred():
    img = _lesion(_skin(), (190, 60), 30)  # off-centre, top right
    x0, y0, x1, y1 = lesion_box(img)
    assert abs((x0 + x1) / 2 - 190) <= 3 and abs((y0 + y1) / 2 - 60) <= 3
    out = preprocess_image(img, PrepConfig(size=64, hair_removal=False))
    assert out.shape == (64, 64, 3)
    dark = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) < 150
    ys, xs = np.nonzero(dark)
    assert abs(xs.mean() - 31.5) < 4 and abs(ys.mean() - 31.5) < 4
    assert 0.1 < dark.mean() < 0.6  # lesion fills the crop with a margin around it


def test_vignette_is_not_taken_for_the_lesion():
    img = _lesion(_skin(), (130, 100), 25)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    img[((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 > 1.0] = 0
    x0, y0, x1, y1 = lesion_box(img)
    assert x1 - x0 < 70 and y1 - y0 < 70


def test_no_lesion_falls_back_to_central_square():
    img = _skin()
    crop = center_crop(img, lesion_box(img), 0.25)
    assert crop.shape[:2] == (200, 200)


def test_preprocessing_is_deterministic_and_switchable():
    img = _lesion(_skin(seed=4), (100, 120), 40)
    cv2.line(img, (0, 0), (259, 199), (20, 20, 20), 2)
    a = preprocess_image(img, PrepConfig(size=48))
    b = preprocess_image(img.copy(), PrepConfig(size=48))
    assert np.array_equal(a, b)
    plain = preprocess_image(img, PrepConfig(size=48, hair_removal=False, center=False))
    assert plain.shape == (48, 48, 3) and not np.array_equal(a, plain)


def test_working_resolution_leaves_small_images_as_they_were():
    # the demo's images are no larger than the working side: preprocessing them is unchanged
    img = _lesion(_skin(seed=5), (120, 90), 35)
    assert np.array_equal(preprocess_image(img, PrepConfig(size=64, work_scale=4)),  # works at 256 >= 200
                          preprocess_image(img, PrepConfig(size=64, work_scale=0)))
    assert not np.array_equal(preprocess_image(img, PrepConfig(size=64, work_scale=1)),
                              preprocess_image(img, PrepConfig(size=64, work_scale=0)))
    assert to_working(img, 400) is img
    assert to_working(img, 100).shape == (100, 130, 3)  # area-shrunk, aspect kept, never enlarged


def test_hair_removal_scored_against_phantoms_without_hair():
    # every hair pixel is known on the phantoms; the score is what reports/preprocess/summary.json shows
    on = score_hair_removal(PrepConfig(size=64, work_scale=4), n=6, size=(400, 300))
    off = score_hair_removal(PrepConfig(size=64, hair_removal=False), n=6, size=(400, 300))
    assert on["hair_pixels"] == off["hair_pixels"] > 100
    assert off["removed"] < 0.05
    assert on["removed"] >= 0.9 and on["removed_over_lesion"] >= 0.9
    assert on["lesion_error"] < on["lesion_error_without_removal"]


def test_phantom_truth_uses_the_same_random_draws():
    # the versioned demo files come from `render`; asking for the hairless twin must not change them
    lesion = sample_lesion("malignant", np.random.default_rng(0))
    plain = render(lesion, STYLES["ham10000"], 160, 120, np.random.default_rng(1))
    hairy, truth = render_with_truth(lesion, STYLES["ham10000"], 160, 120, np.random.default_rng(1))
    assert np.array_equal(plain, hairy)
    assert truth.hairless.shape == hairy.shape and truth.lesion.any()
    assert (hairy[truth.hair].astype(int).sum(1) < truth.hairless[truth.hair].astype(int).sum(1)).all()
