"""Secrets out of every config that leaves the process (config.json, W&B).

A value is replaced by "<redacted>" when its key names a secret (a word of the key is
key, secret, token, password, passwd, credential(s), auth or apikey: `api_key`,
`FAL_KEY_SECRET`, `hf_token`, `accessToken`), at any depth, or when the value itself looks
like one (an OpenAI/Anthropic/Hugging Face style token, a fal "key-id:key-secret" pair, a
URL with a password). Keys that name an environment variable (`api_key_env`) and counts
(`max_tokens`) are kept: they are not secrets.

Example:
    >>> redact({"judge": {"vlm": {"api_key": "sk-abc", "max_tokens": 64}}})
    {'judge': {'vlm': {'api_key': '<redacted>', 'max_tokens': 64}}}
"""
from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "<redacted>"
_SECRET_WORDS = {"key", "secret", "token", "password", "passwd", "credential",
                 "credentials", "auth", "apikey", "pwd"}
_SAFE_LAST = {"env", "var", "file", "path", "name", "id_env"}
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{20,}|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9a-f]{16,})$")
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/:@\s]+:)[^/@\s]+(@)", re.IGNORECASE)


def _words(key: str) -> list[str]:
    """snake_case, kebab-case, dotted and camelCase keys as lower-case words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(key))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_key(key: Any) -> bool:
    """Whether a config key names a secret (see the module docstring)."""
    words = _words(str(key))
    if not words or words[-1] in _SAFE_LAST:
        return False
    return any(w in _SECRET_WORDS for w in words)


def secret_value(value: Any) -> Any:
    """The value with a secret-looking string replaced (a URL keeps all but its password)."""
    if not isinstance(value, str):
        return value
    if _SECRET_VALUE.match(value.strip()):
        return REDACTED
    return _URL_PASSWORD.sub(rf"\1{REDACTED}\2", value)


def redact(config: Any) -> Any:
    """A copy of a plain config tree with every secret replaced by "<redacted>"."""
    if isinstance(config, Mapping):
        return {k: (REDACTED if secret_key(k) and v not in (None, "", [], {})
                    and not isinstance(v, (Mapping, bool)) else redact(v))
                for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [redact(v) for v in config]
    return secret_value(config)
