"""BuildKit's Dockerfile shell lexer (``frontend/dockerfile/shell/lex.go``), ported for the fixture generator.

Variable expansion decides the text of every progress label (``convert.go`` ``processCmdEnv``), the
``FROM`` references after ``ARG`` substitution (``buildDispatchStates``) and the values of ``ARG``/``ENV``,
so the generator expands words exactly as BuildKit does: quotes (kept with ``raw_quotes``), the escape
token, ``$VAR``, ``${VAR}``, ``${VAR:-w}``, ``${VAR-w}``, ``${VAR:+w}``, ``${VAR+w}``, ``${VAR:?w}``,
``${VAR?w}``, ``${VAR#p}``, ``${VAR##p}``, ``${VAR%p}``, ``${VAR%%p}``, ``${VAR/p/r}``, ``${VAR//p/r}``,
and ``skip_unset_env`` (unset variables kept as written, as for ``RUN`` labels).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

__all__ = ["EnvList", "Lex", "LexError"]


class LexError(ValueError):
    """What BuildKit reports as a syntax error while processing a word."""


class EnvList:
    """An ordered environment (``llb.EnvList``): replacing a key keeps its position."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = {}
        for key, value in items:
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self._items[key] = value

    def get(self, key: str) -> str | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.items())

    def copy(self) -> EnvList:
        return EnvList(self._items.items())

    def to_list(self) -> list[str]:
        """``KEY=value`` strings in order (what an ExecOp's ``meta.env`` holds)."""
        return [f"{k}={v}" for k, v in self._items.items()]

    def __contains__(self, key: object) -> bool:
        return key in self._items


_EOF = ""
_SPECIAL_PARAMS = set("@*#?-$!0")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch != _EOF:
            self.pos += 1
        return ch


