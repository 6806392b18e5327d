"""What the image and audio features share: the §4.1 record, stored outputs, §8 errors.

Outputs are stored under fresh keys ``<folder>/<YYYY_MM_DD_HH_MM_SS_mmm>_<6 digits>.<ext>``
(the live layout, e.g. ``images/2026_09_03_08_53_47_947_456329.png``) and served by the
asset host. A finished record carries a signed-looking ``temporaryUrl`` for the **first**
result only, both at the top level and under ``aiRecord`` (§4.1, §11). ``metadata`` carries
the call's ``credit`` (priced by ``billing``), which a successful call charges to the key.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from onemin_relay.emulator.bodies import Rejected
from onemin_relay.emulator.catalog import ModelEntry, usable_model
from onemin_relay.emulator.records import iso_now
from onemin_relay.emulator.respond import encode, error_response, json_response
from onemin_relay.emulator.state import CONFIG, FAULTS, STATE, EmulatorState

_SIGNED_QUERY = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800&X-Amz-SignedHeaders=host"

_MIMETYPES = {
    "png": "image/png",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
}


class FeatureBody(msgspec.Struct, rename="camel"):
    """The envelope of a feature call; each feature types its own ``promptObject``."""

    type: str
    model: str
    prompt_object: dict[str, Any]


def feature_model(body: FeatureBody) -> ModelEntry:
    """The ACTIVE entry serving ``body.model`` for ``body.type``, else 400 UNSUPPORTED_MODEL."""
    model = usable_model(body.type, body.model)
    if model is None:
        message = f"Model {body.model} is not supported"
        raise Rejected(error_response(400, "UNSUPPORTED_MODEL", message))
    return model


def missing_field(model: str, feature: str, field: str) -> Rejected:
    """The live ``MISSING_REQUIRED_FIELDS`` answer (§8)."""
    message = (
        f"Missing required fields for {model} model: {field}. "
        "Please provide all required parameters."
    )
    detail = f"Field '{field}' is required for {model} model with type {feature}"
    details = [{"field": field, "message": detail}]
    return Rejected(error_response(400, "MISSING_REQUIRED_FIELDS", message, details=details))


def provider_error(service: str, data: dict[str, Any], url: str) -> Rejected:
    """A provider rejecting a parameter: 400 ``EXTERNAL_API_RESPONSE_WITH_ERROR`` with the
    canned "busy" message and the real reason only in the string-encoded ``details`` (§8)."""
    message = (
        f"The {service} service is a bit busy right now or facing a temporary issue. "
        "Please try again shortly. We appreciate your patience!"
    )
    details = {"response": {"status": 400, "data": data}, "request": {"method": "post", "url": url}}
    body = {
        "errorCode": "EXTERNAL_API_RESPONSE_WITH_ERROR",
        "message": message,
        "context": {"service": service},
        "details": encode(details).decode(),
    }
    return Rejected(json_response(body, status=400))


def invalid_reference(field: str, value: object) -> Rejected:
    message = f"{field} must be the path of an uploaded asset, got {value!r}"
    return Rejected(error_response(400, "REQUEST_BODY_VALIDATION_FAILED", message))


def asset_base(request: web.Request) -> str:
    return (request.app[CONFIG].asset_base_url or str(request.url.origin())).rstrip("/")


def stored_key(request: web.Request, ref: object) -> str | None:
    """The asset key an ``imageUrl``/``audioUrl`` points at (a key or a URL on the asset host)."""
    if not isinstance(ref, str):
        return None
    base = asset_base(request) + "/"
    key = ref.removeprefix(base).split("?", 1)[0].lstrip("/")
    return key if key in request.app[STATE].assets else None


def store_output(state: EmulatorState, folder: str, extension: str, data: bytes) -> str:
    """Store a generated file under a fresh key and return the key."""
    mimetype = _MIMETYPES.get(extension, "application/octet-stream")
    now = datetime.now(UTC)
    stamp = now.strftime("%Y_%m_%d_%H_%M_%S_") + f"{now.microsecond // 1000:03d}"
    while True:
        key = f"{folder}/{stamp}_{random.randrange(10**6):06d}.{extension}"
        if key not in state.assets:
            state.store_asset(key, mimetype, data)
            return key


def _account_id(api_key: str, kind: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"1min.ai/{kind}/{api_key}"))


def feature_response(
    request: web.Request,
    body: FeatureBody,
    model: ModelEntry,
    results: list[str],
    *,
    metadata: dict[str, Any],
    credit: int,
    stored: bool,
) -> web.Response:
    """The finished record; ``stored`` results are asset keys and get a ``temporaryUrl``.

    The ``record_failed`` knob answers HTTP 200 with ``status: FAILED`` and no result, and
    charges nothing; otherwise ``credit`` is added to the key's used credit.
    """
    failed = request[FAULTS].record_failed
    api_key = request.headers.get("API-KEY", "")
    if not failed:
        request.app[STATE].accounts.charge(api_key, credit)
    record: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "userId": _account_id(api_key, "user"),
        "teamId": _account_id(api_key, "team"),
        "model": model.model_id,
        "type": body.type,
        "metadata": {**metadata, "credit": credit},
        "rating": None,
        "feedback": None,
        "conversationId": None,
        "status": "FAILED" if failed else "SUCCESS",
        "createdAt": iso_now(),
        "aiRecordDetail": {
            "promptObject": body.prompt_object,
            "resultObject": [] if failed else results,
            "responseObject": {},
        },
        "modelDetail": {"name": model.model_id, "provider": model.provider_label},
    }
    envelope: dict[str, Any] = {"aiRecord": record}
    if stored and results and not failed:
        signature = hashlib.sha256(results[0].encode()).hexdigest()
        url = f"{asset_base(request)}/{results[0]}?{_SIGNED_QUERY}&X-Amz-Signature={signature}"
        record["temporaryUrl"] = envelope["temporaryUrl"] = url
    return json_response(envelope)
