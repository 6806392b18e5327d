"""Hostile query parameters on the admin API's trace listings: digits that are not ASCII
(``²``, ``٣``) pass ``str.isdigit`` yet are no number a client meant; each is a 400 naming
the parameter, never a 500."""

from __future__ import annotations

import pytest

from tests.admin.conftest import Relay


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/admin/v1/conversations?limit=%C2%B2", "limit"),
        ("/admin/v1/requests?limit=%D9%A3", "limit"),
        ("/admin/v1/requests?status=%C2%B2%C2%B2%C2%B2", "status"),
        ("/admin/v1/conversations?status=%D9%A4%D9%A0%D9%A4", "status"),
    ],
)
def test_non_ascii_digits_are_400_naming_the_parameter(admin: Relay, path: str, param: str) -> None:
    status, body = admin.call("GET", path)
    assert status == 400, body
    assert body["error"]["param"] == param
