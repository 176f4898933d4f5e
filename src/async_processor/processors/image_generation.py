"""IMAGE_GENERATION: an image from a text prompt.

Engines:
    procedural (default, offline): no image model ships in any package, so this draws an
        illustration with Pillow: words in the prompt pick the scene (night and stars,
        sun, sunset, sea, trees, mountains, a house, a teddy bear, flowers, clouds and rain,
        snow, a rainbow; colour words tint the main subject), and a seeded random layout
        places it. A prompt with none of those words gets abstract shapes derived from its
        words. The prompt is printed in a caption band and a small "procedural
        illustration" label is drawn in the corner. The same prompt and size give the same
        PNG bytes.
    openai (``Settings.images`` with kind ``"openai"``): ``images.generate`` through the
        official SDK (any OpenAI-compatible server via ``base_url``), ``response_format``
        ``b64_json``, the model from the settings.

Payload: ``prompt`` (else a dependency's ``prompt`` or ``text``), ``size`` ``"WxH"`` (default
``"512x512"``; each side 64 to 4096 and at most ``Settings.max_image_pixels`` pixels).

Result: ``image_data`` (PNG bytes from the procedural engine; the provider's bytes as
returned otherwise), ``width``, ``height``, ``provider`` (``"procedural"`` or ``"openai"``),
and the extra keys ``format``, ``prompt``, and for the procedural engine ``note`` and
``elements`` (what was drawn), for a provider ``model`` and ``revised_prompt``.

Errors: a rate limit, server error, timeout or refused connection is a ProviderError (the
task is retried under its max_retries); any other refusal or an answer that is not an image
is a ProviderRequestError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, ProviderError, ProviderRequestError
from ..task import ProcessingTask
from .egress import denial_in, redact_url
from .extras import require
from .inputs import optional_text
from .openai_clients import sync_client
from .settings import ProviderSettings, Settings

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

__all__ = ["DEFAULT_SIZE", "parse_size", "process", "render"]

DEFAULT_SIZE = "512x512"
MIN_SIDE = 64
MAX_SIDE = 4096
MAX_PROMPT_CHARS = 4000
PROCEDURAL_NOTE = (
    "A procedural illustration drawn offline from shapes chosen by words in the prompt, not "
    "the work of an image model. Configure Settings.images (ASYNC_PROCESSOR_IMAGES=openai) "
    "to use one."
)

_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*$")


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    prompt = optional_text(task, "prompt") or optional_text(task, "text")
    if prompt is None or not prompt.strip():
        raise InvalidInputError(
            "image_generation needs payload['prompt'] (a non-empty string), or a dependency "
            "whose result has 'prompt' or 'text'"
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInputError(
            f"the prompt is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}"
        )
    size_text = task.payload.get("size") or DEFAULT_SIZE
    width, height = parse_size(size_text, settings.max_image_pixels)
    if settings.images is not None:
        return _generate_with_provider(settings.images, prompt, f"{width}x{height}", settings)
    image_data, elements = render(prompt, width, height)
    return {
        "image_data": image_data,
        "width": width,
        "height": height,
        "provider": "procedural",
        "format": "PNG",
        "prompt": prompt,
        "note": PROCEDURAL_NOTE,
        "elements": elements,
    }


def parse_size(value: Any, max_pixels: int) -> tuple[int, int]:
    """``"WxH"`` as two ints, or InvalidInputError."""
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInputError(
            f"size must be a string 'WIDTHxHEIGHT' such as '512x512', got {value!r}"
        )
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise InvalidInputError(
            f"size {width}x{height}: each side must be from {MIN_SIDE} to {MAX_SIDE} pixels"
        )
    if width * height > max_pixels:
        raise InvalidInputError(
            f"size {width}x{height} is {width * height} pixels, over the limit of {max_pixels} "
            "(Settings.max_image_pixels)"
        )
    return width, height


# -- provider -----------------------------------------------------------------------------


def _generate_with_provider(
    provider: ProviderSettings, prompt: str, size: str, settings: Settings
) -> dict[str, Any]:
    openai = require("openai", "ai", "image generation through an images API")
    client = sync_client(provider, "image generation through an images API", settings.egress_allow)
    options: dict[str, Any] = {
        "prompt": prompt,
        "size": size,
        "n": 1,
        "response_format": "b64_json",
    }
    if provider.model:
        options["model"] = provider.model
    where = redact_url(provider.base_url) if provider.base_url else "the OpenAI API"
    try:
        response = client.images.generate(**options)
    except openai.APITimeoutError as exc:
        raise ProviderError(
            f"the images provider at {where} did not answer within {provider.timeout:g} s"
        ) from exc
    except openai.APIConnectionError as exc:  # an SDK may wrap an EgressDeniedError
        failure = ProviderError(f"cannot reach the images provider at {where}: {exc}")
        raise denial_in(exc) or failure from exc
    except openai.APIStatusError as exc:  # the status only, never the body
        message = f"the images provider answered HTTP {exc.status_code}"
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            raise ProviderError(message) from exc
        raise ProviderRequestError(message) from exc
    except openai.OpenAIError as exc:
        raise ProviderRequestError(f"the images provider's answer is unusable: {exc}") from exc

    try:
        item = response.data[0]
        encoded = item.b64_json
        image_data = base64.b64decode(encoded, validate=True)
        revised_prompt = getattr(item, "revised_prompt", None)
    except (AttributeError, IndexError, TypeError, ValueError, binascii.Error) as exc:
        raise ProviderRequestError(
            f"the images provider's answer has no base64 image in data[0].b64_json ({exc!r:.120})"
        ) from exc
    pil = require("PIL.Image", "image", "checking a generated image")
    try:
        with pil.open(io.BytesIO(image_data)) as image:
            width, height = image.size
            image_format = str(image.format)
    except Exception as exc:
        raise ProviderRequestError(
            f"the images provider sent {len(image_data)} bytes that are not an image: {exc}"
        ) from exc
    if width * height > settings.max_image_pixels:
        raise ProviderRequestError(
            f"the images provider sent a {width}x{height} image, over the limit of "
            f"{settings.max_image_pixels} pixels (Settings.max_image_pixels)"
        )
    return {
        "image_data": image_data,
        "width": width,
        "height": height,
        "provider": provider.kind,
        "format": image_format,
        "prompt": prompt,
        "model": getattr(response, "model", None) or provider.model,
        "revised_prompt": revised_prompt,
    }


# -- procedural renderer ------------------------------------------------------------------

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (214, 48, 49),
    "orange": (240, 140, 40),
    "yellow": (245, 205, 50),
    "green": (60, 160, 70),
    "blue": (50, 110, 210),
    "purple": (140, 80, 190),
    "pink": (240, 130, 180),
    "brown": (140, 90, 50),
    "white": (245, 245, 245),
    "black": (40, 40, 40),
    "gold": (230, 180, 40),
    "golden": (230, 180, 40),
    "grey": (140, 140, 140),
    "gray": (140, 140, 140),
}

#: element -> the words that ask for it (a trailing plural "s" is dropped before matching).
KEYWORDS: dict[str, frozenset[str]] = {
    "night": frozenset({"night", "moon", "star", "dark", "sleep", "bedtime", "dream", "midnight"}),
    "sunset": frozenset({"sunset", "sunrise", "evening", "dusk", "dawn"}),
    "sun": frozenset({"sun", "sunny", "summer", "day", "morning"}),
    "sea": frozenset(
        {"sea", "ocean", "beach", "water", "lake", "river", "boat", "ship", "fish", "wave"}
    ),
    "mountains": frozenset({"mountain", "hill", "valley"}),
    "trees": frozenset({"tree", "forest", "wood", "park", "jungle"}),
    "house": frozenset({"house", "home", "castle", "tower", "cottage"}),
    "bear": frozenset({"bear", "teddy", "cub"}),
    "flowers": frozenset({"flower", "garden", "meadow", "rose", "daisy"}),
    "clouds": frozenset({"cloud", "cloudy", "rain", "rainy", "storm"}),
    "rain": frozenset({"rain", "rainy", "storm"}),
    "snow": frozenset({"snow", "snowy", "winter", "snowman", "ice"}),
    "rainbow": frozenset({"rainbow"}),
}


def _words(prompt: str) -> list[str]:
    words = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        words.append(word)
        if word.endswith("s") and len(word) > 3:
            words.append(word[:-1])
    return words


@dataclass
class _Scene:
    width: int
    height: int
    horizon: int
    rng: random.Random
    image: Image.Image
    draw: ImageDraw.ImageDraw
    pil: Any
    image_draw: Any
    accent: RGB | None = None
    land: int = 0
    elements: list[str] = field(default_factory=list)


def render(prompt: str, width: int, height: int) -> tuple[bytes, list[str]]:
    """PNG bytes of the procedural illustration for ``prompt``, and the elements drawn."""
    pil = require("PIL.Image", "image", "drawing a procedural illustration")
    image_draw = require("PIL.ImageDraw", "image", "drawing a procedural illustration")
    words = _words(prompt)
    wanted = {name for name, keys in KEYWORDS.items() if keys.intersection(words)}
    accent = next((COLOURS[word] for word in words if word in COLOURS), None)
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    band = max(24, height // 7)
    scene_height = height - band

    image = pil.new("RGB", (width, height))
    scene = _Scene(
        width=width,
        height=scene_height,
        horizon=int(scene_height * 0.62),
        rng=random.Random(seed),
        image=image,
        draw=image_draw.Draw(image),
        pil=pil,
        image_draw=image_draw,
    )
    night = "night" in wanted
    _sky(scene, "night" if night else "sunset" if "sunset" in wanted else "day")
    if night:
        _stars(scene)
        _moon(scene)
    elif "sunset" in wanted or "sun" in wanted or not wanted & {"clouds", "snow"}:
        _sun(scene, low="sunset" in wanted)
    if "rainbow" in wanted:
        _rainbow(scene)
    if "mountains" in wanted:
        _mountains(scene, snow="snow" in wanted)
    if "clouds" in wanted:
        _clouds(scene, dark=night or "rain" in wanted)
    _ground(scene, snow="snow" in wanted, night=night, sea="sea" in wanted)
    tinted = next((name for name in ("bear", "house", "flowers") if name in wanted), None)
    for name in ("house", "trees", "flowers", "bear"):
        if name in wanted:
            scene.accent = accent if name == tinted else None
            _SUBJECTS[name](scene)
    if not wanted:
        _abstract(scene, words)
    if "rain" in wanted:
        _rain(scene)
    if "snow" in wanted:
        _snowfall(scene)
    _caption(image, scene, prompt, band)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), scene.elements


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


_SKIES: dict[str, tuple[RGB, RGB]] = {
    "day": ((90, 160, 230), (205, 230, 250)),
    "sunset": ((70, 60, 140), (250, 160, 90)),
    "night": ((8, 12, 40), (40, 55, 110)),
}


def _sky(scene: _Scene, kind: str) -> None:
    top, bottom = _SKIES[kind]
    for y in range(scene.horizon + 1):
        colour = _mix(top, bottom, y / max(1, scene.horizon))
        scene.draw.line([(0, y), (scene.width, y)], fill=colour)
    scene.elements.append(f"{kind} sky")


def _stars(scene: _Scene) -> None:
    unit = min(scene.width, scene.height)
    for _ in range(min(120, 30 + scene.width * scene.height // 6000)):
        x = scene.rng.uniform(0, scene.width)
        y = scene.rng.uniform(0, scene.horizon * 0.85)
        r = scene.rng.uniform(0.6, 1.8) * unit / 400
        scene.draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 250, 220))
    scene.elements.append("stars")


def _moon(scene: _Scene) -> None:
    """A crescent: the full disc minus an offset disc, through a mask, over the gradient."""
    r = min(scene.width, scene.height) * 0.08
    x = scene.width * scene.rng.uniform(0.65, 0.85)
    y = scene.horizon * 0.25
    box = (round(x - r), round(y - r), round(x + r) + 1, round(y + r) + 1)
    mask = scene.pil.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    shape = scene.image_draw.Draw(mask)
    shape.ellipse([0, 0, 2 * r, 2 * r], fill=255)
    shape.ellipse([r * 0.45, -r * 0.05, r * 2.45, r * 1.95], fill=0)
    scene.image.paste((250, 245, 200), box, mask)
    scene.elements.append("moon")


def _sun(scene: _Scene, low: bool) -> None:
    r = min(scene.width, scene.height) * 0.09
    x = scene.width * scene.rng.uniform(0.15, 0.85)
    y = scene.horizon * (0.75 if low else 0.22)
    colour = (250, 120, 60) if low else (255, 215, 70)
    for i in range(12):
        angle = i * math.pi / 6
        scene.draw.line(
            [
                (x + math.cos(angle) * r * 1.25, y + math.sin(angle) * r * 1.25),
                (x + math.cos(angle) * r * 1.7, y + math.sin(angle) * r * 1.7),
            ],
            fill=colour,
            width=max(1, round(r / 8)),
        )
    scene.draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    scene.elements.append("setting sun" if low else "sun")


def _rainbow(scene: _Scene) -> None:
    cx, cy = scene.width * 0.5, scene.horizon
    band = max(2, round(min(scene.width, scene.height) / 60))
    outer = min(scene.width * 0.45, scene.horizon * 0.9)
    bands = [
        (230, 60, 60),
        (245, 150, 40),
        (245, 225, 60),
        (80, 180, 80),
        (60, 120, 220),
        (130, 80, 190),
    ]
    for i, colour in enumerate(bands):
        r = outer - i * band
        scene.draw.arc([cx - r, cy - r, cx + r, cy + r], 180, 360, fill=colour, width=band)
    scene.elements.append("rainbow")


def _clouds(scene: _Scene, dark: bool) -> None:
    colour = (150, 155, 170) if dark else (250, 250, 252)
    unit = min(scene.width, scene.height) / 10
    for _ in range(scene.rng.randint(2, 4)):
        x = scene.rng.uniform(0.1, 0.9) * scene.width
        y = scene.rng.uniform(0.1, 0.4) * scene.horizon
        for dx, dy, r in ((-1.0, 0.2, 0.7), (0.0, 0.0, 1.0), (1.0, 0.2, 0.75), (0.5, 0.4, 0.6)):
            cx, cy, radius = x + dx * unit, y + dy * unit, r * unit
            scene.draw.ellipse(
                [cx - radius, cy - radius * 0.7, cx + radius, cy + radius * 0.7], fill=colour
            )
    scene.elements.append("storm clouds" if dark else "clouds")


def _mountains(scene: _Scene, snow: bool) -> None:
    count = scene.rng.randint(2, 4)
    for i in range(count):
        peak_x = (i + scene.rng.uniform(0.2, 0.8)) * scene.width / count
        half = scene.width / count * scene.rng.uniform(0.7, 1.1)
        peak_y = scene.horizon * scene.rng.uniform(0.25, 0.5)
        scene.draw.polygon(
            [(peak_x - half, scene.horizon), (peak_x, peak_y), (peak_x + half, scene.horizon)],
            fill=(110, 105, 130),
        )
        if snow or scene.rng.random() < 0.5:
            cap = (scene.horizon - peak_y) * 0.25
            scene.draw.polygon(
                [
                    (peak_x - half * cap / (scene.horizon - peak_y), peak_y + cap),
                    (peak_x, peak_y),
                    (peak_x + half * cap / (scene.horizon - peak_y), peak_y + cap),
                ],
                fill=(245, 245, 250),
            )
    scene.elements.append("mountains")


def _ground(scene: _Scene, snow: bool, night: bool, sea: bool) -> None:
    grass = (235, 240, 248) if snow else (40, 80, 50) if night else (95, 175, 80)
    scene.draw.rectangle([0, scene.horizon, scene.width, scene.height], fill=grass)
    scene.land = scene.horizon
    if sea:
        water = (20, 40, 90) if night else (40, 120, 190)
        shore = scene.horizon + (scene.height - scene.horizon) * 0.55
        scene.land = round(shore)
        scene.draw.rectangle([0, scene.horizon, scene.width, shore], fill=water)
        wave = max(4.0, scene.width / 24)
        for row in range(3):
            y = scene.horizon + (shore - scene.horizon) * (row + 0.6) / 3.5
            x = -wave * scene.rng.random()
            while x < scene.width:
                scene.draw.arc(
                    [x, y - wave / 3, x + wave, y + wave / 3],
                    200,
                    340,
                    fill=(220, 235, 250),
                    width=max(1, round(wave / 10)),
                )
                x += wave * 1.4
        if not snow:
            scene.draw.rectangle([0, shore, scene.width, scene.height], fill=(235, 210, 150))
        scene.elements.append("sea")
    scene.elements.append("snowy ground" if snow else "ground")


def _tree(scene: _Scene, x: float, base: float, tall: float) -> None:
    trunk = tall * 0.12
    scene.draw.rectangle(
        [x - trunk / 2, base - tall * 0.45, x + trunk / 2, base], fill=(110, 70, 40)
    )
    leaves = (30, 90, 45) if scene.rng.random() < 0.5 else (50, 130, 60)
    for dx, dy, r in ((0, -0.7, 0.3), (-0.2, -0.55, 0.22), (0.2, -0.55, 0.22)):
        cx, cy, radius = x + dx * tall, base + dy * tall, r * tall
        scene.draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=leaves)


def _trees(scene: _Scene) -> None:
    count = scene.rng.randint(2, 5)
    for _ in range(count):
        x = scene.rng.uniform(0.05, 0.95) * scene.width
        base = scene.land + scene.rng.uniform(0.02, 0.6) * (scene.height - scene.land)
        _tree(scene, x, base, scene.height * scene.rng.uniform(0.25, 0.4))
    scene.elements.append(f"{count} trees")


def _house(scene: _Scene) -> None:
    w = scene.width * 0.22
    h = scene.height * 0.2
    x = scene.width * scene.rng.uniform(0.05, 0.3)
    base = scene.land + (scene.height - scene.land) * 0.35
    wall = scene.accent or (220, 190, 150)
    scene.draw.rectangle([x, base - h, x + w, base], fill=wall, outline=(60, 40, 30))
    scene.draw.polygon(
        [(x - w * 0.1, base - h), (x + w / 2, base - h * 1.8), (x + w * 1.1, base - h)],
        fill=(170, 60, 50),
    )
    scene.draw.rectangle([x + w * 0.42, base - h * 0.55, x + w * 0.58, base], fill=(90, 55, 35))
    scene.draw.rectangle(
        [x + w * 0.12, base - h * 0.8, x + w * 0.32, base - h * 0.5], fill=(255, 230, 120)
    )
    scene.elements.append("house")


def _flowers(scene: _Scene) -> None:
    count = scene.rng.randint(5, 12)
    size = min(scene.width, scene.height) / 45
    for _ in range(count):
        x = scene.rng.uniform(0.02, 0.98) * scene.width
        y = scene.rng.uniform(scene.land + size * 3, scene.height - size)
        petal = scene.accent or scene.rng.choice(
            [(240, 90, 120), (250, 200, 60), (180, 110, 220), (250, 250, 250)]
        )
        scene.draw.line(
            [(x, y), (x, y + size * 2.5)], fill=(40, 120, 40), width=max(1, round(size / 4))
        )
        for i in range(5):
            angle = i * 2 * math.pi / 5
            px, py = x + math.cos(angle) * size, y + math.sin(angle) * size
            scene.draw.ellipse(
                [px - size * 0.6, py - size * 0.6, px + size * 0.6, py + size * 0.6], fill=petal
            )
        scene.draw.ellipse(
            [x - size * 0.5, y - size * 0.5, x + size * 0.5, y + size * 0.5], fill=(250, 210, 60)
        )
    scene.elements.append("flowers")


def _bear(scene: _Scene) -> None:
    fur = scene.accent or (150, 100, 60)
    light = _mix(fur, (255, 240, 220), 0.5)
    unit = scene.height * 0.1
    x = scene.width * scene.rng.uniform(0.45, 0.7)
    base = scene.height - unit * 0.4

    def oval(cx: float, cy: float, rx: float, ry: float, colour: RGB) -> None:
        scene.draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour, outline=(60, 40, 25))

    body_y = base - unit * 1.3
    oval(x - unit * 0.8, base - unit * 0.3, unit * 0.45, unit * 0.35, fur)
    oval(x + unit * 0.8, base - unit * 0.3, unit * 0.45, unit * 0.35, fur)
    oval(x, body_y, unit * 1.0, unit * 1.2, fur)
    oval(x, body_y + unit * 0.2, unit * 0.6, unit * 0.7, light)
    oval(x - unit * 1.0, body_y - unit * 0.2, unit * 0.35, unit * 0.6, fur)
    oval(x + unit * 1.0, body_y - unit * 0.2, unit * 0.35, unit * 0.6, fur)
    head_y = body_y - unit * 1.8
    oval(x - unit * 0.65, head_y - unit * 0.65, unit * 0.35, unit * 0.35, fur)
    oval(x + unit * 0.65, head_y - unit * 0.65, unit * 0.35, unit * 0.35, fur)
    oval(x, head_y, unit * 0.85, unit * 0.8, fur)
    oval(x, head_y + unit * 0.3, unit * 0.38, unit * 0.28, light)
    oval(x, head_y + unit * 0.2, unit * 0.12, unit * 0.09, (40, 25, 20))
    oval(x - unit * 0.32, head_y - unit * 0.15, unit * 0.09, unit * 0.09, (30, 20, 15))
    oval(x + unit * 0.32, head_y - unit * 0.15, unit * 0.09, unit * 0.09, (30, 20, 15))
    scene.elements.append("teddy bear")


def _abstract(scene: _Scene, words: list[str]) -> None:
    """Shapes whose colour, place and size come from each word's digest."""
    unit = min(scene.width, scene.height)
    for word in dict.fromkeys(words[:16]):
        digest = hashlib.sha256(word.encode()).digest()
        colour = (64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192)
        x = digest[3] / 255 * scene.width
        y = digest[4] / 255 * scene.height
        r = unit * (0.04 + digest[5] / 255 * 0.12)
        if digest[6] % 2:
            scene.draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            scene.draw.rectangle([x - r, y - r * 0.7, x + r, y + r * 0.7], fill=colour)
    scene.elements.append("abstract shapes")


