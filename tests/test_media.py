"""The SSRF guard's address rules and data: URI decoding."""

from __future__ import annotations

import base64

import pytest

from onemin_relay.core.errors import InvalidRequest, PayloadTooLarge
from onemin_relay.media import decode_data_uri, is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "not-an-ip",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address)


def test_data_uri_decoded_with_its_media_type() -> None:
    media = decode_data_uri("data:image/webp;base64," + base64.b64encode(b"RIFF").decode(), 100)
    assert media.media_type == "image/webp"
    assert media.data == b"RIFF"


@pytest.mark.parametrize("uri", ["data:image/png,rawbytes", "data:image/png;base64,!!", "nope"])
def test_malformed_data_uri_is_400(uri: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_data_uri(uri, 100)


def test_data_uri_over_the_cap_is_413_without_decoding() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_data_uri("data:image/png;base64," + "A" * 1000, 100)
