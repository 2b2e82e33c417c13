"""Verify every image before it goes into a shard, and normalise the few formats readers choke on.

LLaVA's loader opens each image with PIL and calls `.convert("RGB")`, but a shard is also read by
webdataset decoders, torchvision, browsers and quick `tar xf` checks. So the policy is:

* Open by content, never by extension: OCR-VQA saves GIFs and PNGs under `.jpg` names.
* Decode every image fully once (`load()`). A file that fails is rejected with a reason code, never
  padded: we do not set `ImageFile.LOAD_TRUNCATED_IMAGES`, so truncated files become `truncated_image`.
* Check width*height against `max_pixels` from the header, before any pixel is decoded.
* Keep the original bytes whenever every common reader decodes them: 8-bit JPEG (RGB, L), 8-bit PNG
  (RGB, RGBA, L, LA) and WebP. Anything else is re-encoded once, deterministically, with the fixed
  parameters below (same input bytes, same output bytes):

  | input                          | output                               | `reencoded`        |
  |--------------------------------|--------------------------------------|--------------------|
  | GIF (any name), frame 0        | RGB JPEG, transparency on white      | `gif->jpg`         |
  | CMYK / YCCK JPEG               | RGB JPEG                             | `cmyk->jpg`        |
  | palette PNG                    | RGB PNG (RGBA if it has transparency)| `palette->png`     |
  | 16-bit (or 1/2/4-bit) PNG      | 8-bit PNG (high byte kept)           | `16bit->png` ...   |
  | BMP, TIFF, other JPEG/PNG modes| 8-bit PNG                            | `bmp->png` ...     |

* EXIF orientation is recorded (meta `exif_orientation`), never applied: boxes (RefCOCO, VG, GQA) live
  in raw pixel space.
  Re-encoded files carry no metadata (EXIF, ICC); PIL's `convert("RGB")` ignores ICC too.

Every failure is a reason string `code: detail`; no exception escapes `verify_image`, because one
bad file must never crash a build. Functions are top-level and pure so a process pool can call them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (Image.MAX_IMAGE_PIXELS)

# Formats we let Pillow identify. A closed list keeps exotic plugins away from untrusted files
# (EPS, for instance, would run Ghostscript); anything else is `undecodable_image`.
# (The JPEG plugin itself returns multi-picture JPEGs as format "MPO".)
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM")
KEPT_PNG_MODES = ("RGB", "RGBA", "L", "LA")
JPEG_PARAMS = {"quality": 95, "subsampling": 0, "optimize": False, "progressive": False}  # 4:4:4 keeps text sharp
PNG_PARAMS = {"compress_level": 6, "optimize": False}
_HIGH_BYTE = [v >> 8 for v in range(65536)]  # 16-bit -> 8-bit lookup: keep the high byte (scale, not clip)
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True, slots=True)
class VerifiedImage:
    data: bytes  # bytes to store in the shard
    ext: str  # "jpg" | "png" | "webp": the real format of `data`, used as the tar member extension
    width: int
    height: int
    source_format: str  # what Pillow detected in the original file ("JPEG", "GIF", "PNG", ...)
    mode: str  # Pillow mode of the original ("RGB", "L", "CMYK", "P", "I;16", ...)
    reencoded: str | None  # None when the original bytes are kept, else e.g. "gif->jpg"
    exif_orientation: int | None  # recorded in the sample's meta, never applied
    original_digest: bytes = b""  # blake2b-128 of the file as read: the shard writer checks it is unchanged


def content_type(data: bytes) -> str | None:
    """MIME type from magic bytes (None if unknown); a cheap check that an extension tells the truth."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM"):
        return "image/bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    return None


@functools.lru_cache(maxsize=4096)
def _real_dir(path: str) -> str:
    """realpath of a folder, cached: a dataset has few folders and millions of files, and realpath costs
    one lstat per path component (a quarter of a build's time before this cache)."""
    return os.path.realpath(path)


def resolve_image(root: str | Path, relative: str) -> Path | str:
    """The real path of `relative` under `root`, or `path_outside_root` if it (or a symlink) escapes."""
    # String tests, not PurePosixPath/PureWindowsPath (three path parses per image were a tenth of a build):
    # POSIX or Windows root, UNC, or a drive (`c:`, which PureWindowsPath takes from any `X:` start).
    if relative.startswith(("/", "\\")) or relative[1:2] == ":":
        return f"path_outside_root: {relative!r} is absolute"
    if "\x00" in relative:
        return f"image_error: {relative!r}: NUL byte in the path"
    base = _real_dir(str(root))
    joined = os.path.join(base, relative)
    folder, name = os.path.split(joined)
    try:
        if name in ("", ".", ".."):
            target = os.path.realpath(joined)
        else:
            # The folder's symlinks and `..` are resolved (cached); then the file itself, if it is a link.
            target = os.path.join(_real_dir(folder), name)
            if os.path.islink(target):
                target = os.path.realpath(target)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"missing_image: {relative!r} cannot be resolved ({exc})"
    if target != base and not target.startswith(base.rstrip(os.sep) + os.sep):
        return f"path_outside_root: {relative!r} resolves outside the image root"
    return Path(target)