def _rain(scene: _Scene) -> None:
    length = scene.height / 25
    for _ in range(80):
        x = scene.rng.uniform(0, scene.width)
        y = scene.rng.uniform(0, scene.height)
        scene.draw.line([(x, y), (x - length * 0.2, y + length)], fill=(170, 190, 230), width=1)
    scene.elements.append("rain")


def _snowfall(scene: _Scene) -> None:
    r = max(1.0, min(scene.width, scene.height) / 180)
    for _ in range(90):
        x = scene.rng.uniform(0, scene.width)
        y = scene.rng.uniform(0, scene.height)
        scene.draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
    scene.elements.append("snowfall")


def _caption(image: Image.Image, scene: _Scene, prompt: str, band: int) -> None:
    font_module = require("PIL.ImageFont", "image", "drawing a procedural illustration")
    draw = scene.draw
    top = image.height - band
    draw.rectangle([0, top, image.width, image.height], fill=(30, 30, 40))
    size = max(9, band // 3)
    font = font_module.load_default(size=size)
    margin = max(4, band // 6)
    lines = _wrap(
        " ".join(prompt.split()),
        lambda text: draw.textlength(text, font=font),
        image.width - 2 * margin,
        2,
    )
    for i, line in enumerate(lines):
        draw.text((margin, top + margin + i * (size + 2)), line, fill=(245, 245, 245), font=font)

    label = "procedural illustration"
    small = font_module.load_default(size=max(8, band // 5))
    left, upper, right, lower = draw.textbbox((margin, margin), label, font=small)
    draw.rectangle([left - 3, upper - 3, right + 3, lower + 3], fill=(255, 255, 255))
    draw.text((margin, margin), label, fill=(60, 60, 70), font=small)


def _wrap(text: str, measure: Callable[[str], float], width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines``; a cut line ends in "..."."""
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    cut = len(lines) > max_lines
    lines = lines[:max_lines]
    return [
        _fit(line, measure, width, force=cut and i == len(lines) - 1)
        for i, line in enumerate(lines)
    ]


def _fit(line: str, measure: Callable[[str], float], width: float, force: bool) -> str:
    if not force and measure(line) <= width:
        return line
    while line and measure(line + "...") > width:
        line = line[:-1]
    return line.rstrip() + "..."


_SUBJECTS: dict[str, Callable[[_Scene], None]] = {
    "house": _house,
    "trees": _trees,
    "flowers": _flowers,
    "bear": _bear,
}
