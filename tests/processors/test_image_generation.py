"""IMAGE_GENERATION: the offline procedural illustration, and the OpenAI images provider
against a real aiohttp server on 127.0.0.1 speaking /v1/images/generations."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from async_processor import (
    InvalidInputError,
    ProcessingType,
    ProviderError,
    ProviderRequestError,
    Settings,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import image_generation
from async_processor.processors.settings import ProviderSettings

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("openai")


def generate(payload: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    task = create_task(ProcessingType.IMAGE_GENERATION, payload)
    return image_generation.process(task, settings or Settings())


def decode(data: bytes) -> Any:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- procedural ---------------------------------------------------------------------------


def test_procedural_image_is_a_labelled_png_of_the_asked_size() -> None:
    result = generate({"prompt": "A teddy bear under the night sky with stars", "size": "320x240"})
    image = decode(result["image_data"])
    assert (image.format, image.size, image.mode) == ("PNG", (320, 240), "RGB")
    assert (result["width"], result["height"]) == (320, 240)
    assert result["provider"] == "procedural" and result["format"] == "PNG"
    assert "not the work of an image model" in result["note"]
    assert {"night sky", "stars", "moon", "teddy bear"} <= set(result["elements"])
    # The night sky is dark at the top, the caption band is dark grey, the label light.
    top = image.getpixel((image.width // 2, 80))
    assert sum(top) < 200
    assert image.getpixel((2, image.height - 2)) == (30, 30, 40)
    assert sum(image.getpixel((5, 5))) > 700


def test_words_choose_the_scene_and_the_same_prompt_gives_the_same_bytes() -> None:
    day = generate({"prompt": "a red house with trees and flowers on a sunny day"})
    assert decode(day["image_data"]).size == (512, 512)
    assert {"day sky", "sun", "house", "flowers"} <= set(day["elements"])
    assert any(element.endswith("trees") for element in day["elements"])
    sky = decode(day["image_data"]).getpixel((256, 120))
    assert sky[2] > sky[0]  # a blue day sky
    again = generate({"prompt": "a red house with trees and flowers on a sunny day"})
    assert again["image_data"] == day["image_data"]
    other = generate({"prompt": "a red house with trees and flowers on a sunny day!"})
    assert other["image_data"] != day["image_data"]
    beach = generate({"prompt": "Snowy mountains above the sea in winter, with rain clouds"})
    assert {"mountains", "sea", "snowy ground", "snowfall", "rain"} <= set(beach["elements"])
    plain = generate({"prompt": "quantum entanglement explained simply"})
    assert "abstract shapes" in plain["elements"]


def test_a_long_prompt_is_cut_in_the_caption_not_refused() -> None:
    result = generate({"prompt": "a bear " * 400, "size": "256x128"})
    assert decode(result["image_data"]).size == (256, 128)
    assert result["prompt"].startswith("a bear a bear")


def test_the_prompt_may_come_from_a_dependency() -> None:
    task = create_task(ProcessingType.IMAGE_GENERATION, {"size": "128x128"}, depends_on=["said"])
    task.dependency_results = {"said": {"text": "draw me a rainbow"}}
    result = image_generation.process(task, Settings())
    assert result["prompt"] == "draw me a rainbow" and "rainbow" in result["elements"]


def test_a_large_image_is_quick() -> None:
    started = time.perf_counter()
    result = generate({"prompt": "a teddy bear in the forest by the lake", "size": "1024x1024"})
    assert decode(result["image_data"]).size == (1024, 1024)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "needs payload\\['prompt'\\]"),
        ({"prompt": "   "}, "needs payload\\['prompt'\\]"),
        ({"prompt": 42}, "must be a string"),
        ({"prompt": "x" * 4001}, "keep it under 4000"),
        ({"prompt": "a bear", "size": "big"}, "size must be a string 'WIDTHxHEIGHT'"),
        ({"prompt": "a bear", "size": [512, 512]}, "size must be a string"),
        ({"prompt": "a bear", "size": "10x10"}, "each side must be from 64 to 4096"),
        ({"prompt": "a bear", "size": "5000x64"}, "each side must be from 64 to 4096"),
    ],
)
def test_bad_payloads_are_refused(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        generate(payload)


def test_size_is_held_to_the_pixel_limit() -> None:
    with pytest.raises(InvalidInputError, match="over the limit of 100000"):
        generate({"prompt": "a bear", "size": "512x512"}, Settings(max_image_pixels=100_000))


# -- the OpenAI images provider -----------------------------------------------------------


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class ImagesServer:
    """An OpenAI-compatible ``POST /v1/images/generations``; ``script`` says how to answer
    each request in turn (then "ok")."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.json()))
        action = self.script.pop(0) if self.script else "ok"
        if action == "slow":
            await asyncio.sleep(1.0)
        if action == "429":
            return web.json_response(
                {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                status=429,
                headers={"retry-after-ms": "10"},
            )
        if action == "500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if action == "400":
            return web.json_response(
                {"error": {"message": "Your prompt was rejected", "type": "invalid_request"}},
                status=400,
            )
        if action == "no-b64":
            return web.json_response({"created": 1, "data": [{"url": "http://x/y.png"}]})
        if action == "not-base64":
            return web.json_response({"created": 1, "data": [{"b64_json": "%%% not base64"}]})
        if action == "not-an-image":
            encoded = base64.b64encode(b"hello, not a png").decode()
            return web.json_response({"created": 1, "data": [{"b64_json": encoded}]})
        if action == "text":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        return web.json_response(
            {
                "created": 1,
                "data": [
                    {
                        "b64_json": base64.b64encode(png_bytes()).decode(),
                        "revised_prompt": "a friendly bear",
                    }
                ],
            }
        )

    def settings(self, **options: Any) -> Settings:
        provider = ProviderSettings(
            "openai",
            base_url=f"http://127.0.0.1:{self.port}/v1",
            api_key="test-key",
            model="image-model-1",
            **options,
        )
        return Settings(images=provider, egress_allow=("127.0.0.1",))  # the local server


@pytest.fixture
async def server() -> AsyncIterator[ImagesServer]:
    fake = ImagesServer()
    app = web.Application()
    app.router.add_post("/v1/images/generations", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    yield fake
    await runner.cleanup()


async def generate_off_loop(payload: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The sync SDK call in a thread, so the server in this loop can answer."""
    return await asyncio.to_thread(generate, payload, settings)


async def test_provider_success_decodes_the_b64_image(server: ImagesServer) -> None:
    result = await generate_off_loop({"prompt": "a bear", "size": "256x256"}, server.settings())
    assert result["provider"] == "openai"
    assert (result["width"], result["height"], result["format"]) == (64, 48, "PNG")
    assert decode(result["image_data"]).getpixel((3, 3)) == (10, 200, 30)
    assert result["revised_prompt"] == "a friendly bear"
    headers, body = server.requests[0]
    assert headers["Authorization"] == "Bearer test-key"
    assert body == {
        "prompt": "a bear",
        "size": "256x256",
        "n": 1,
        "response_format": "b64_json",
        "model": "image-model-1",
    }


async def test_a_429_is_retried_by_the_client_then_succeeds(server: ImagesServer) -> None:
    server.script = ["429"]
    result = await generate_off_loop({"prompt": "a bear"}, server.settings(max_retries=2))
    assert result["width"] == 64
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        ("429", ProviderError, "HTTP 429"),
        ("500", ProviderError, "HTTP 500"),
        ("400", ProviderRequestError, "HTTP 400$"),  # the status, never the body
        ("no-b64", ProviderRequestError, "no base64 image"),
        ("not-base64", ProviderRequestError, "no base64 image"),
        ("not-an-image", ProviderRequestError, "16 bytes that are not an image"),
        ("text", ProviderRequestError, "no base64 image"),
        ("slow", ProviderError, "did not answer within 0.2 s"),
    ],
)
async def test_provider_failures_map_to_retryable_or_not(
    server: ImagesServer, action: str, error: type[Exception], message: str
) -> None:
    server.script = [action]
    settings = server.settings(max_retries=0, timeout=0.2)
    with pytest.raises(error, match=message):
        await generate_off_loop({"prompt": "a bear"}, settings)


async def test_no_server_listening_is_a_provider_error() -> None:
    settings = Settings(
        images=ProviderSettings(
            "openai", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=2
        ),
        egress_allow=("127.0.0.1",),
    )
    with pytest.raises(ProviderError, match="cannot reach the images provider"):
        await generate_off_loop({"prompt": "a bear"}, settings)


async def test_through_the_processor(server: ImagesServer) -> None:
    offline = await create_processor(max_process_workers=0, settings=Settings())
    try:
        task = create_task(ProcessingType.IMAGE_GENERATION, {"prompt": "a bear", "size": "96x64"})
        result = await offline.wait_for_task(await offline.submit_task(task), timeout=30)
        assert result.status is TaskStatus.COMPLETED
        assert result.result["provider"] == "procedural"
        assert decode(result.result["image_data"]).size == (96, 64)
    finally:
        await offline.shutdown()

    processor = await create_processor(
        max_process_workers=0, settings=server.settings(max_retries=0, timeout=5)
    )
    try:
        # The client does not retry (max_retries=0): the 500 fails the first attempt with a
        # ProviderError, which the processor retries under the task's max_retries.
        server.script = ["500"]
        retried = create_task(ProcessingType.IMAGE_GENERATION, {"prompt": "a bear"}, max_retries=1)
        done = await processor.wait_for_task(await processor.submit_task(retried), timeout=30)
        assert done.status is TaskStatus.COMPLETED, done.error
        assert done.attempts == 2 and done.result["provider"] == "openai"

        server.script = ["400"]
        refused = create_task(ProcessingType.IMAGE_GENERATION, {"prompt": "a bear"}, max_retries=3)
        failed = await processor.wait_for_task(await processor.submit_task(refused), timeout=30)
        assert failed.status is TaskStatus.FAILED and failed.attempts == 1
        assert failed.error is not None
        assert failed.error.startswith(
            "ProviderRequestError: the images provider answered HTTP 400"
        )

        server.script = ["500"]
        broken = create_task(ProcessingType.IMAGE_GENERATION, {"prompt": "a bear"})
        failed = await processor.wait_for_task(await processor.submit_task(broken), timeout=30)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None and failed.error.startswith("ProviderError: ")

        after = create_task(ProcessingType.IMAGE_GENERATION, {"prompt": "a bear"})
        ok = await processor.wait_for_task(await processor.submit_task(after), timeout=30)
        assert ok.status is TaskStatus.COMPLETED
    finally:
        await processor.shutdown()
