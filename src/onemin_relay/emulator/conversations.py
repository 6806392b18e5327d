"""``POST /api/conversations``: server-side history that chat adds when given the uuid."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from aiohttp import web

from onemin_relay.emulator.bodies import convert, read_json
from onemin_relay.emulator.records import iso_now
from onemin_relay.emulator.respond import error_response, json_response
from onemin_relay.emulator.state import STATE, Conversation

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _ConversationBody(msgspec.Struct):
    type: NonEmpty
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=91)]
    model: NonEmpty


def _invalid(field: str, message: str) -> web.Response:
    details = [{"field": field, "message": message}]
    return error_response(
        400, "REQUEST_BODY_VALIDATION_FAILED", "Invalid request body", details=details
    )


async def create_conversation(request: web.Request) -> web.Response:
    body = convert(await read_json(request), _ConversationBody, _invalid)
    conversation = Conversation(
        uuid=str(uuid.uuid4()),
        title=body.title,
        type=body.type,
        model=body.model,
        created_at=iso_now(),
    )
    request.app[STATE].conversations[conversation.uuid] = conversation
    return json_response(
        {
            "conversation": {
                "uuid": conversation.uuid,
                "title": conversation.title,
                "type": conversation.type,
                "model": conversation.model,
                "status": "ACTIVE",
                "createdAt": conversation.created_at,
            }
        }
    )
