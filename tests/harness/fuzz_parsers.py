"""Coverage-guided fuzzing of the two registry-content parsers (and the analysis of what they accept) with atheris.

    .venv/bin/pip install atheris
    .venv/bin/python -m tests.harness.fuzz_parsers -runs=100000             # both parsers, picked by the first byte
    .venv/bin/python -m tests.harness.fuzz_parsers -max_total_time=300 corpus/  # libFuzzer flags pass through

A config that parses is also analysed (stages, usable chains, results per blob), so a shape the
parser lets through but the analysis trips over is found too. Anything but ``InvalidContent``
(the parsers' documented error) is a crash: atheris prints the
traceback and writes the input to ``crash-<sha1>``.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

with atheris.instrument_imports():
    from inspector.cache import analysis
    from inspector.cache import config as cacheconfig
    from inspector.errors import InvalidContent
    from inspector.oci import gojson, models

from tests.harness.chains import result_chains


def test_one_input(data: bytes) -> None:
    if not data:
        return
    which, body = data[0], data[1:]
    try:
        if which & 1:
            config = cacheconfig.parse_cache_config(body)
            for record in config.records[:64]:
                result_chains(config, record)
            config.results_per_blob()
            config.chains_where_all(lambda blob: blob.hex < "8")
            analysis.analyze(config, {})
        else:
            models.parse_manifest(body, content_type="application/vnd.oci.image.manifest.v1+json")
    except InvalidContent:
        pass


def main() -> None:
    assert gojson  # instrumented along with the parsers
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
