"""Pre-flight checks of a registry: which cache shapes it accepts, whether cleanup can delete, which --cache-to works."""

from inspector.probe.run import ProbeOptions, ProbeReport, offline_report, run_probe

__all__ = [
    "ProbeOptions",
    "ProbeReport",
    "offline_report",
    "run_probe",
]
