"""Reading: a value carried forward keeps where it came from, and why it is missing."""

from __future__ import annotations

from dlready.model import Reading, ReadState, Source


def test_map_converts_a_read_value_and_keeps_its_provenance() -> None:
    reading = Reading.read(2048, Source.NVML)
    assert reading.map(lambda mib: mib / 1024) == Reading.read(2.0, Source.NVML)


def test_map_and_without_value_carry_a_failure_forward() -> None:
    failed: Reading[int] = Reading.failed(Source.SYSFS, "permission denied")
    derived: Reading[float] = failed.map(float)
    assert (derived.value, derived.state, derived.source, derived.reason) == (
        None,
        ReadState.FAILED,
        Source.SYSFS,
        "permission denied",
    )
    unsupported: Reading[int] = Reading.unsupported(Source.NVML, "not on this GPU")
    assert unsupported.without_value("threshold unknown").reason == "threshold unknown"
    assert unsupported.without_value().state is ReadState.UNSUPPORTED
