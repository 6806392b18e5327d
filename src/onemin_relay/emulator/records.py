"""The ``aiRecord`` envelope of §4.1, with the record-level fault knobs applied."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from onemin_relay.emulator.catalog import ModelEntry
from onemin_relay.emulator.faults import Faults
from onemin_relay.emulator.replies import Usage


class Metadata(msgspec.Struct, rename="camel", omit_defaults=True):
    """Usage as the live service reports it; ``finishReason`` is left out when ``None``."""

    credit: int
    input_token: int
    output_token: int
    total_token: int
    prompt_token: int
    input_credit: int
    output_credit: int
    execution_time: float
    finish_reason: str | None = None


class AiRecordDetail(msgspec.Struct, rename="camel"):
    prompt_object: dict[str, Any]
    result_object: list[str]


class ModelDetail(msgspec.Struct):
    name: str
    provider: str


class AiRecord(msgspec.Struct, rename="camel"):
    uuid: str
    user_id: str
    team_id: str
    model: str
    type: str
    metadata: Metadata | None
    rating: None
    feedback: None
    conversation_id: str | None
    status: Literal["SUCCESS", "FAILED"]
    created_at: str
    ai_record_detail: AiRecordDetail
    model_detail: ModelDetail


def iso_now() -> str:
    """The current UTC time the way 1min.ai writes it: ``2024-09-30T03:47:29.738Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _account_id(api_key: str, kind: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"1min.ai/{kind}/{api_key}"))


def _metadata(usage: Usage, faults: Faults, started: float) -> Metadata | None:
    if faults.no_metadata:
        return None
    scale = 0 if faults.zero_usage else 1
    return Metadata(
        credit=usage.credit,
        input_token=usage.input_token * scale,
        output_token=usage.output_token * scale,
        total_token=usage.total_token * scale,
        prompt_token=usage.prompt_token * scale,
        input_credit=usage.input_credit,
        output_credit=usage.output_credit,
        execution_time=round(time.monotonic() - started, 3),
        finish_reason=None if faults.omit_finish_reason else faults.finish_reason or "stop",
    )


def chat_record(
    *,
    api_key: str,
    model: ModelEntry,
    feature: str,
    prompt: str,
    result: str,
    usage: Usage,
    conversation_id: str | None,
    faults: Faults,
    started: float,
) -> AiRecord:
    """A finished chat record; ``record_failed`` makes it ``FAILED`` with no result."""
    return AiRecord(
        uuid=str(uuid.uuid4()),
        user_id=_account_id(api_key, "user"),
        team_id=_account_id(api_key, "team"),
        model=model.model_id,
        type=feature,
        metadata=_metadata(usage, faults, started),
        rating=None,
        feedback=None,
        conversation_id=conversation_id,
        status="FAILED" if faults.record_failed else "SUCCESS",
        created_at=iso_now(),
        ai_record_detail=AiRecordDetail(
            prompt_object={"prompt": prompt, "linkContentList": [], "searchContentList": []},
            result_object=[] if faults.record_failed else [result],
        ),
        model_detail=ModelDetail(name=model.model_id, provider=model.provider_label),
    )
