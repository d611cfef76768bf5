from __future__ import annotations

import json

import pytest

from inspector.cache.naming.provenance import _created_by, _history


@pytest.mark.parametrize(
    ("created_by", "shown"),
    [
        (
            "RUN /bin/sh -c apk add --no-cache ca-certificates # buildkit",
            "RUN apk add --no-cache ca-certificates",
        ),
        ("RUN |2 VERSION=dev GO=1.23 /bin/sh -c go build -o /out/app # buildkit", "RUN go build -o /out/app"),
        ("COPY /out/app /usr/local/bin/app # buildkit", "COPY /out/app /usr/local/bin/app"),
        # convert.go runCommandString writes "|N" then N "KEY=value" words with the values unquoted, so
        # `ARG A="b c"` gives "|1 A=b c": the value runs to the shell, not to the first space.
        ("RUN |1 A=b c /bin/sh -c echo $A # buildkit", "RUN echo $A"),
        # Two values with spaces: the first runs to the next " KEY=", the last to " /bin/sh -c ".
        ("RUN |2 A=x y B=p q r /bin/sh -c make # buildkit", "RUN make"),
        # An empty value (ARG E=) is "E=" followed by the next word.
        ("RUN |2 E= F=1 /bin/sh -c true # buildkit", "RUN true"),
        # Exec form has no shell: the words follow the last pair directly (args joined with spaces).
        ("RUN |1 V=dev echo hi # buildkit", "RUN echo hi"),
        # Not the shape BuildKit writes (a word without "="): left as it is.
        ("RUN |2 A=1 oops /bin/sh -c x", "RUN |2 A=1 oops /bin/sh -c x"),
        ("WORKDIR /src", "WORKDIR /src"),
    ],
)
def test_history_wording(created_by: str, shown: str) -> None:
    assert _created_by(created_by) == shown


def test_history_skips_empty_layers_when_pairing_with_diff_ids() -> None:
    config = {
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]},
        "history": [
            {"created_by": "ADD file:abc in / "},
            {"created_by": "ENV APP=1", "empty_layer": True},
            {"created_by": "RUN /bin/sh -c make # buildkit", "comment": "buildkit.dockerfile.v0"},
        ],
    }
    assert _history(json.dumps(config).encode()) == {
        "sha256:" + "a" * 64: "ADD file:abc in / ",
        "sha256:" + "b" * 64: "RUN make",
    }
