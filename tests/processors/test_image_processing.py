"""IMAGE_PROCESSING: every operation decoded back with Pillow and checked, the limits
(decompression bombs, oversized outputs), corrupt input, and the real processor."""

from __future__ import annotations

import io
import struct
import time
import zlib
from typing import Any

import pytest

from async_processor import (
    InvalidInputError,
    ProcessingType,
    Settings,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import image_processing

Image = pytest.importorskip("PIL.Image")

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def picture(mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """120x80 blue, with a red 40x20 block in the top-left corner."""
    image = Image.new(mode, (120, 80), BLUE if mode == "RGB" else (*BLUE, 255))
    image.paste(RED if mode == "RGB" else (*RED, 255), (0, 0, 40, 20))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def run(
    operations: Any, data: Any = None, settings: Settings | None = None, **fields: Any
) -> dict[str, Any]:
    payload = {"operations": operations}
    if data is not None:
        payload["image_data"] = data
    task = create_task(ProcessingType.IMAGE_PROCESSING, payload, **fields)
    return image_processing.process(task, settings or Settings())


def decode(result: dict[str, Any]) -> Any:
    image = Image.open(io.BytesIO(result["image_data"]))
    image.load()
    assert image.size == (result["width"], result["height"])
    assert image.format == result["format"]
    return image


def test_no_operations_reencodes_the_same_pixels() -> None:
    result = run([], picture())
    image = decode(result)
    assert (image.size, image.mode, result["format"]) == ((120, 80), "RGB", "PNG")
    assert image.getpixel((5, 5)) == RED and image.getpixel((100, 60)) == BLUE
    assert result["operations"] == []


def test_resize_exact_and_keeping_the_aspect_ratio() -> None:
    both = decode(run([{"op": "resize", "width": 30, "height": 30}], picture()))
    assert both.size == (30, 30)
    one = decode(run([{"op": "resize", "width": 60}], picture()))
    assert one.size == (60, 40)
    assert one.getpixel((5, 3)) == pytest.approx(RED, abs=8)
    assert one.getpixel((50, 30)) == pytest.approx(BLUE, abs=8)
    tall = decode(run([{"op": "resize", "height": 160}], picture()))
    assert tall.size == (240, 160)


def test_thumbnail_fits_the_box_and_never_enlarges() -> None:
    assert decode(run([{"op": "thumbnail", "max_size": 60}], picture())).size == (60, 40)
    assert decode(run([{"op": "thumbnail", "max_size": [100, 20]}], picture())).size == (30, 20)
    assert decode(run([{"op": "thumbnail", "max_size": 1000}], picture())).size == (120, 80)


def test_crop_takes_exactly_the_box() -> None:
    image = decode(run([{"op": "crop", "box": [0, 0, 40, 20]}], picture()))
    assert image.size == (40, 20)
    assert image.getcolors() == [(40 * 20, RED)]
    edge = decode(run([{"op": "crop", "box": [30, 10, 50, 30]}], picture()))
    assert edge.getpixel((0, 0)) == RED and edge.getpixel((19, 19)) == BLUE


def test_rotate_turns_counter_clockwise_and_expands() -> None:
    image = decode(run([{"op": "rotate", "degrees": 90}], picture()))
    assert image.size == (80, 120)
    # The top-left red block ends up bottom-left.
    assert image.getpixel((5, 115)) == RED and image.getpixel((70, 10)) == BLUE
    kept = decode(run([{"op": "rotate", "degrees": 30, "expand": False}], picture()))
    assert kept.size == (120, 80)
    grown = decode(run([{"op": "rotate", "degrees": 45}], picture()))
    assert grown.size[0] > 120 and grown.size[1] > 80


def test_grayscale_gives_luminance_and_keeps_alpha() -> None:
    image = decode(run([{"op": "grayscale"}], picture()))
    assert image.mode == "L"
    assert image.getpixel((5, 5)) == pytest.approx(76, abs=1)  # 0.299 * 255
    assert image.getpixel((100, 60)) == pytest.approx(29, abs=1)  # 0.114 * 255
    with_alpha = decode(run([{"op": "grayscale"}], picture("RGBA")))
    assert with_alpha.mode == "LA"


def test_blur_mixes_colours_across_an_edge_only() -> None:
    image = decode(run([{"op": "blur", "radius": 4}], picture()))
    red, _, blue = image.getpixel((40, 10))
    assert 40 < red < 215 and 40 < blue < 215
    assert image.getpixel((100, 60)) == BLUE
    unblurred = decode(run([{"op": "blur", "radius": 0}], picture()))
    assert unblurred.getpixel((39, 10)) == RED


def test_convert_to_jpeg_and_webp_with_quality() -> None:
    noisy = Image.effect_noise((128, 128), 60).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    low = run([{"op": "convert", "format": "jpeg", "quality": 10}], buffer.getvalue())
    high = run([{"op": "convert", "format": "JPG", "quality": 95}], buffer.getvalue())
    assert decode(low).format == "JPEG" and decode(low).mode == "RGB"
    assert len(low["image_data"]) < len(high["image_data"]) / 2
    webp = decode(run([{"op": "convert", "format": "WEBP"}], picture()))
    assert webp.format == "WEBP" and webp.getpixel((100, 60)) == pytest.approx(BLUE, abs=12)


def test_jpeg_flattens_transparency_onto_white() -> None:
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 16, 32))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    out = decode(run([{"op": "convert", "format": "JPEG", "quality": 95}], buffer.getvalue()))
    assert out.getpixel((28, 16)) == pytest.approx((255, 255, 255), abs=6)
    assert out.getpixel((4, 16)) == pytest.approx(RED, abs=6)


