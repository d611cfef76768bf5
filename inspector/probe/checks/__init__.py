"""The probe's checks, in the order they run, each declaring what it needs.

A ``ProbeCheck`` names the checks that must have passed first (``requires``; ``why`` explains a failed one),
and may decide without a request (``decide``: a skip for the options given, or a fact an earlier check
established). Each module groups checks by what they exercise; every check is a function of the
``ProbeSession`` that returns a ``Result``.
"""

from inspector.probe.checks.sequence import SEQUENCE, ProbeCheck

__all__ = ["SEQUENCE", "ProbeCheck"]
