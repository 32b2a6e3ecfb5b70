"""Checks on what users type: items, scripts, file names, and HTCondor argument splitting.

Every checker collects all problems and raises one BatchValidationError, so the
user sees everything to fix at once.
"""

from __future__ import annotations

import re

from orchestration.batch.base import BatchValidationError

MAX_ITEMS = 20_000
MAX_ITEM_LENGTH = 200
MAX_SCRIPT_BYTES = 256 * 1024
MAX_LISTED = 10  # how many offending lines to name in one message

# Items end up in file names ($(arguments) in output patterns) and in argv.
_ITEM_OK = re.compile(r"[A-Za-z0-9._+,=:@-]+")
_ITEM_OK_SPACES = re.compile(r"[A-Za-z0-9._+,=:@ -]+")
_FILE_NAME_OK = re.compile(r"[A-Za-z0-9._+,=:@-]+")


def _lines_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_LISTED])
    more = f" and {len(numbers) - MAX_LISTED} more" if len(numbers) > MAX_LISTED else ""
    return f"{shown}{more}"


def validate_items(
    text: str,
    allow_duplicates: bool = False,
    max_items: int = MAX_ITEMS,
    allow_spaces: bool = False,
) -> list[str]:
    """Return the items of `text` (one per line, blank lines ignored) or raise with every problem."""
    problems: list[str] = []
    items: list[str] = []
    first_seen: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    bad_chars: dict[str, list[int]] = {}
    too_long: list[int] = []
    pattern = _ITEM_OK_SPACES if allow_spaces else _ITEM_OK
    for number, raw in enumerate(text.splitlines(), start=1):
        item = " ".join(raw.split()) if allow_spaces else raw.strip()
        if not item:
            continue
        items.append(item)
        if len(item) > MAX_ITEM_LENGTH:
            too_long.append(number)
        if not pattern.fullmatch(item) or item in (".", "..") or item.startswith("."):
            bad = sorted({c for c in item if not pattern.fullmatch(c)}) or ["a leading '.'"]
            for c in bad:
                bad_chars.setdefault(_describe_char(c), []).append(number)
        if item in first_seen:
            duplicates.setdefault(item, [first_seen[item]]).append(number)
        else:
            first_seen[item] = number
    if not items:
        problems.append("There are no items: give one item per line.")
    if len(items) > max_items:
        problems.append(f"There are {len(items)} items; the limit is {max_items}.")
    if too_long:
        problems.append(f"Items longer than {MAX_ITEM_LENGTH} characters on line(s) {_lines_list(too_long)}.")
    for what, numbers in bad_chars.items():
        problems.append(
            f"Items may not contain {what} (they become part of file names): line(s) {_lines_list(numbers)}."
        )
    if duplicates and not allow_duplicates:
        listed = [f"'{item}' (lines {_lines_list(nums)})" for item, nums in list(duplicates.items())]
        more = f" and {len(listed) - MAX_LISTED} more" if len(listed) > MAX_LISTED else ""
        problems.append(f"Duplicate items: {', '.join(listed[:MAX_LISTED])}{more}.")
    if problems:
        raise BatchValidationError(problems)
    return items


def _describe_char(c: str) -> str:
    if c == " ":
        return "spaces (one argument per item)"
    if c.isspace():
        return "tabs or other white space"
    if not c.isprintable():
        return f"control character U+{ord(c):04X}"
    if len(c) > 1:
        return c
    return f"'{c}'"


def validate_script(text: str, max_bytes: int = MAX_SCRIPT_BYTES) -> str:
    """Return the script with Unix line ends, or raise with every problem found."""
    problems: list[str] = []
    if len(text.encode("utf-8", "surrogateescape")) > max_bytes:
        problems.append(f"The script is larger than {max_bytes // 1024} KiB.")
    normalised = text.replace("\r\n", "\n")
    if not normalised.strip():
        problems.append("The script is empty.")
    elif not normalised.startswith("#!"):
        problems.append(
            "The script must start with a shebang line such as #!/bin/bash, which names its interpreter."
        )
    elif not normalised.split("\n", 1)[0][2:].strip():
        problems.append("The shebang line (#!) names no interpreter.")
    if "\x00" in normalised:
        problems.append("The script contains NUL bytes; upload a text file.")
    if "\r" in normalised:
        problems.append("The script contains carriage returns (\\r) outside Windows line ends.")
    if problems:
        raise BatchValidationError(problems)
    return normalised


def check_file_name(name: str, what: str) -> str | None:
    """Return a problem if `name` is not a plain file name (no directories), else None."""
    if not name:
        return f"{what} is empty."
    if name in (".", "..") or name.startswith("."):
        return f"{what} '{name}' may not start with '.'."
    if not _FILE_NAME_OK.fullmatch(name):
        bad = sorted({_describe_char(c) for c in name if not _FILE_NAME_OK.fullmatch(c)})
        return f"{what} '{name}' must be a plain file name; it contains {', '.join(bad)}."
    if len(name) > 255:
        return f"{what} is longer than 255 characters."
    return None


def split_arguments(text: str) -> list[str]:
    """Split an HTCondor `arguments` value into an argv list, as condor_submit does.

    New syntax: the whole value in double quotes; white space separates
    arguments; single quotes group; '' and "" stand for literal quotes.
    Old syntax: white space separates; \\" is a literal double quote.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _split_new_syntax(text[1:-1])
    return [word.replace('\\"', '"') for word in text.split()]


def _split_new_syntax(inner: str) -> list[str]:
    args: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == '"':
            if inner[i + 1 : i + 2] != '"':
                raise BatchValidationError(['arguments: a double quote inside "..." must be doubled ("").'])
            current.append('"')
            in_word = True
            i += 2
        elif c == "'":
            in_word = True
            i += 1
            while True:
                if i >= len(inner):
                    raise BatchValidationError(["arguments: a single quote is never closed."])
                if inner[i] == "'":
                    if inner[i + 1 : i + 2] == "'":
                        current.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                if inner[i] == '"' and inner[i + 1 : i + 2] == '"':
                    current.append('"')
                    i += 2
                    continue
                current.append(inner[i])
                i += 1
        elif c.isspace():
            if in_word:
                args.append("".join(current))
                current, in_word = [], False
            i += 1
        else:
            current.append(c)
            in_word = True
            i += 1
    if in_word:
        args.append("".join(current))
    return args