def test_input_format_is_kept_when_writable_else_png() -> None:
    assert run([], picture(fmt="JPEG"))["format"] == "JPEG"
    gif = run([{"op": "grayscale"}], picture(fmt="GIF"))
    assert gif["format"] == "PNG" and decode(gif).mode == "L"


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    buffer = io.BytesIO()
    Image.new("I;16", (8, 8), 30_000).save(buffer, format="PNG")
    image = decode(run([], buffer.getvalue()))
    assert image.mode == "L" and image.getpixel((4, 4)) == pytest.approx(117, abs=1)


def test_operations_chain_in_order() -> None:
    result = run(
        [
            {"op": "crop", "box": [0, 0, 80, 40]},
            {"op": "resize", "width": 40},
            {"op": "rotate", "degrees": -90},
            {"op": "grayscale"},
            {"op": "convert", "format": "PNG"},
        ],
        picture(),
    )
    image = decode(result)
    assert image.size == (20, 40) and image.mode == "L"
    assert result["operations"] == ["crop", "resize", "rotate", "grayscale", "convert"]


def test_a_dependency_supplies_the_image() -> None:
    task = create_task(
        ProcessingType.IMAGE_PROCESSING,
        {"operations": [{"op": "thumbnail", "max_size": 12}]},
        depends_on=["generated"],
    )
    task.dependency_results = {"generated": {"image_data": picture()}}
    assert image_processing.process(task, Settings())["width"] == 12


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "side",
    [
        100_000,  # over twice Pillow's own limit: DecompressionBombError
        10_000,  # over Pillow's limit: its DecompressionBombWarning (an error under pytest)
        7_000,  # under Pillow's limit, over Settings.max_image_pixels (40 M): our check
    ],
)
def test_an_image_bomb_is_refused_before_decoding(side: int) -> None:
    bomb = png_declaring(side, side)
    assert len(bomb) < 200
    started = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"pixels.*Settings\.max_image_pixels"):
        run([], bomb)
    assert time.perf_counter() - started < 1.0


