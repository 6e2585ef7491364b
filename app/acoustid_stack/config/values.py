"""Value types of configuration keys: text in, typed value out.

A parser raises ``ValueError`` whose message is a predicate ("is not an integer"); the loader
prefixes the key, the offending text (never for secrets) and the source.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit


class ValueType(Protocol):
    """How one key's text becomes a typed value."""

    @property
    def label(self) -> str:
        """Short type description for the dist file ("integer 1..65535")."""

    def parse(self, text: str) -> Any:
        """Typed value of stripped ``text``; ValueError if invalid.

        Empty text reaches a type only for keys whose default is "" (an empty string or list).
        """


@dataclass(frozen=True)
class Text:
    label: str = "string"

    def parse(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class Integer:
    minimum: int | None = None
    maximum: int | None = None

    @property
    def label(self) -> str:
        return "integer" + _range_label(self.minimum, self.maximum)

    def parse(self, text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise ValueError("is not an integer") from None
        _check_range(value, self.minimum, self.maximum)
        return value


@dataclass(frozen=True)
class Number:
    minimum: float | None = None
    maximum: float | None = None

    @property
    def label(self) -> str:
        return "number" + _range_label(self.minimum, self.maximum)

    def parse(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        _check_range(value, self.minimum, self.maximum)
        return value


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class Boolean:
    label: str = "boolean"

    def parse(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("is not a boolean (use true/false, yes/no, on/off or 1/0)")


@dataclass(frozen=True)
class Choice:
    choices: tuple[str, ...]
    case_sensitive: bool = True

    @property
    def label(self) -> str:
        return "one of " + ", ".join(self.choices)

    def parse(self, text: str) -> str:
        for choice in self.choices:
            if text == choice or (not self.case_sensitive and text.lower() == choice.lower()):
                return choice
        raise ValueError(f"is not one of {', '.join(self.choices)}")


@dataclass(frozen=True)
class Url:
    schemes: tuple[str, ...]

    @property
    def label(self) -> str:
        return "URL (" + "/".join(self.schemes) + ")"

    def parse(self, text: str) -> str:
        _check_url(text, self.schemes)
        return text


@dataclass(frozen=True)
class UrlList:
    """Comma-separated URLs; at least one."""

    schemes: tuple[str, ...]

    @property
    def label(self) -> str:
        return "comma-separated URLs (" + "/".join(self.schemes) + ")"

    def parse(self, text: str) -> list[str]:
        urls = _split_list(text)
        for url in urls:
            _check_url(url, self.schemes)
        return urls


@dataclass(frozen=True)
class HostPortList:
    """Comma-separated ``host:port`` pairs (IPv6 as ``[::1]:26379``); empty means none."""

    label: str = "comma-separated host:port pairs"

    def parse(self, text: str) -> list[tuple[str, int]]:
        pairs = []
        for item in _split_list(text) if text else []:
            host, sep, port = item.rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"has {item!r}, which is not host:port")
            pairs.append((host, int(port)))
        return pairs


@dataclass(frozen=True)
class ReadableFile:
    """Path to an existing, readable file (checked at start, not at first use)."""

    label: str = "path to a readable file"

    def parse(self, text: str) -> str:
        if not os.path.isfile(text) or not os.access(text, os.R_OK):
            raise ValueError("is not a readable file")
        return text


@dataclass(frozen=True)
class IpAddress:
    label: str = "IP address"

    def parse(self, text: str) -> str:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError("is not an IP address") from None


@dataclass(frozen=True)
class NetworkList:
    """Comma-separated IP networks in CIDR notation (a bare address is one host); empty means
    none. Host bits set (`10.0.0.1/8`) are refused: likely a typo for a narrower network."""

    label: str = "comma-separated IP networks (CIDR)"

    def parse(self, text: str) -> list[str]:
        networks = []
        for item in _split_list(text) if text else []:
            try:
                networks.append(str(ipaddress.ip_network(item)))
            except ValueError:
                raise ValueError(f"has {item!r}, which is not an IP network") from None
        return networks


def _split_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ValueError("has an empty item in its comma-separated list")
    return items


def _check_url(text: str, schemes: Sequence[str]) -> None:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- property access validates the port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"is not a {'/'.join(schemes)} URL with a host")


def _check_range(value: float, minimum: float | None, maximum: float | None) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"is not in the range{_range_label(minimum, maximum)}")


def _range_label(minimum: float | None, maximum: float | None) -> str:
    if minimum is None and maximum is None:
        return ""
    if maximum is None:
        return f" >= {minimum}"
    if minimum is None:
        return f" <= {maximum}"
    return f" {minimum}..{maximum}"
