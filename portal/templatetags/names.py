"""File names as the storage pages show them: characters that hide or reorder text made visible.

A name made outside the portal (by a job, in VOSpace, in a local folder) may hold a line feed, a tab
or a right-to-left override; new names may not (orchestration.storage.base.check_new_name). Shown as
they are, such names read as another name or break the line. They are shown as escapes instead:
``a\\nb``, the escape marked and titled with the character's name. Paths and links keep the real name.
"""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString

from orchestration.storage.base import hidden_character

register = template.Library()

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def plain_name(name: str) -> str:
    """The name as text, each hidden character written as its escape (for messages and page titles)."""
    return "".join(_escape(c) if hidden_character(c) else c for c in name)


@register.filter
def shown_name(name: str) -> SafeString:
    """The name as HTML, each hidden character as a marked escape titled with its code point."""
    if hidden_character(name) is None:
        return conditional_escape(name)
    return format_html_join("", "{}", ((_shown(c),) for c in name))


def _shown(char: str) -> str:
    label = hidden_character(char)
    if label is None:
        return char
    return format_html('<span class="name-escape" title="{}">{}</span>', label, _escape(char))


@register.filter(name="plain_name")
def plain_name_filter(name: str) -> str:
    return plain_name(name)
