"""Raw configuration text and where it came from: INI file, environment, secret files.

Later layers win: defaults < INI file < ACOUSTID_* env < ``<key>_file`` in the INI file <
``ACOUSTID_*_FILE`` in env. Unknown keys in a known section, and unknown ACOUSTID_<SECTION>_*
variables, are errors: a typo must not silently leave a default in place.
"""

from __future__ import annotations

import configparser
import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from acoustid_stack.config.errors import ConfigError
from acoustid_stack.config.table import (
    ENV_PREFIX,
    FILE_SUFFIX,
    KEYS_BY_ENV,
    KEYS_BY_NAME,
    PATTERN_KEYS,
    SECTIONS,
    Key,
    PatternKey,
    env_name,
    env_suffix_to_key,
    keys_of,
)


class Layer(IntEnum):
    DEFAULT = 0
    FILE = 1
    ENV = 2
    FILE_SECRET = 3
    ENV_SECRET = 4


@dataclass(frozen=True)
class RawValue:
    text: str
    source: str  # shown after "from": a file and section, an env variable, a secret file
    layer: Layer


RawValues = dict[tuple[str, str], RawValue]


def collect(path: str | None, environ: Mapping[str, str]) -> RawValues:
    """Every explicitly set value, keyed by (section, key name), highest layer kept."""
    entries = [*(_read_ini(path) if path else ()), *_read_env(environ)]
    raw: RawValues = {}
    for section, name, value in sorted(entries, key=lambda entry: entry[2].layer):
        raw[(section, name)] = value
    return raw


def _read_ini(path: str) -> Iterator[tuple[str, str, RawValue]]:
    # A [DEFAULT] section would leak into every section; treat it as unknown instead.
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # logger names keep case
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}; fix --config / ACOUSTID_CONFIG"
        ) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid INI: {first_line}") from None
    base_dir = Path(path).parent
    for section in parser.sections():
        if section not in SECTIONS:
            raise ConfigError(
                f"[{section}] in {path} is not a known section{_suggest(section, SECTIONS)}"
            )
        for option, text in parser.items(section, raw=True):
            source = f"{path} [{section}]"
            yield _classify_ini(section, option, text, source, base_dir)


def _classify_ini(
    section: str, option: str, text: str, source: str, base_dir: Path
) -> tuple[str, str, RawValue]:
    name = option.lower()
    if (section, name) in KEYS_BY_NAME:
        return section, name, RawValue(text, source, Layer.FILE)
    secret = _secret_of(KEYS_BY_NAME.get((section, name.removesuffix(FILE_SUFFIX))), name)
    if secret is not None:
        file_path = base_dir / text.strip()
        origin = f"{source} {option}"
        return section, secret.name, _read_secret(secret, file_path, origin, Layer.FILE_SECRET)
    for pattern in PATTERN_KEYS:
        if pattern.section == section and name.startswith(pattern.prefix + "."):
            suffix = option[len(pattern.prefix) + 1 :]
            full = _pattern_name(pattern, suffix, source)
            return section, full, RawValue(text, source, Layer.FILE)
    known = [key.name for key in keys_of(section)]
    known += [p.pattern for p in PATTERN_KEYS if p.section == section]
    raise ConfigError(
        f"{section}.{option}: unknown key (from {source}){_suggest(name, known)}; "
        f"known keys: {', '.join(known)}"
    )


def _read_env(environ: Mapping[str, str]) -> Iterator[tuple[str, str, RawValue]]:
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        key = KEYS_BY_ENV.get(var)
        if key is not None:
            yield key.section, key.name, RawValue(text, var, Layer.ENV)
            continue
        secret = _secret_of(KEYS_BY_ENV.get(var.removesuffix("_FILE")), var)
        if secret is not None:
            raw = _read_secret(secret, Path(text.strip()), var, Layer.ENV_SECRET)
            yield secret.section, secret.name, raw
            continue
        pattern = next((p for p in PATTERN_KEYS if var.startswith(p.env_prefix)), None)
        if pattern is not None:
            if pattern.env_suffix is None:
                raise ConfigError(
                    f"{var}: {pattern.section}.{pattern.pattern} has no environment form; "
                    f"set it in the [{pattern.section}] section of the config file"
                )
            suffix = env_suffix_to_key(var[len(pattern.env_prefix) :])
            yield (
                pattern.section,
                _pattern_name(pattern, suffix, var),
                RawValue(text, var, Layer.ENV),
            )
            continue
        section = _env_section(var)
        if section is not None:
            raise ConfigError(
                f"{var} is not a configuration variable of [{section}]"
                f"{_suggest(var, list(KEYS_BY_ENV))}; unset it or fix the name"
            )


def _env_section(var: str) -> str | None:
    """The section whose ACOUSTID_<SECTION>_ prefix ``var`` starts with (longest match)."""
    matches = [section for section in SECTIONS if var.startswith(env_name(section, ""))]
    return max(matches, key=len, default=None)


def _secret_of(key: Key | None, name: str) -> Key | None:
    """The secret key ``name`` (``password_file``, ``..._PASSWORD_FILE``) reads from a file."""
    if key is None or not key.secret or not name.lower().endswith(FILE_SUFFIX):
        return None
    return key


def _read_secret(key: Key, file_path: Path, origin: str, layer: Layer) -> RawValue:
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{key.dotted}: cannot read secret file {file_path}: {exc.strerror} (from {origin})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{key.dotted}: secret file {file_path} is not UTF-8 text (from {origin})"
        ) from None
    # Secret files written by `echo` or editors end with a newline that is not part of it.
    text = text.rstrip("\r\n")
    if not text:
        raise ConfigError(f"{key.dotted}: secret file {file_path} is empty (from {origin})")
    return RawValue(text, f"{file_path} via {origin}", layer)


def _pattern_name(pattern: PatternKey, suffix: str, source: str) -> str:
    if not suffix.strip():
        raise ConfigError(
            f"{pattern.section}.{pattern.prefix}.: the {pattern.placeholder} is missing "
            f"(from {source})"
        )
    try:
        normalized = str(pattern.suffix_type.parse(suffix.strip()))
    except ValueError as exc:
        raise ConfigError(
            f"{pattern.section}.{pattern.prefix}.{suffix}: {suffix!r} {exc} (from {source})"
        ) from None
    return f"{pattern.prefix}.{normalized}"


def _suggest(word: str, candidates: Mapping[str, object] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
