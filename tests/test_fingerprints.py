"""The three image fingerprints and the exact pHash radius search (datamix/fingerprints.py)."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image

from datamix.fingerprints import (PhashIndex, canonical_pixels, fingerprint_bytes, fingerprint_file, hamming, phash,
                                  phash_of_32x32, pixel_digest)

MAX_PIXELS = 10_000_000


def photo(seed: int, size=(320, 240)) -> Image.Image:
    """Smooth structure plus noise: pHash behaves on it as on a photograph (flat noise would not)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    waves = [np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y + rng.uniform())) for _ in range(3)]
    rgb = np.stack(waves, axis=-1) * 100 + 128 + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def encoded(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def fingerprint(data: bytes):
    result = fingerprint_bytes(data, "x", MAX_PIXELS)
    assert not isinstance(result, str), result
    return result


def test_phash_is_imagehash_phash_of_the_same_32x32_image():
    for seed in range(20):
        gray = photo(seed).convert("L").resize((32, 32), Image.Resampling.LANCZOS)
        assert phash_of_32x32(np.asarray(gray, dtype=np.float64)) == int(str(imagehash.phash(gray)), 16)


def test_bytes_tier_is_the_file_and_pixels_tier_survives_a_lossless_reencode():
    img = photo(1)
    png = fingerprint(encoded(img, "PNG"))
    webp = fingerprint(encoded(img, "WEBP", lossless=True))
    png_again = fingerprint(encoded(img, "PNG", compress_level=1))
    assert png.sha256 != webp.sha256 and png.sha256 != png_again.sha256
    assert png.pixels == webp.pixels == png_again.pixels
    assert png.phash == webp.phash


def test_pixels_tier_ignores_metadata_and_storage_mode_but_not_one_changed_pixel():
    img = photo(2)
    jpeg = encoded(img, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x010F] = "camera"
    with_exif = encoded(Image.open(io.BytesIO(jpeg)), "JPEG", quality=90, exif=exif.tobytes())
    gray = img.convert("L")
    as_rgb_png = encoded(gray.convert("RGB"), "PNG")
    opaque_rgba = encoded(img.convert("RGBA"), "PNG")
    changed = img.copy()
    changed.putpixel((5, 5), (0, 0, 0))

    assert fingerprint(with_exif).sha256 != fingerprint(jpeg).sha256
    assert fingerprint(encoded(Image.open(io.BytesIO(jpeg)).convert("RGB"), "PNG")).pixels == fingerprint(jpeg).pixels
    assert fingerprint(encoded(gray, "PNG")).pixels == fingerprint(as_rgb_png).pixels
    assert fingerprint(opaque_rgba).pixels == fingerprint(encoded(img, "PNG")).pixels
    assert fingerprint(encoded(changed, "PNG")).pixels != fingerprint(encoded(img, "PNG")).pixels


def test_transparency_is_part_of_the_pixels():
    img = photo(3).convert("RGBA")
    clear = img.copy()
    clear.putalpha(0)
    assert canonical_pixels(clear).mode == "RGBA"
    assert pixel_digest(canonical_pixels(clear)) != pixel_digest(canonical_pixels(img))


def test_phash_is_close_for_resized_and_recompressed_copies_and_far_for_other_images():
    img = photo(4, (640, 480))
    base = fingerprint(encoded(img, "JPEG", quality=95)).phash
    copies = [img.resize((320, 240), Image.Resampling.BICUBIC), img.resize((1024, 768)),
              Image.open(io.BytesIO(encoded(img, "JPEG", quality=40)))]
    for copy in copies:
        assert hamming(np.uint64(base), np.uint64(phash(copy))) <= 4
    others = [fingerprint(encoded(photo(seed, (640, 480)), "JPEG")).phash for seed in range(10, 20)]
    assert min(int(hamming(np.uint64(base), np.uint64(o))) for o in others) > 10


def test_fingerprint_file_reads_only_inside_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.png").write_bytes(encoded(photo(5), "PNG"))
    (root / "bad.jpg").write_bytes(b"not an image")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    assert fingerprint_file(root, "../outside.png", MAX_PIXELS).startswith("path_outside_root")
    assert fingerprint_file(root, "link.png", MAX_PIXELS).startswith("path_outside_root")
    assert fingerprint_file(root, "missing.png", MAX_PIXELS).startswith("missing_image")
    assert fingerprint_file(root, "bad.jpg", MAX_PIXELS).startswith("undecodable_image")
    assert fingerprint_file(None, "x.png", MAX_PIXELS).startswith("no_image_root")
    (root / "ok.png").write_bytes(encoded(photo(5), "PNG"))
    assert fingerprint_file(root, "ok.png", 100).startswith("decompression_bomb")
    assert fingerprint_file(root, "ok.png", MAX_PIXELS).pixels == fingerprint(encoded(photo(5), "PNG")).pixels


def brute_force(queries: np.ndarray, refs: np.ndarray, d: int) -> list[tuple[int, int, int]]:
    dist = hamming(queries[:, None], refs[None, :])
    q, r = np.nonzero(dist <= d)
    return sorted((int(a), int(dist[a, b]), int(b)) for a, b in zip(q, r))


@pytest.mark.parametrize("max_distance", [0, 1, 4, 7, 8, 12, 17])
def test_phash_index_finds_exactly_the_pairs_brute_force_finds(max_distance):
    rng = np.random.default_rng(max_distance)
    refs = rng.integers(0, 2**64, size=400, dtype=np.uint64)
    # Planted neighbours at every distance around the threshold, plus unrelated hashes and exact repeats.
    planted = []
    for k in range(0, 20):
        bits = rng.choice(64, size=k, replace=False)
        planted.append(refs[k] ^ np.uint64(sum(1 << int(b) for b in bits)))
    queries = np.concatenate([np.array(planted, dtype=np.uint64), rng.integers(0, 2**64, size=300, dtype=np.uint64),
                              refs[:5]])
    index = PhashIndex(refs, max_distance)
    index.QUERY_CHUNK = 64  # several chunks, so offsets are exercised
    q, r, d = index.pairs(queries)
    assert sorted(zip(q.tolist(), d.tolist(), r.tolist())) == brute_force(queries, refs, max_distance)
    assert list(zip(q.tolist(), d.tolist(), r.tolist())) == sorted(zip(q.tolist(), d.tolist(), r.tolist()))


def test_phash_index_edges():
    assert all(len(a) == 0 for a in PhashIndex(np.array([], dtype=np.uint64), 4).pairs(np.array([1], np.uint64)))
    assert all(len(a) == 0 for a in PhashIndex(np.array([1], dtype=np.uint64), 4).pairs(np.array([], np.uint64)))
    top = np.array([2**64 - 1], dtype=np.uint64)
    assert PhashIndex(top, 0).pairs(top)[2].tolist() == [0]
    with pytest.raises(ValueError):
        PhashIndex(top, 64)


def test_a_flat_image_hashes_to_zero_whatever_its_grey_or_size():
    for value, size in ((1, (10, 10)), (128, (64, 48)), (255, (300, 200))):
        assert phash(Image.new("L", size, value)) == 0
    assert phash(photo(9)) != 0