class Lex:
    """``shell.Lex`` with its options (``RawQuotes``, ``RawEscapes``, ``SkipProcessQuotes``, ``SkipUnsetEnv``)."""

    def __init__(
        self,
        escape_token: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    def process_word(self, word: str, env: Mapping[str, str] | EnvList) -> str:
        """``ProcessWord``: expand ``word`` against ``env`` (quotes removed unless ``raw_quotes``)."""
        return _Word(self, word, env).process()[0]

    def process_words(self, word: str, env: Mapping[str, str] | EnvList) -> list[str]:
        """``ProcessWords``: expand, then split on unquoted whitespace."""
        return _Word(self, word, env).process()[1]


class _Words:
    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace() and self.in_word:
            if self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        elif not ch.isspace():
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _Word:
    def __init__(self, lex: Lex, word: str, env: Mapping[str, str] | EnvList) -> None:
        self.lex = lex
        self.scanner = _Scanner(word)
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.source = word

    def get_env(self, name: str) -> str | None:
        return self.env.get(name)

    def process(self) -> tuple[str, list[str]]:
        try:
            return self.process_stop_on(_EOF, self.raw_escapes)
        except LexError as error:
            raise LexError(f"failed to process {self.source!r}: {error}") from None

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            while self.scanner.peek() != _EOF:
                ch = self.scanner.peek()
                if stop != _EOF and ch == stop:
                    self.scanner.next()
                    return "".join(result), words.get_words()
                special = self.special(ch)
                if special is not None:
                    tmp = special()
                    result.append(tmp)
                    if ch == "$":
                        words.add_string(tmp)
                    else:
                        words.add_raw_string(tmp)
                    continue
                ch = self.scanner.next()
                if ch == self.lex.escape_token:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.scanner.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop != _EOF:
                raise LexError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def special(self, ch: str) -> Callable[[], str] | None:
        if ch == "$":
            return self.process_dollar
        if ch == "<":
            return self.process_possible_heredoc
        if not self.lex.skip_process_quotes:
            if ch == "'":
                return self.process_single_quote
            if ch == '"':
                return self.process_double_quote
        return None

    def process_single_quote(self) -> str:
        out: list[str] = []
        ch = self.scanner.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.scanner.next()
            if ch == _EOF:
                raise LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        out: list[str] = []
        ch = self.scanner.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            peek = self.scanner.peek()
            if peek == _EOF:
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = self.scanner.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self.process_dollar())
                continue
            ch = self.scanner.next()
            if ch == self.lex.escape_token:
                if self.raw_escapes:
                    out.append(ch)
                following = self.scanner.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.lex.escape_token):
                    ch = self.scanner.next()
            out.append(ch)

    def process_name(self) -> str:
        name: list[str] = []
        while self.scanner.peek() != _EOF:
            ch = self.scanner.peek()
            if not name and ch.isdigit():
                while self.scanner.peek() != _EOF and self.scanner.peek().isdigit():
                    name.append(self.scanner.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.scanner.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(self.scanner.next())
        return "".join(name)

    def process_dollar(self) -> str:
        self.scanner.next()
        if self.scanner.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value = self.get_env(name)
            if value is None:
                return "$" + name if self.lex.skip_unset_env else ""
            return value
        self.scanner.next()
        if self.scanner.peek() == _EOF:
            raise LexError("syntax error: missing '}'")
        if self.scanner.peek() in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.scanner.next()
        chs = ch
        null_is_unset = False
        if ch == "}":
            value = self.get_env(name)
            if value is None:
                return f"${{{name}}}" if self.lex.skip_unset_env else ""
            return value
        if ch == ":":
            null_is_unset = True
            ch = self.scanner.next()
            chs += ch
        if ch in "+-?#%" and ch != _EOF:
            raw = ch in "#%"
            if null_is_unset and raw:
                raise LexError(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw)
            except LexError:
                if self.scanner.peek() == _EOF:
                    raise LexError("syntax error: missing '}'") from None
                raise
            value = self.get_env(name)
            is_set = value is not None
            current = value or ""
            if self.lex.skip_unset_env and not is_set:
                return f"${{{name}{chs}{word}}}"
            if ch == "-":
                return word if not is_set or (null_is_unset and current == "") else current
            if ch == "+":
                return "" if not is_set or (null_is_unset and current == "") else word
            if ch == "?":
                if not is_set:
                    raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and current == "":
                    raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
                return current
            greedy = bool(word) and word[0] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, current, greedy)
            return _trim_prefix(word, current, greedy)
        if ch == "/" and not null_is_unset:
            replace_all = self.scanner.peek() == "/"
            if replace_all:
                self.scanner.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except LexError:
                if self.scanner.peek() == _EOF:
                    raise LexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.process_stop_on("}", True)
            except LexError:
                if self.scanner.peek() == _EOF:
                    raise LexError("syntax error: missing '}'") from None
                raise
            value = self.get_env(name)
            if self.lex.skip_unset_env and value is None:
                return f"${{{name}/{pattern}/{replacement}}}"
            regex = _shell_pattern(pattern, greedy=True, anchored=False)
            current = value or ""
            if replace_all:
                return regex.sub(lambda _m: replacement, current)
            return regex.sub(lambda _m: replacement, current, count=1)
        raise LexError(f"unsupported modifier ({chs}) in substitution")

    def process_possible_heredoc(self) -> str:
        self.scanner.next()
        if self.scanner.peek() != "<":
            return "<"
        self.scanner.next()
        space: list[str] = []
        while self.scanner.peek() in ("\t", "\r", " ") and self.scanner.peek() != _EOF:
            space.append(self.scanner.next())
        return "<<" + "".join(space)


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """``convertShellPatternToRegex``: ``*`` and ``?`` wildcards, backslash escapes."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            tok = following
            i += 1
            if tok not in ("*", "?", "\\"):
                raise LexError(f"invalid escape '\\{tok}'")
            out.append(re.escape(tok))
            continue
        out.append(re.escape(tok))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(word: str, value: str, greedy: bool) -> str:
    match = _shell_pattern(word, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match is not None else value


def _reverse_pattern(pattern: str) -> str:
    chars = list(pattern)
    out = [""] * len(chars)
    last = len(chars) - 1
    i = 0
    while i <= last:
        tok = chars[i]
        index = last - i
        if tok == "\\" and i != last:
            out[index - 1] = tok
            out[index] = chars[i + 1]
            i += 2
        else:
            out[index] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, word: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), word[::-1], greedy)[::-1]
