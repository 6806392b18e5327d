"""Images through the official openai SDK: generations, variations and edits, on the live stack."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import openai
import pytest

from tests.conftest import PNG_1X1, Stack


def features(stack: Stack, api_key: str) -> list[dict[str, Any]]:
    return [r for r in stack.upstream_requests(api_key) if r["path"] == "/api/features"]


def uploads(stack: Stack, api_key: str) -> list[dict[str, Any]]:
    return [r for r in stack.upstream_requests(api_key) if r["path"] == "/api/assets"]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def emulator_image(stack: Stack, body: dict[str, Any]) -> bytes:
    """The bytes the emulator serves for the first image of ``body``, asked of it directly."""
    request = urllib.request.Request(
        f"{stack.emulator_url}/api/features",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "API-KEY": "oracle-key"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        record = json.loads(response.read())["aiRecord"]
    return fetch(f"{stack.emulator_url}/{record['aiRecordDetail']['resultObject'][0]}")


def test_url_format_gives_absolute_urls_on_the_asset_host(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    result = client.images.generate(
        model="dall-e-3", prompt="a lighthouse", size="1792x1024", response_format="url"
    )
    (image,) = result.data or []
    assert image.url is not None and image.url.startswith(f"{stack.emulator_url}/images/")
    assert fetch(image.url).startswith(b"\x89PNG"), "the URL is fetchable, not a bucket path"
    assert image.b64_json is None and image.revised_prompt is None
    (call,) = features(stack, api_key)
    assert call["body"] == {
        "type": "IMAGE_GENERATOR",
        "model": "dall-e-3",
        "promptObject": {
            "prompt": "a lighthouse",
            "size": "1792x1024",
            "n": 1,
            "quality": "standard",
        },
    }


def test_b64_json_decodes_to_the_emulators_image(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    result = client.images.generate(
        model="dall-e-2", prompt="a red fox", response_format="b64_json"
    )
    (image,) = result.data or []
    assert image.url is None and image.b64_json is not None
    (call,) = features(stack, api_key)
    expected = emulator_image(stack, call["body"])
    assert base64.b64decode(image.b64_json) == expected


def test_gpt_image_without_quality_gets_a_default_and_base64(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    result = client.images.generate(model="gpt-image-1-mini", prompt="a cat")
    (image,) = result.data or []
    assert image.b64_json is not None, "GPT image models answer base64 by default, as OpenAI's"
    assert base64.b64decode(image.b64_json).startswith(b"\x89PNG")
    (call,) = features(stack, api_key)
    assert call["body"]["promptObject"]["quality"] == "low"


def test_no_model_means_gpt_image_1_mini(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    client.images.generate(prompt="a cat", response_format="url")
    (call,) = features(stack, api_key)
    assert call["body"]["model"] == "gpt-image-1-mini"


def test_dall_e_3_n_is_honoured_with_one_call_per_image(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    result = client.images.generate(model="dall-e-3", prompt="a boat", n=3)
    urls = [image.url for image in result.data or []]
    assert len(urls) == 3 and len(set(urls)) == 3
    calls = features(stack, api_key)
    assert len(calls) == 3 and all(c["body"]["promptObject"]["n"] == 1 for c in calls)


@pytest.mark.parametrize(("n", "calls"), [(2, 1), (5, 2)])
def test_midjourney_batches_of_four_are_trimmed_to_n(
    client: openai.OpenAI, stack: Stack, api_key: str, n: int, calls: int
) -> None:
    result = client.images.generate(model="midjourney", prompt="a castle", n=n)
    assert len(result.data or []) == n
    assert len(features(stack, api_key)) == calls


def test_flux_gets_the_nearest_aspect_ratio(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    client.images.generate(model="black-forest-labs/flux-1.1-pro", prompt="x", size="1792x1024")
    (call,) = features(stack, api_key)
    assert call["body"]["promptObject"] == {"prompt": "x", "aspect_ratio": "16:9"}


def test_unsupported_size_is_a_400_naming_size(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-3", prompt="x", size="512x512")
    assert caught.value.body["param"] == "size"
    assert "1024x1792" in caught.value.body["message"], "the supported sizes are listed"
    assert features(stack, api_key) == [], "nothing is billed for a refused size"


def test_disabled_model_is_404(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model="black-forest-labs/flux-schnell", prompt="x")
    assert caught.value.body["code"] == "model_not_found"
    assert features(stack, api_key) == []


def test_chat_model_is_not_an_image_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gpt-4o", prompt="x")
    assert caught.value.body["code"] == "model_not_supported"


def test_failed_upstream_record_is_a_502(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, record_failed=True)
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.generate(model="dall-e-3", prompt="x")
    assert caught.value.status_code == 502


def test_variation_uploads_the_image_and_passes_its_path(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    with pytest.deprecated_call():  # the SDK marks the endpoint retired at OpenAI
        result = client.images.create_variation(
            image=("cat.png", PNG_1X1, "image/png"), n=2, size="512x512"
        )
    assert len(result.data or []) == 2
    (upload,) = uploads(stack, api_key)
    assert upload["body"]["filename"] == "cat.png" and upload["body"]["size"] == len(PNG_1X1)
    (call,) = features(stack, api_key)
    prompt = call["body"]["promptObject"]
    assert call["body"]["type"] == "IMAGE_VARIATOR" and call["body"]["model"] == "dall-e-2"
    assert prompt["imageUrl"].startswith("images/") and prompt["imageUrl"].endswith("_cat.png")
    assert (prompt["n"], prompt["size"]) == (2, "512x512")


def test_variation_of_a_non_image_uploads_nothing(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    with pytest.deprecated_call(), pytest.raises(openai.BadRequestError) as caught:
        client.images.create_variation(image=("cat.png", b"not an image", "image/png"))
    assert caught.value.body["param"] == "image"
    assert stack.upstream_requests(api_key) == []


def test_edits_are_a_clear_404(client: openai.OpenAI, stack: Stack, api_key: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.edit(image=("cat.png", PNG_1X1, "image/png"), prompt="add a hat")
    assert "IMAGE_EDITOR" in caught.value.body["message"]
    assert stack.upstream_requests(api_key) == []


def test_routes_also_answer_without_the_v1_prefix(stack: Stack, api_key: str) -> None:
    with openai.OpenAI(base_url=stack.relay_url, api_key=api_key, max_retries=0) as bare:
        result = bare.images.generate(model="dall-e-2", prompt="x", response_format="url")
    assert len(result.data or []) == 1
