"""What "the same image" means for decontamination and dedup: three fingerprints of one file, from one decode.

| tier   | fingerprint                                            | catches                                    |
|--------|--------------------------------------------------------|--------------------------------------------|
| bytes  | sha256 of the file                                     | the same file under another name           |
| pixels | xxh3-128 of the decoded pixels (mode, size, raw bytes) | a lossless re-encode, stripped metadata    |
| phash  | 64-bit perceptual hash (DCT of a 32x32 grayscale)      | resized and recompressed copies            |

The pixels are canonicalised before hashing (RGB, or RGBA when some pixel is not opaque), so a grayscale JPEG
and the same pixels saved as an RGB PNG match. EXIF orientation is not applied, as everywhere in datamix.

The perceptual hash is imagehash's `phash` (hash_size 8, highfreq_factor 4): the image in grayscale, resized to
32x32 with Lanczos, a 2-D DCT-II, its 8x8 lowest frequencies compared with their median, first bit most
significant (so `int(str(imagehash.phash(img)), 16)` is the same number for the same 32x32 input, tested).
Two things differ, both for speed and both applied to every image alike, training and evaluation:
the resize uses Pillow's `reducing_gap=2.0` (an integer box reduction first: 0.09 ms instead of 0.86 ms for a
640x480 photo), and the DCT is a matrix product in numpy instead of scipy's FFT (0.03 ms instead of 0.5 ms).
The hash depends on Pillow's resampling, so the versions it was made with are recorded (FINGERPRINT_VERSIONS).
A flat image (one grey level at 32x32: blank placeholders, solid colours) hashes to 0 instead of to the
rounding noise of its DCT, so its hash is the same on every machine; flat images then match each other.

`PhashIndex` answers "which reference hashes lie within Hamming distance d of this one" exactly, with
multi-index hashing: the 64 bits are cut into m bands, and two hashes within d differ in at most d // m bits of
some band (pigeonhole), so only references sharing a band value (or one within d // m bits) are compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
import xxhash
from PIL import Image

from datamix.images import decode_image, read_image_file

PHASH_SIDE = 32  # imagehash: hash_size 8 * highfreq_factor 4
PHASH_BITS = 64
_DCT = 2.0 * np.cos(np.pi * np.arange(PHASH_SIDE)[:, None] * (2 * np.arange(PHASH_SIDE)[None, :] + 1)
                    / (2 * PHASH_SIDE))  # scipy.fftpack.dct type II, unnormalised, as a matrix
_BIT_WEIGHTS = (1 << np.arange(PHASH_BITS - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _versions() -> dict:
    import PIL

    return {"fingerprint": 2, "pillow": PIL.__version__, "numpy": np.__version__, "xxhash": xxhash.VERSION}


FINGERPRINT_VERSIONS = _versions()


@dataclass(frozen=True)
class Fingerprint:
    sha256: bytes  # of the file's bytes (32 bytes)
    pixels: bytes  # 16-byte digest of the decoded pixels (mode, size, raw bytes): a lossless re-encode matches
    phash: int  # 64-bit perceptual hash as an unsigned int


def fingerprint_bytes(data: bytes, relative: str, max_pixels: int) -> Fingerprint | str:
    """The three fingerprints of one file's bytes, or why it cannot be decoded (a reason string)."""
    img = decode_image(data, relative, max_pixels)
    if isinstance(img, str):
        return img
    try:
        with img:
            canonical = canonical_pixels(img)
            return Fingerprint(hashlib.sha256(data).digest(), pixel_digest(canonical), phash(canonical))
    except Exception as exc:  # a bad file is a reason, never a crash
        return f"image_error: {relative}: {type(exc).__name__}: {exc}"


def fingerprint_file(root: str | Path | None, relative: str, max_pixels: int) -> Fingerprint | str:
    """Fingerprints of the image `relative` under `root`; reads nothing outside the root."""
    if root is None:
        return "no_image_root: the source has images but no image_root is given"
    try:
        data = read_image_file(root, relative)
    except OSError as exc:
        return f"image_error: {relative}: {type(exc).__name__}: {exc}"
    return data if isinstance(data, str) else fingerprint_bytes(data, relative, max_pixels)


def fingerprint_job(args: tuple[str | None, str, int]) -> Fingerprint | str:
    """Picklable form for `Mapper.imap`: (image root, relative path, max pixels)."""
    return fingerprint_file(*args)


def fingerprint_bytes_job(args: tuple[bytes, str, int]) -> Fingerprint | str:
    """Picklable form for `Mapper.imap` over bytes already read (a mix's tar members): (data, path, max pixels)."""
    return fingerprint_bytes(*args)


def canonical_pixels(img: Image.Image) -> Image.Image:
    """RGB, or RGBA when some pixel is not fully opaque: the same pixels whatever mode the file stored them in."""
    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    return rgba.convert("RGB") if rgba.getchannel("A").getextrema() == (255, 255) else rgba


def pixel_digest(img: Image.Image) -> bytes:
    digest = xxhash.xxh3_128(f"{img.mode}:{img.width}x{img.height}:".encode())
    digest.update(img.tobytes())
    return digest.digest()


