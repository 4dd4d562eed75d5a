"""Canonical alignment: eyes land on the template, roll is removed, margin widens the view."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from duchenne.face.align import AlignConfig, align_face, alignment_matrix, crop_as_aligned


def _apply(m: np.ndarray, p) -> np.ndarray:
    return m[:, :2] @ np.asarray(p, float) + m[:, 2]


@pytest.mark.parametrize("angle_deg", [0, 15, -30, 90])
@pytest.mark.parametrize("iod", [8.0, 60.0, 400.0])
def test_eyes_map_to_template(angle_deg: float, iod: float) -> None:
    cfg = AlignConfig(size=48)
    a = np.radians(angle_deg)
    right = np.array([300.0, 200.0])
    left = right + iod * np.array([np.cos(a), np.sin(a)])
    m = alignment_matrix(right, left, cfg)
    r, lft = _apply(m, right), _apply(m, left)
    assert np.allclose(r[1], lft[1], atol=1e-6)  # level eye line
    assert np.isclose(lft[0] - r[0], cfg.iod_fraction * cfg.size)
    assert np.allclose((r + lft) / 2, [24.0, cfg.eye_y * 48], atol=1e-6)


def test_margin_shrinks_face_around_centre() -> None:
    right, left = np.array([100.0, 100.0]), np.array([150.0, 100.0])
    tight = alignment_matrix(right, left, AlignConfig(size=64))
    wide = alignment_matrix(right, left, AlignConfig(size=64, margin=0.5))
    iod = lambda m: _apply(m, left)[0] - _apply(m, right)[0]  # noqa: E731
    assert iod(wide) == pytest.approx(iod(tight) / 1.5)


def test_align_face_pixels_follow_geometry() -> None:
    # a white dot at each eye must appear at the template eye positions
    img = np.zeros((400, 400, 3), np.uint8)
    img[148:153, 98:103] = 255
    img[148:153, 198:203] = 255
    crop = align_face(
        img, (np.array([100.0, 150.0]), np.array([200.0, 150.0])), AlignConfig(size=100)
    )
    gray = crop[..., 0].astype(float)
    ys, xs = np.nonzero(gray > 40)
    assert abs(ys.mean() - 33) < 1.5
    assert xs[xs < 50].mean() == pytest.approx(32, abs=1.5)
    assert xs[xs >= 50].mean() == pytest.approx(68, abs=1.5)
    assert crop.shape == (100, 100, 3)


def test_big_face_downscale_is_antialiased() -> None:
    # a fine checkerboard must average to grey, not alias into stripes
    yy, xx = np.mgrid[0:2000, 0:2000]
    board = (((yy + xx) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[..., None], 3, axis=2)
    crop = align_face(
        img, (np.array([700.0, 800.0]), np.array([1300.0, 800.0])), AlignConfig(size=48)
    )
    assert abs(crop.mean() - 127.5) < 10 and crop.std() < 20


def test_crop_as_aligned_centre_square() -> None:
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 20:80] = 200
    out = crop_as_aligned(img, AlignConfig(size=30))
    assert out.shape == (30, 30, 3) and out.min() == 200


def test_crop_as_aligned_reframes_a_canonical_crop_for_a_closer_framing() -> None:
    """A head crop in the canonical framing, given to a model of a closer framing, is cut
    as that model's crops are cut from the whole photo (same eyes, same geometry)."""
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8), (0, 0), 3)
    eyes = (np.array([160.0, 170.0]), np.array([236.0, 168.0]))
    head = align_face(photo, eyes, AlignConfig(size=240))  # what crop mode is given
    lower = AlignConfig(size=48, iod_fraction=0.52, eye_y=0.10)
    direct = align_face(photo, eyes, lower).astype(float)
    reframed = crop_as_aligned(head, lower).astype(float)
    assert reframed.shape == direct.shape == (48, 48, 3)
    assert np.abs(reframed - direct).mean() < 3.0
    plain = cv2.resize(head, (48, 48), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(plain - direct).mean() > 4 * np.abs(reframed - direct).mean()
