"""Images in chat: every message's images uploaded as assets, URLs fetched behind the SSRF guard."""

from __future__ import annotations

import base64

import openai
import pytest

from tests.conftest import PNG_1X1, Stack

DATA_URI = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()


def image_message(text: str, url: str) -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


def uploads(stack: Stack, api_key: str) -> list[dict]:
    return [r for r in stack.upstream_requests(api_key) if r["path"] == "/api/assets"]


def test_images_in_every_message_are_uploaded(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            image_message("first picture", DATA_URI),
            {"role": "assistant", "content": "nice"},
            image_message("second picture", DATA_URI),
        ],
    )
    assert completion.choices[0].message.content.endswith("[images: 2]")
    sent = uploads(stack, api_key)
    assert len(sent) == 2, "images of earlier messages are uploaded too, not only the last"
    assert all(u["body"]["filename"].endswith(".png") for u in sent), "uploads need an extension"
    (chat,) = stack.chat_requests(api_key)
    assert len(chat["body"]["promptObject"]["attachments"]["images"]) == 2
    assert "[image 1]" in chat["body"]["promptObject"]["prompt"]


def test_single_message_with_image_keeps_prompt_verbatim(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    client.chat.completions.create(
        model="gpt-4o", messages=[image_message("what is it?", DATA_URI)]
    )
    (chat,) = stack.chat_requests(api_key)
    assert chat["body"]["promptObject"]["prompt"] == "what is it?"


def test_https_image_is_fetched_and_uploaded(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    url = f"{stack.images_url}/cat.png"
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[image_message("see", url)]
    )
    assert completion.choices[0].message.content == "Echo: see [images: 1]"
    assert uploads(stack, api_key)[0]["body"]["size"] == len(PNG_1X1)


def test_image_on_the_asset_host_is_attached_by_path(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    url = f"{stack.settings.asset_base}/images/2026_01_01_00_00_00_000_cat.png"
    client.chat.completions.create(model="gpt-4o", messages=[image_message("see", url)])
    assert uploads(stack, api_key) == [], "an asset 1min.ai already holds is not re-uploaded"
    (chat,) = stack.chat_requests(api_key)
    assert chat["body"]["promptObject"]["attachments"]["images"] == [
        "images/2026_01_01_00_00_00_000_cat.png"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/cat.png",  # resolves to loopback
        "https://intranet.test/cat.png",  # resolves to a private address
        "https://127.0.0.1/cat.png",  # loopback literal
        "https://[::ffff:127.0.0.1]/cat.png",  # IPv4-mapped loopback
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "http://example.com/cat.png",  # plain http to an untrusted host
        "ftp://example.com/cat.png",
    ],
)
def test_ssrf_guard_refuses_private_targets(
    client: openai.OpenAI, stack: Stack, api_key: str, url: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[image_message("x", url)])
    assert caught.value.param == "image_url"
    assert stack.chat_requests(api_key) == [], "nothing is sent upstream for a refused image"


def test_redirect_to_private_address_is_refused(client: openai.OpenAI, stack: Stack) -> None:
    url = f"{stack.images_url}/redirect?to=https://evil.test/cat.png"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[image_message("x", url)])
    assert "private" in caught.value.message


def test_oversized_image_is_413(client: openai.OpenAI, stack: Stack) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[image_message("x", f"{stack.images_url}/big.png")]
        )
    assert caught.value.status_code == 413


def test_url_that_is_not_an_image_is_400(client: openai.OpenAI, stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4o", messages=[image_message("x", f"{stack.images_url}/page.html")]
        )


def test_invalid_base64_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4o", messages=[image_message("x", "data:image/png;base64,@@@")]
        )


def test_image_for_text_only_model_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="deepseek-chat", messages=[image_message("x", DATA_URI)]
        )
    assert "images" in caught.value.message


def test_pdf_file_part_is_uploaded_and_attached_by_uuid(
    client: openai.OpenAI, stack: Stack, api_key: str
) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "summarise"},
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": f"data:application/pdf;base64,{pdf}",
                        },
                    },
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "Echo: summarise [files: 1]"
    (upload,) = uploads(stack, api_key)
    assert upload["body"]["filename"] == "report.pdf"