def phash(img: Image.Image) -> int:
    gray = img.convert("L").resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return phash_of_32x32(np.asarray(gray, dtype=np.float64))


def phash_of_32x32(pixels: np.ndarray) -> int:
    if np.ptp(pixels) < 1:  # one grey level: the DCT's AC terms are rounding noise, and so would the bits be
        return 0
    low = (_DCT @ pixels @ _DCT.T)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int(np.sum(_BIT_WEIGHTS[bits], dtype=np.uint64))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise distance of uint64 hashes (broadcasting like `a ^ b`)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


class PhashIndex:
    """Exact radius search over 64-bit hashes: every (query, reference) pair within `max_distance` bits."""

    QUERY_CHUNK = 1 << 14  # queries per step: bounds the candidate arrays

    def __init__(self, hashes: np.ndarray, max_distance: int):
        if not 0 <= max_distance < PHASH_BITS:
            raise ValueError(f"max_distance must be between 0 and {PHASH_BITS - 1}, not {max_distance}")
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.max_distance = max_distance
        self.bands, self.radius = best_bands(max_distance, len(self.hashes))
        self._tables = [_BandTable(_band(self.hashes, shift, width), width) for shift, width in self.bands]
        self._flips = [_flip_masks(width, self.radius) for _, width in self.bands]

    def pairs(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, reference row, distance) of every pair within max_distance, by (query, distance, ref)."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        parts = [self._pairs_of_chunk(queries[i:i + self.QUERY_CHUNK], i)
                 for i in range(0, len(queries), self.QUERY_CHUNK)]
        if not parts or self.hashes.size == 0:
            return _empty_pairs()
        q, r, d = (np.concatenate(column) for column in zip(*parts))
        order = np.lexsort((r, d, q))
        return q[order], r[order], d[order]

    def _pairs_of_chunk(self, queries: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found_q, found_r = [], []
        for (shift, width), table, flips in zip(self.bands, self._tables, self._flips):
            band = _band(queries, shift, width)
            for flip in flips:
                q, r = table.lookup(band ^ flip)
                close = hamming(queries[q], self.hashes[r]) <= self.max_distance  # few survive: filter first
                found_q.append(q[close])
                found_r.append(r[close])
        if not found_q:
            return _empty_pairs()
        # A pair close in several bands was found once per band: keep it once.
        keys = np.unique(np.concatenate(found_q) * np.int64(len(self.hashes)) + np.concatenate(found_r))
        q, r = keys // len(self.hashes), keys % len(self.hashes)
        return q + offset, r, hamming(queries[q], self.hashes[r]).astype(np.int64)


def best_bands(max_distance: int, references: int) -> tuple[list[tuple[int, int]], int]:
    """(shift, width) of each band and the per-band radius, for the cheapest exact search.

    With m bands, a pair within d bits is within d // m bits in some band. A query then looks up
    C(width, <= radius) band values per band and compares about references / 2**width hashes per value;
    the m that minimises lookups + comparisons wins (e.g. d=4: 5 bands of 13 bits, radius 0;
    d=8 against 50K: 5 bands, radius 1).
    """
    def cost(m: int) -> float:
        width, radius = PHASH_BITS // m, max_distance // m
        lookups = m * sum(comb(width, k) for k in range(radius + 1))
        return lookups * (1 + references / 2 ** width)

    m = min(range(1, min(max_distance + 1, 16) + 1), key=lambda k: (cost(k), k))
    edges = np.linspace(0, PHASH_BITS, m + 1).round().astype(int)
    return [(int(lo), int(hi - lo)) for lo, hi in zip(edges[:-1], edges[1:])], max_distance // m


class _BandTable:
    """The references grouped by one band's value: a direct-address table (CSR) for narrow bands, sorted
    values and binary search for wide ones."""

    DIRECT_MAX_WIDTH = 22  # 4M offsets at most (16 MiB)

    def __init__(self, values: np.ndarray, width: int):
        self.order = np.argsort(values, kind="stable")
        self.direct = width <= self.DIRECT_MAX_WIDTH
        if self.direct:
            self.offsets = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(values, minlength=1 << width), out=self.offsets[1:])
        else:
            self.values = values[self.order]

    def lookup(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into `wanted`, reference row) of every reference whose band value is wanted."""
        if self.direct:
            lo, hi = self.offsets[wanted], self.offsets[wanted + 1]
        else:
            lo = np.searchsorted(self.values, wanted, side="left")
            hi = np.searchsorted(self.values, wanted, side="right")
        counts = hi - lo
        which = np.repeat(np.arange(len(wanted), dtype=np.int64), counts)
        starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        return which, self.order[np.arange(len(which), dtype=np.int64) + starts]


def _band(hashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    return ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every value with at most `radius` of `width` bits set: XOR-ed onto a band, its neighbours."""
    masks = [sum(1 << b for b in bits) for k in range(radius + 1) for bits in combinations(range(width), k)]
    return np.asarray(masks, dtype=np.int64)


def _empty_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = np.empty(0, dtype=np.int64)
    return empty, empty, empty