def verify_image(root: str | Path, relative: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> VerifiedImage | str:
    """Read, fully decode and (if needed) re-encode one image; a reason string when it cannot be used."""
    try:
        data = read_image_file(root, relative)
        if isinstance(data, str):
            return data
        verdict = _verify_bytes(data, relative, max_pixels)
        if isinstance(verdict, VerifiedImage):
            verdict = dataclasses.replace(verdict, original_digest=file_digest(data))
        return verdict
    except Exception as exc:  # last line of defence: a bad file is a reason, not a crash
        return f"image_error: {relative}: {type(exc).__name__}: {exc}"


def read_regular_file(path: Path) -> bytes | str | None:
    """The bytes of a regular file; None if there is none, "not_a_file" for anything else (never read)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return "not_a_file"
    with open(path, "rb") as f:
        return f.read()


def file_digest(data: bytes) -> bytes:
    """What "the same file" means between verifying an image and writing it: 128 bits of blake2b."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _verify_bytes(data: bytes, relative: str, max_pixels: int) -> VerifiedImage | str:
    img = decode_image(data, relative, max_pixels)
    if isinstance(img, str):
        return img
    with img:
        out, ext, note = _normalise(img, data)
        return VerifiedImage(data=out, ext=ext, width=img.width, height=img.height, source_format=img.format,
                             mode=img.mode, reencoded=note, exif_orientation=_orientation(img))


def decode_image(data: bytes, relative: str, max_pixels: int) -> Image.Image | str:
    """The one full decode of a file's bytes (frame 0 of an animation), or the reason it fails.

    Only the formats in ALLOWED_FORMATS are tried, and width*height is checked from the header before any
    pixel is decoded. The caller closes the image.
    """
    with warnings.catch_warnings():
        # Our own max_pixels check replaces Pillow's warning; its hard error (2x its limit) still fires.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            kind = content_type(data) or "not a supported image"
            return f"undecodable_image: {relative}: cannot identify image ({kind})"
        except Image.DecompressionBombError as exc:
            return f"decompression_bomb: {relative}: {exc}"
        except Exception as exc:  # a header cut short raises here, before load()
            return _decode_error(relative, exc)
        width, height = img.size
        if width * height > max_pixels:  # header only: no pixel has been decoded yet
            img.close()
            return f"decompression_bomb: {relative}: {width}x{height} exceeds {max_pixels} pixels"
        try:
            img.load()
        except Image.DecompressionBombError as exc:
            img.close()
            return f"decompression_bomb: {relative}: {exc}"
        except Exception as exc:
            img.close()
            return _decode_error(relative, exc)
        return img


def read_image_file(root: str | Path, relative: str) -> bytes | str:
    """The bytes of an image file inside `root`, or the reason code it cannot be read (never a path outside)."""
    path = resolve_image(root, relative)
    if isinstance(path, str):
        return path
    data = read_regular_file(path)
    if data is None:
        return f"missing_image: {relative}"
    if isinstance(data, str):  # a directory, a FIFO, /dev/zero behind a symlink: never read it
        return f"not_a_file: {relative}"
    if not data:
        return f"empty_image: {relative}"
    return data


def _decode_error(relative: str, exc: Exception) -> str:
    """Pillow says "image file is truncated" or "Truncated File Read" depending on where the bytes ran out."""
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        return f"truncated_image: {relative}: {exc}"
    return f"image_error: {relative}: {type(exc).__name__}: {exc}"


def _normalise(img: Image.Image, data: bytes) -> tuple[bytes, str, str | None]:
    """(bytes, ext, note): the original bytes when readers cope with them, else a deterministic re-encode."""
    fmt, mode = img.format, img.mode
    if fmt == "GIF":
        return _encode(_on_white(img), "JPEG"), "jpg", "gif->jpg"
    if fmt in ("JPEG", "MPO"):  # MPO is a JPEG with extra frames appended; JPEG readers take the first
        if mode in ("RGB", "L"):
            return data, "jpg", None
        if mode == "CMYK":  # Pillow reads YCCK as CMYK too
            return _encode(_fresh(img.convert("RGB")), "JPEG"), "jpg", "cmyk->jpg"
    if fmt == "WEBP":
        return data, "webp", None
    if fmt == "PNG":
        depth = data[24]  # IHDR bit depth: Pillow reports 16-bit RGB(A) as plain "RGB"/"RGBA"
        if mode in KEPT_PNG_MODES and depth == 8:
            return data, "png", None
        note = "palette->png" if mode == "P" else f"{depth}bit->png" if depth != 8 else f"{mode.lower()}->png"
        return _encode(_to_8bit(img), "PNG"), "png", note
    return _encode(_to_8bit(img), "PNG"), "png", f"{fmt.lower()}->png"


def _to_8bit(img: Image.Image) -> Image.Image:
    """An RGB, RGBA, L or LA copy without metadata, ready for PNG."""
    if img.mode in _SIXTEEN_BIT_MODES:
        # convert("L") would clip every value above 255 to white; scale by keeping the high byte.
        return _fresh(img.convert("I").point(_HIGH_BYTE, "L"))
    if img.mode in KEPT_PNG_MODES:
        return _fresh(img.copy())
    if img.mode == "1":
        return _fresh(img.convert("L"))
    has_alpha = "transparency" in img.info or img.mode in ("PA", "La", "RGBa")
    return _fresh(img.convert("RGBA" if has_alpha else "RGB"))


def _on_white(img: Image.Image) -> Image.Image:
    """Frame 0 composited on white: the JPEG has no alpha, and black behind transparency hides text."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return _fresh(Image.alpha_composite(white, rgba).convert("RGB"))


def _fresh(img: Image.Image) -> Image.Image:
    # Drop inherited info (ICC profile of the CMYK original, GIF palette transparency, EXIF) so the
    # encoder writes only pixels; the output then depends on the pixels and the fixed parameters alone.
    img.info = {}
    return img


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **(JPEG_PARAMS if fmt == "JPEG" else PNG_PARAMS))
    return buf.getvalue()


def _orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # malformed EXIF must not reject an image whose pixels decode fine
        return None
    return value if isinstance(value, int) else None
