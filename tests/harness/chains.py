"""The slow, obvious reading of a cache config's results, kept as a test oracle: the library's whole-config
passes (``results_per_blob``, ``referenced_layers``, ``chains_where_all``) never build every chain."""

from __future__ import annotations

from inspector.cache.config import CacheConfig, CacheRecord

__all__ = ["result_chains"]


def result_chains(config: CacheConfig, record: CacheRecord) -> list[tuple[int, ...]]:
    """Every result of ``record`` as a chain of layer indexes, bottom to top: a result's layer with its
    parents (``config.chain``), and each inline chain as listed."""
    chains = [config.chain(result.layer) for result in record.results]
    chains.extend(chained.layers for chained in record.chains)
    return chains
