"""IMAGE_PROCESSING: a list of Pillow operations applied in order to one image.

Payload:
    image_data: the image file's bytes (anything Pillow reads: PNG, JPEG, WEBP, GIF, BMP,
        TIFF, ...); taken from a dependency's ``image_data`` (an image generation, say)
        when the payload has none. Only the first frame of an animation is used.
    operations: a list of ``{"op": name, ...arguments}``, applied in order (none means a
        plain re-encode):

        ===========  ==========================================================================
        resize       ``width`` and/or ``height`` in pixels (one alone keeps the aspect ratio)
        thumbnail    ``max_size``: an int (a square box) or ``[width, height]``; keeps the
                     aspect ratio and never enlarges
        crop         ``box``: ``[left, top, right, bottom]`` in pixels, inside the image
        rotate       ``degrees`` counter-clockwise; ``expand`` (default true) grows the
                     canvas to hold the whole rotated image
        grayscale    no arguments (keeps an alpha channel)
        blur         ``radius``: Gaussian blur radius in pixels, 0 to 100 (default 2)
        convert      ``format``: PNG, JPEG or WEBP; ``quality`` 1 to 100 for JPEG and WEBP
                     (default 85). Sets the output format; the last one wins
        ===========  ==========================================================================

At most :data:`MAX_OPERATIONS` operations, :data:`MAX_BLURS` of them blurs. A task that
times out or is cancelled stops before its next operation (``task.cancel_requested``).
Images are refused before their pixels are decoded when width x height exceeds
``Settings.max_image_pixels``, and so is an operation whose output would. Pillow's own
``Image.MAX_IMAGE_PIXELS`` (about 89 million) still applies on top of that setting.
Pixels are worked on in L, LA, RGB or RGBA (8 bits per channel; 16-bit grey is scaled
down). The output format is the last ``convert``, else the input's format when it is PNG,
JPEG or WEBP, else PNG. A JPEG with an alpha channel is flattened onto white. EXIF
orientation is not applied.

Result: ``image_data`` (bytes), ``width``, ``height``, ``format``, and the extra keys
``mode`` (the Pillow mode of the output) and ``operations`` (the names applied, in order).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..task import ProcessingTask
from .extras import require
from .inputs import get_input
from .settings import Settings

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["OUTPUT_FORMATS", "process"]

OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_OPERATIONS = 32
#: Blurs in one task: each passes over every pixel (32 on 6300x6300 held a thread for 45 s).
MAX_BLURS = 4
MAX_BLUR_RADIUS = 100.0
DEFAULT_QUALITY = 85

#: op name -> (required arguments, optional arguments), for the error messages.
_ARGUMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "resize": ((), ("width", "height")),
    "thumbnail": (("max_size",), ()),
    "crop": (("box",), ()),
    "rotate": (("degrees",), ("expand",)),
    "grayscale": ((), ()),
    "blur": ((), ("radius",)),
    "convert": (("format",), ("quality",)),
}
_WORKING_MODES = ("L", "LA", "RGB", "RGBA")


def _pil() -> Any:
    return require("PIL.Image", "image", "image processing")


@dataclass(frozen=True)
class Operation:
    """One validated operation: its name and its arguments, with the defaults filled in."""

    op: str
    args: Mapping[str, Any]


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    operations = parse_operations(task.payload.get("operations"))
    data = get_input(task, "image_data")
    pil = _pil()
    image, source_format = open_image(data, settings.max_image_pixels)
    output_format = source_format if source_format in OUTPUT_FORMATS else "PNG"
    quality = DEFAULT_QUALITY
    for operation in operations:
        if task.cancel_requested:  # timed out or cancelled: free the thread early
            raise TimeoutError("image_processing stopped: its task timed out or was cancelled")
        if operation.op == "convert":
            output_format = operation.args["format"]
            quality = operation.args["quality"]
        else:
            image = _APPLY[operation.op](pil, image, operation.args, settings.max_image_pixels)
    encoded = encode(image, output_format, quality)
    return {
        "image_data": encoded,
        "width": image.width,
        "height": image.height,
        "format": output_format,
        "mode": image.mode,
        "operations": [operation.op for operation in operations],
    }


def open_image(data: Any, max_pixels: int) -> tuple[Image.Image, str]:
    """Decode ``data`` into an image in a working mode, refusing bombs before decoding.

    Returns the image and the format Pillow detected.
    """
    pil = _pil()
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if data is None:
        raise InvalidInputError(
            "image_processing needs payload['image_data'] (the bytes of an image file), or a "
            "dependency whose result has 'image_data'"
        )
    if not isinstance(data, bytes):
        raise InvalidInputError(
            f"image_data must be the bytes of an image file, got {type(data).__name__}"
        )
    if not data:
        raise InvalidInputError("image_data is empty; send the bytes of a PNG, JPEG or WEBP file")
    try:
        image = pil.open(io.BytesIO(data))
    except (pil.DecompressionBombError, pil.DecompressionBombWarning) as exc:
        raise InvalidInputError(
            f"image_data declares more pixels than the limit of {max_pixels} "
            f"(Settings.max_image_pixels); Pillow refused it as a possible decompression "
            f"bomb: {exc}"
        ) from exc
    except pil.UnidentifiedImageError as exc:
        raise InvalidInputError(
            f"image_data ({len(data)} bytes starting {data[:8]!r}) is not an image file Pillow "
            "can read; send PNG, JPEG, WEBP, GIF, BMP or TIFF bytes"
        ) from exc
    except Exception as exc:
        raise InvalidInputError(f"image_data is not a readable image file: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise InvalidInputError(
            f"the image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (Settings.max_image_pixels); send a smaller image"
        )
    source_format = str(image.format or "PNG")
    try:
        image.load()
        if image.mode.startswith("I"):  # 16-bit grey: scale down rather than clip at 255
            image = image.convert("I").point(lambda value: value / 256).convert("L")
        elif image.mode not in _WORKING_MODES:
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
    except Exception as exc:
        raise InvalidInputError(
            f"image_data is a {source_format} image that cannot be decoded (truncated or "
            f"corrupt?): {exc}"
        ) from exc
    return image, source_format


def encode(image: Image.Image, output_format: str, quality: int) -> bytes:
    """``image`` as ``output_format`` file bytes (JPEG flattens alpha onto white)."""
    pil = _pil()
    if output_format == "JPEG" and image.mode in ("LA", "RGBA"):
        background = pil.new("RGB", image.size, "white")
        background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        image = background
    options: dict[str, Any] = {}
    if output_format in ("JPEG", "WEBP"):
        options["quality"] = quality
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=output_format, **options)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot write a {image.width}x{image.height} image as {output_format}: {exc}"
        ) from exc
    return buffer.getvalue()


# -- validation ---------------------------------------------------------------------------


def _allowed() -> str:
    parts = []
    for op, (required, optional) in _ARGUMENTS.items():
        names = [*required, *(f"{name}?" for name in optional)]
        parts.append(f"{op}({', '.join(names)})")
    return ", ".join(parts)


def parse_operations(raw: Any) -> list[Operation]:
    """Validate every operation before any decoding; errors list what is allowed."""
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise InvalidInputError(
            f"payload['operations'] must be a list of {{'op': name, ...}} dicts, got "
            f"{type(raw).__name__}; operations: {_allowed()}"
        )
    if len(raw) > MAX_OPERATIONS:
        raise InvalidInputError(
            f"{len(raw)} operations is more than the {MAX_OPERATIONS} allowed in one task"
        )
    operations = [_parse_one(index, item) for index, item in enumerate(raw)]
    blurs = sum(operation.op == "blur" for operation in operations)
    if blurs > MAX_BLURS:
        raise InvalidInputError(
            f"{blurs} blurs in one task; at most {MAX_BLURS} are allowed (one blur with a "
            f"larger radius, up to {MAX_BLUR_RADIUS:g}, does the work of several)"
        )
    return operations


def _parse_one(index: int, item: Any) -> Operation:
    where = f"operations[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("op"), str):
        raise InvalidInputError(
            f"{where} must be a dict with an 'op' name, got {item!r:.80}; operations: {_allowed()}"
        )
    op = item["op"]
    if op not in _ARGUMENTS:
        raise InvalidInputError(f"{where}: unknown op {op!r}; operations: {_allowed()}")
    required, optional = _ARGUMENTS[op]
    given = set(item) - {"op"}
    unknown = given - set(required) - set(optional)
    missing = [name for name in required if name not in item]
    if unknown or missing:
        problem = (
            f"unknown argument(s) {', '.join(sorted(unknown))}"
            if unknown
            else f"missing {', '.join(missing)}"
        )
        takes = ", ".join([*required, *(f"{name} (optional)" for name in optional)]) or "nothing"
        raise InvalidInputError(f"{where}: {op} takes {takes}; {problem}")
    args = _PARSE[op](where, item)
    return Operation(op, args)


def _size(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"{where}: {name} must be a whole number of pixels >= 1, got {value!r}"
        )
    return value


def _number(where: str, name: str, value: Any, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InvalidInputError(
            f"{where}: {name} must be a number from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)


def _bool(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def _parse_resize(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    if item.get("width") is None and item.get("height") is None:
        raise InvalidInputError(f"{where}: resize needs width, height or both (in pixels)")
    return {
        name: _size(where, name, item[name]) if item.get(name) is not None else None
        for name in ("width", "height")
    }


def _parse_thumbnail(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    value = item["max_size"]
    if isinstance(value, list | tuple) and len(value) == 2:
        return {
            "max_size": (
                _size(where, "max_size[0]", value[0]),
                _size(where, "max_size[1]", value[1]),
            )
        }
    if isinstance(value, int) and not isinstance(value, bool):
        side = _size(where, "max_size", value)
        return {"max_size": (side, side)}
    raise InvalidInputError(
        f"{where}: thumbnail max_size must be an int (a square box) or [width, height], "
        f"got {value!r}"
    )


def _parse_crop(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    box = item["box"]
    if (
        not isinstance(box, list | tuple)
        or len(box) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in box)
        or box[0] >= box[2]
        or box[1] >= box[3]
    ):
        raise InvalidInputError(
            f"{where}: crop box must be [left, top, right, bottom], whole pixels >= 0 with "
            f"left < right and top < bottom, got {box!r}"
        )
    return {"box": tuple(box)}


def _parse_rotate(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "degrees": _number(where, "degrees", item["degrees"], -360.0, 360.0),
        "expand": _bool(where, "expand", item.get("expand", True)),
    }


def _parse_blur(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {"radius": _number(where, "radius", item.get("radius", 2), 0.0, MAX_BLUR_RADIUS)}


def _parse_convert(where: str, item: Mapping[str, Any]) -> dict[str, Any]:
    fmt = item["format"]
    if not isinstance(fmt, str) or fmt.upper().replace("JPG", "JPEG") not in OUTPUT_FORMATS:
        raise InvalidInputError(
            f"{where}: convert format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}"
        )
    quality = item.get("quality", DEFAULT_QUALITY)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidInputError(
            f"{where}: quality must be a whole number from 1 to 100, got {quality!r}"
        )
    return {"format": fmt.upper().replace("JPG", "JPEG"), "quality": quality}


_PARSE: dict[str, Callable[[str, Mapping[str, Any]], dict[str, Any]]] = {
    "resize": _parse_resize,
    "thumbnail": _parse_thumbnail,
    "crop": _parse_crop,
    "rotate": _parse_rotate,
    "grayscale": lambda where, item: {},
    "blur": _parse_blur,
    "convert": _parse_convert,
}


# -- operations ---------------------------------------------------------------------------


def _check_output(width: int, height: int, max_pixels: int, op: str) -> None:
    if width * height > max_pixels:
        raise InvalidInputError(
            f"{op} would make a {width}x{height} image ({width * height} pixels), over the "
            f"limit of {max_pixels} (Settings.max_image_pixels)"
        )


def _resize(pil: Any, image: Image.Image, args: Mapping[str, Any], max_pixels: int) -> Any:
    width, height = args["width"], args["height"]
    if width is None:
        width = max(1, round(image.width * height / image.height))
    elif height is None:
        height = max(1, round(image.height * width / image.width))
    _check_output(width, height, max_pixels, "resize")
    return image.resize((width, height), pil.Resampling.LANCZOS)


def _thumbnail(pil: Any, image: Image.Image, args: Mapping[str, Any], max_pixels: int) -> Any:
    copy = image.copy()
    copy.thumbnail(args["max_size"], pil.Resampling.LANCZOS)
    return copy


def _crop(pil: Any, image: Image.Image, args: Mapping[str, Any], max_pixels: int) -> Any:
    left, top, right, bottom = args["box"]
    if right > image.width or bottom > image.height:
        raise InvalidInputError(
            f"crop box {list(args['box'])} reaches outside the {image.width}x{image.height} "
            "image; keep right <= width and bottom <= height"
        )
    return image.crop((left, top, right, bottom))


def _rotate(pil: Any, image: Image.Image, args: Mapping[str, Any], max_pixels: int) -> Any:
    degrees = args["degrees"]
    if args["expand"]:
        angle = math.radians(degrees)
        cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
        width = math.ceil(image.width * cos + image.height * sin)
        height = math.ceil(image.width * sin + image.height * cos)
        _check_output(width, height, max_pixels, "rotate")
    return image.rotate(degrees, resample=pil.Resampling.BICUBIC, expand=args["expand"])


def _grayscale(pil: Any, image: Image.Image, args: Mapping[str, Any], max_pixels: int) -> Any:
    return image.convert("LA" if "A" in image.getbands() else "L")


def _blur(pil: Any, image: Image.Image, args: Mapping[str, Any], max_pixels: int) -> Any:
    image_filter = require("PIL.ImageFilter", "image", "image processing")
    return image.filter(image_filter.GaussianBlur(args["radius"]))


_APPLY: dict[str, Callable[[Any, Any, Mapping[str, Any], int], Any]] = {
    "resize": _resize,
    "thumbnail": _thumbnail,
    "crop": _crop,
    "rotate": _rotate,
    "grayscale": _grayscale,
    "blur": _blur,
}
