"""Probes: thin gateways to the hardware, and the builders that turn readings into the model.

Gateways (the only modules that touch the outside world):
- ``hostfs``: the only module that reads ``/proc``, ``/sys`` and ``/etc``.
- ``nvml_gateway``: the only module that imports ``pynvml``.
- ``host_gateway``: the only module that imports ``psutil`` and ``cpuinfo``.
"""
