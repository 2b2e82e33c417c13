"""verify_image: which bytes are kept, which are re-encoded, and which files are rejected with which reason.

Every fixture is generated here with Pillow; nothing is downloaded.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import struct
import zlib

import pytest
from PIL import Image

from datamix.images import DEFAULT_MAX_PIXELS, VerifiedImage, content_type, resolve_image, verify_image

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _gradient(mode: str = "RGB", size=(32, 24)) -> Image.Image:
    """A non-flat image, so a re-encode or a wrong decode shows up in the pixels."""
    img = Image.new("RGB", size)
    img.putdata([(x * 8 % 256, y * 10 % 256, (x + y) * 4 % 256) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


def _save(path, img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _ok(root, name, **kw) -> VerifiedImage:
    result = verify_image(root, name, **kw)
    assert isinstance(result, VerifiedImage), result
    assert content_type(result.data) == {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[result.ext]
    return result


def _decode(result: VerifiedImage) -> Image.Image:
    img = Image.open(io.BytesIO(result.data))
    img.load()
    return img


def _code(reason) -> str:
    assert isinstance(reason, str), reason
    return reason.split(":", 1)[0]


# ------------------------------------------------------------------ kept byte-identical

@pytest.mark.parametrize("name, mode, fmt, ext", [
    ("rgb.jpg", "RGB", "JPEG", "jpg"),
    ("gray.jpg", "L", "JPEG", "jpg"),
    ("rgba.png", "RGBA", "PNG", "png"),
    ("pic.webp", "RGB", "WEBP", "webp"),
    ("really_png.jpg", "RGB", "PNG", "png"),  # wrong extension: ext follows the content
])
def test_kept_formats_are_byte_identical(tmp_path, name, mode, fmt, ext):
    img = _gradient(mode)
    if mode == "RGBA":
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    original = _save(tmp_path / name, img, fmt)
    result = _ok(tmp_path, name)
    assert result.data == original
    assert (result.ext, result.source_format, result.mode, result.reencoded) == (ext, fmt, mode, None)
    assert (result.width, result.height) == (32, 24)


def test_exif_orientation_is_recorded_not_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    original = _save(tmp_path / "rot.jpg", _gradient("RGB", (40, 20)), "JPEG", exif=exif)
    result = _ok(tmp_path, "rot.jpg")
    assert result.exif_orientation == 6
    assert result.data == original and result.reencoded is None
    assert (result.width, result.height) == (40, 20)  # not swapped: boxes stay in raw pixel space
    assert _ok(tmp_path, "rot.jpg").exif_orientation == 6
    _save(tmp_path / "plain.jpg", _gradient(), "JPEG")
    assert _ok(tmp_path, "plain.jpg").exif_orientation is None


# ------------------------------------------------------------------ re-encoded

def test_cmyk_jpeg_becomes_rgb_jpeg(tmp_path):
    _save(tmp_path / "cmyk.jpg", Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG")  # pure red ink
    result = _ok(tmp_path, "cmyk.jpg")
    assert (result.ext, result.mode, result.reencoded) == ("jpg", "CMYK", "cmyk->jpg")
    img = _decode(result)
    assert img.mode == "RGB" and img.size == (32, 24)
    r, g, b = img.getpixel((16, 12))
    assert r > 240 and g < 15 and b < 15


def test_palette_png_becomes_rgb_png(tmp_path):
    _save(tmp_path / "pal.png", _gradient().convert("P"), "PNG")
    result = _ok(tmp_path, "pal.png")
    assert (result.ext, result.mode, result.reencoded) == ("png", "P", "palette->png")
    img = _decode(result)
    assert img.mode == "RGB"
    assert img.getpixel((5, 5)) == Image.open(tmp_path / "pal.png").convert("RGB").getpixel((5, 5))


def test_palette_png_with_transparency_keeps_alpha(tmp_path):
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0])
    pal.putpixel((0, 0), 0)
    _save(tmp_path / "palt.png", pal, "PNG", transparency=0)
    img = _decode(_ok(tmp_path, "palt.png"))
    assert img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((4, 4)) == (255, 0, 0, 255)


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    img16 = Image.new("I;16", (4, 2))
    for x, v in enumerate((65535, 32768, 300, 0)):
        img16.putpixel((x, 0), v)
    original = _save(tmp_path / "deep.png", img16, "PNG")
    assert original[24] == 16  # the fixture really is 16-bit
    result = _ok(tmp_path, "deep.png")
    assert (result.mode, result.reencoded, result.ext) == ("I;16", "16bit->png", "png")
    assert result.data[24] == 8
    img = _decode(result)
    assert img.mode == "L"
    assert [img.getpixel((x, 0)) for x in range(4)] == [255, 128, 1, 0]  # scaled, not clipped to white


def test_16bit_rgb_png_is_reencoded_although_pillow_calls_it_rgb(tmp_path):
    # Pillow cannot write 48-bit PNGs, so build one by hand: 3x2 pixels of (0xFFFF, 0x8000, 0x0010).
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\xff\xff\x80\x00\x00\x10" * 3 for _ in range(2))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    (tmp_path / "rgb48.png").write_bytes(png)
    result = _ok(tmp_path, "rgb48.png")
    assert (result.mode, result.reencoded) == ("RGB", "16bit->png")  # mode alone would have kept it
    assert result.data[24] == 8
    assert _decode(result).getpixel((2, 1)) == (255, 128, 0)


def test_animated_gif_named_jpg_becomes_jpeg_of_frame0(tmp_path):
    frames = [Image.new("RGB", (32, 24), c) for c in (RED, GREEN, BLUE)]
    frames[0].save(tmp_path / "x.jpg", format="GIF", save_all=True, append_images=frames[1:], duration=100)
    result = _ok(tmp_path, "x.jpg")
    assert (result.source_format, result.ext, result.reencoded) == ("GIF", "jpg", "gif->jpg")
    img = _decode(result)
    assert img.format == "JPEG" and img.mode == "RGB"
    r, g, b = img.getpixel((16, 12))
    assert r > 240 and g < 15 and b < 15  # frame 0 is red


def test_gif_transparency_is_composited_on_white(tmp_path):
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255])
    pal.putpixel((0, 0), 0)  # index 0 is black but transparent
    pal.save(tmp_path / "t.gif", transparency=0)
    img = _decode(_ok(tmp_path, "t.gif"))
    assert min(img.getpixel((0, 0))) > 240  # white, not black
    assert img.getpixel((6, 6))[2] > 240


def test_bmp_becomes_png(tmp_path):
    _save(tmp_path / "a.bmp", _gradient(), "BMP")
    result = _ok(tmp_path, "a.bmp")
    assert (result.source_format, result.ext, result.reencoded) == ("BMP", "png", "bmp->png")
    assert _decode(result).tobytes() == _gradient().tobytes()  # lossless


def test_reencode_is_deterministic(tmp_path):
    frames = [_gradient(), _gradient().rotate(90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    _save(tmp_path / "cmyk.jpg", _gradient("CMYK"), "JPEG")
    for name in ("anim.gif", "cmyk.jpg"):
        assert _ok(tmp_path, name).data == _ok(tmp_path, name).data


# ------------------------------------------------------------------ rejected

def test_broken_files_are_rejected_with_reasons(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    data = _save(tmp_path / "whole.jpg", _gradient("RGB", (64, 64)), "JPEG")
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "404.jpg").write_bytes(b"<html><body><h1>404 Not Found</h1></body></html>\n")
    (tmp_path / "adir.jpg").mkdir()
    expected = {"empty.jpg": "empty_image", "half.jpg": "truncated_image", "404.jpg": "undecodable_image",
                "nope.jpg": "missing_image", "adir.jpg": "not_a_file"}
    assert {name: _code(verify_image(tmp_path, name)) for name in expected} == expected
    assert "image file is truncated" in verify_image(tmp_path, "half.jpg")


def test_decompression_bomb_is_rejected_from_header(tmp_path, monkeypatch):
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000  # tiny on disk, 144 Mpx in memory
    _save(tmp_path / "small.jpg", _gradient(), "JPEG")

    def no_decode(self):  # the rejection must come from the header, before any pixel is decoded
        raise AssertionError("decoded pixels of a decompression bomb")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decode)
    reason = verify_image(tmp_path, "bomb.png", max_pixels=10_000_000)
    assert _code(reason) == "decompression_bomb" and "12000x12000" in reason
    assert _code(verify_image(tmp_path, "bomb.png")) == "decompression_bomb"  # over the default limit too
    assert DEFAULT_MAX_PIXELS < 12000 * 12000
    monkeypatch.undo()
    assert isinstance(verify_image(tmp_path, "small.jpg", max_pixels=10_000_000), VerifiedImage)


def test_paths_outside_root_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _save(outside / "x.jpg", _gradient(), "JPEG")
    _save(root / "in.jpg", _gradient(), "JPEG")
    os.symlink(outside / "x.jpg", root / "link.jpg")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "in.jpg", root / "inner_link.jpg")
    for bad in ("../outside/x.jpg", str(outside / "x.jpg"), "link.jpg", "linkdir/x.jpg", "a/../../outside/x.jpg"):
        assert _code(resolve_image(root, bad)) == "path_outside_root", bad
        assert _code(verify_image(root, bad)) == "path_outside_root", bad
    assert resolve_image(root, "sub/../in.jpg") == (root / "in.jpg").resolve()
    assert _ok(root, "inner_link.jpg").reencoded is None  # a symlink that stays inside is fine


def test_verify_image_never_raises(tmp_path):
    assert _code(verify_image(tmp_path, "bad\x00name.jpg")) == "image_error"


# ------------------------------------------------------------------ process pool

def test_verify_image_runs_in_spawn_pool(tmp_path):
    _save(tmp_path / "a.jpg", _gradient(), "JPEG")
    Image.new("RGB", (4, 4), RED).save(tmp_path / "b.jpg", format="GIF")
    args = [(str(tmp_path), "a.jpg"), (tmp_path, "b.jpg"), (tmp_path, "missing.jpg")]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(verify_image, args)
    assert results[0] == verify_image(*args[0])  # same bytes across processes
    assert results[1].reencoded == "gif->jpg" and results[1].data == verify_image(*args[1]).data
    assert _code(results[2]) == "missing_image"
