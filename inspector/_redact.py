"""Masking secrets in text bound for an error message or a log line.

It sits at the package root, importing nothing from it, because every layer that handles a
credential (auth, credential helpers, git remotes in gc) must use the same masks.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_AUTHORIZATION_RE = re.compile(
    r"(?i)(\b(?:proxy-)?authorization\b(?:['\"]?\s*[:=]|['\"]\s*,)\s*['\"]?)"
    r"(?:(basic|bearer|digest|token)\s+)?[^\s'\",;]+"
)
_SECRET_PARAM_RE = re.compile(
    r"(?i)(\b(?:(?:access|refresh|id|registry|identity)_?)?token|\bpassword|\bpasswd|\b(?:client_)?secret"
    r"|\bsig|\bsignature|\bx-amz-signature|\bx-amz-security-token|\bx-amz-credential|\bx-goog-signature"
    r"|\bx-goog-credential)=([^&\s'\"]+)"
)
_SECRET_JSON_RE = re.compile(
    r"(?i)(\"(?:token|access_token|refresh_token|id_token|password|secret|identitytoken|registrytoken|auth)\""
    r"\s*:\s*\")(?:[^\"\\]|\\.)*\""
)
_URL_PASSWORD_RE = re.compile(r"(//[^/\s:@]+:)[^@\s/]+@")


def _mask_authorization(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return f"{match.group(1)}{scheme} ***" if scheme else f"{match.group(1)}***"


def redact(text: str) -> str:
    """``text`` with Authorization values, token/password/signature query or JSON values masked."""
    text = _AUTHORIZATION_RE.sub(_mask_authorization, text)
    text = _SECRET_PARAM_RE.sub(r"\1=***", text)
    text = _SECRET_JSON_RE.sub(r'\1***"', text)
    return _URL_PASSWORD_RE.sub(r"\1***@", text)