def test_the_pixel_limit_comes_from_settings() -> None:
    small = Settings(max_image_pixels=5_000)
    with pytest.raises(InvalidInputError, match=r"120x80 = 9600 pixels, over the limit of 5000"):
        run([], picture(), settings=small)
    roomy = Settings(max_image_pixels=10_000)
    with pytest.raises(InvalidInputError, match=r"resize would make a 240x160 image"):
        run([{"op": "resize", "width": 240}], picture(), settings=roomy)
    with pytest.raises(InvalidInputError, match=r"rotate would make"):
        run([{"op": "rotate", "degrees": 45}], picture(), settings=roomy)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "image_data is empty"),
        (b"GIF89a but not really an image at all", "is not an image file Pillow can read"),
        (b"hello, I am text", "is not an image file Pillow can read"),
        ("a string", "must be the bytes of an image file, got str"),
    ],
)
def test_non_images_are_refused(data: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        run([], data)


def test_a_truncated_image_is_refused() -> None:
    data = picture()
    with pytest.raises(InvalidInputError, match="cannot be decoded"):
        run([], data[: len(data) // 2])


def test_missing_image_names_both_sources() -> None:
    with pytest.raises(InvalidInputError, match="or a dependency whose result has 'image_data'"):
        run([])


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([{"op": "sharpen"}], "unknown op 'sharpen'; operations: resize"),
        ("grayscale", "must be a list of"),
        (["grayscale"], r"operations\[0\] must be a dict with an 'op' name"),
        ([{"op": "resize"}], "resize needs width, height or both"),
        ([{"op": "resize", "widht": 10}], "unknown argument.*widht"),
        ([{"op": "resize", "width": 0}], "width must be a whole number of pixels >= 1"),
        ([{"op": "resize", "width": 2.5}], "width must be a whole number"),
        ([{"op": "thumbnail"}], "thumbnail takes max_size; missing max_size"),
        ([{"op": "thumbnail", "max_size": "big"}], "max_size must be an int"),
        ([{"op": "crop", "box": [10, 0, 5, 20]}], "left < right"),
        ([{"op": "crop", "box": [0, 0, 500, 20]}], "reaches outside the 120x80 image"),
        ([{"op": "rotate", "degrees": "ninety"}], "degrees must be a number"),
        ([{"op": "rotate", "degrees": 90, "expand": "yes"}], "expand must be true or false"),
        ([{"op": "blur", "radius": 1000}], "radius must be a number from 0 to 100"),
        ([{"op": "grayscale", "amount": 1}], "grayscale takes nothing"),
        ([{"op": "convert", "format": "BMP"}], "format must be one of PNG, JPEG, WEBP"),
        ([{"op": "convert", "format": "PNG", "quality": 0}], "quality must be a whole number"),
        ([{"op": "grayscale"}] * 33, "more than the 32 allowed"),
    ],
)
def test_bad_operations_are_refused_with_what_is_allowed(operations: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        run(operations, picture())


async def test_through_the_processor() -> None:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        good = create_task(
            ProcessingType.IMAGE_PROCESSING,
            {"image_data": picture(), "operations": [{"op": "resize", "width": 12}]},
        )
        bomb = create_task(
            ProcessingType.IMAGE_PROCESSING, {"image_data": png_declaring(10**5, 10**5)}
        )
        unknown = create_task(
            ProcessingType.IMAGE_PROCESSING,
            {"image_data": picture(), "operations": [{"op": "sepia"}]},
        )
        ids = [await processor.submit_task(task) for task in (good, bomb, unknown)]
        done, refused, wrong = [await processor.wait_for_task(i, timeout=30) for i in ids]
        assert done.status is TaskStatus.COMPLETED
        assert Image.open(io.BytesIO(done.result["image_data"])).size == (12, 8)
        for failed in (refused, wrong):
            assert failed.status is TaskStatus.FAILED
            assert failed.error is not None and failed.error.startswith("InvalidInputError: ")
        assert refused.error is not None and "Settings.max_image_pixels" in refused.error
        assert wrong.error is not None and "unknown op 'sepia'" in wrong.error
        again = await processor.wait_for_task(
            await processor.submit_task(
                create_task(ProcessingType.IMAGE_PROCESSING, {"image_data": picture()})
            ),
            timeout=30,
        )
        assert again.status is TaskStatus.COMPLETED
    finally:
        await processor.shutdown()
