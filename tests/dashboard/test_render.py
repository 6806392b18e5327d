"""Rendering: autoescaping is on for every template, and bodies are made readable."""

from __future__ import annotations

from onemin_relay.dashboard.render import environment, pretty


def test_every_template_escapes_what_it_is_given() -> None:
    html = environment().from_string("<p>{{ text }}</p>").render(text="<script>x()</script>")
    assert html == "<p>&lt;script&gt;x()&lt;/script&gt;</p>"


def test_json_bodies_are_indented_and_anything_else_is_left_alone() -> None:
    assert pretty('{"a":[1,"<b>"]}') == '{\n  "a": [\n    1,\n    "<b>"\n  ]\n}'
    assert pretty('{"cut": "mid-bo') == '{"cut": "mid-bo'
    assert pretty("plain <text>") == "plain <text>"
