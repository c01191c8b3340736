"""The ``origin`` remote's URL, read from a git config file, without credentials."""

from __future__ import annotations

from collections.abc import Iterator

# Escape sequences that git accepts in a quoted or unquoted config value.
_VALUE_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", '"': '"', "\\": "\\"}
_COMMENT_STARTS = ("#", ";")


def origin_url(config_text: str) -> str | None:
    """Return the first ``remote.origin.url`` of a git config file, or None.

    The first URL is the one git fetches from and ``git remote get-url origin``
    prints. ``url.<base>.insteadOf`` rewrites are not applied, so the URL is
    the one written in the file. A malformed file returns None.
    """
    # NOTE: [include] and [includeIf] sections are not followed, so a URL set
    # only in an included file is not found.
    try:
        for section, name, value in _variables(config_text):
            if section == "remote.origin" and name == "url" and value:
                return value
    except ValueError:
        return None
    return None


def strip_credentials(url: str) -> str:
    """Remove the user name and password from a remote URL.

    Git removes the same part from the URLs that it prints
    (``transport_anonymize_url`` in git's transport.c). A user name alone is
    removed too, because HTTPS remotes often carry an access token there.
    Local paths are returned unchanged, even when they contain ``@``.
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        authority, slash, path = rest.partition("/")
        _, at_sign, host = authority.rpartition("@")
        return f"{scheme}://{host}{slash}{path}" if at_sign else url

    # Without a scheme, git reads "[user@]host:path" as SSH when a colon comes
    # before the first slash. Anything else is a local path.
    head = url.split("/", 1)[0]
    user_end = head.rfind("@")
    if user_end >= 0 and ":" in head[user_end + 1 :]:
        return url[user_end + 1 :]
    return url


def _variables(text: str) -> Iterator[tuple[str, str, str | None]]:
    """Yield ``(section, name, value)`` for each variable of a git config file.

    Section and variable names are lowercased. A subsection keeps its case, as
    in ``remote.origin``. A variable without ``=`` has the value None.
    Raises ValueError on a line that git would reject.
    """
    section = ""
    lines = iter(text.splitlines())
    for line in lines:
        rest = line.strip()
        if rest.startswith("["):
            section, rest = _section_header(rest)
        if not rest or rest.startswith(_COMMENT_STARTS):
            continue
        name, equals, raw_value = rest.partition("=")
        name = name.strip().lower()
        if not name or not (name[0].isalpha() and name.replace("-", "").isalnum()):
            raise ValueError(f"invalid config line {line!r}")
        value = _value(raw_value, lines) if equals else None
        yield section, name, value


def _section_header(text: str) -> tuple[str, str]:
    """Parse ``[name "subsection"]`` or ``[name.subsection]`` at the start of text.

    Returns the section key and the text after the closing bracket, where git
    allows a variable on the same line.
    """
    name_end = 1
    while name_end < len(text) and text[name_end] not in ' \t"]':
        name_end += 1
    name = text[1:name_end].lower()
    rest = text[name_end:].lstrip(" \t")
    if rest.startswith("]"):
        # The deprecated [name.subsection] form compares case-insensitively.
        return name, rest[1:].strip()
    if not rest.startswith('"'):
        raise ValueError(f"invalid section header {text!r}")

    subsection: list[str] = []
    index = 1
    while index < len(rest) and rest[index] != '"':
        if rest[index] == "\\":
            index += 1
            if index == len(rest):
                break
        subsection.append(rest[index])
        index += 1
    if not rest[index + 1 :].startswith("]"):
        raise ValueError(f"invalid section header {text!r}")
    return f"{name}.{''.join(subsection)}", rest[index + 2 :].strip()


def _value(raw: str, lines: Iterator[str]) -> str:
    """Decode a value as git does: quotes, escapes, comments and continued lines.

    Whitespace outside quotes is trimmed at both ends, and each inner run of it
    becomes that many spaces. ``lines`` supplies the next line after a
    trailing backslash.
    """
    value: list[str] = []
    pending_spaces = 0
    quoted = False
    index = 0
    while index < len(raw):
        char = raw[index]
        index += 1
        if char == "\\":
            if index == len(raw):
                raw, index = next(lines, ""), 0
                continue
            escape = _VALUE_ESCAPES.get(raw[index])
            if escape is None:
                raise ValueError(f"invalid escape sequence in config value {raw!r}")
            char = escape
            index += 1
        elif char == '"':
            quoted = not quoted
            continue
        elif not quoted and char in _COMMENT_STARTS:
            break
        elif not quoted and char.isspace():
            pending_spaces += 1 if value else 0
            continue
        value.append(" " * pending_spaces + char)
        pending_spaces = 0
    if quoted:
        raise ValueError(f"unterminated quote in config value {raw!r}")
    return "".join(value)
