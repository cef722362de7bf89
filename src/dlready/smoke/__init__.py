"""``dlready smoke``: prove that the installed PyTorch works on this device, and how fast.

Layout (only this package may import torch, and only the worker side does):

- ``catalog``: the named checks, their order and timeouts (no torch).
- ``report``: the result model the runner builds and the renderers read (no torch).
- ``runner``: the parent side. It starts ``python -m dlready.smoke.worker``, streams results,
  kills a hung check and restarts a fresh worker for the rest (no torch).
- ``worker``, ``checks``, ``speed``: the child side; they import torch.
- ``peaks``: expected speed figures (spec sheets, PCIe rule, NVML) (no torch).
- ``judge``: turns the worker's outcome into the report, with the machine's context (no torch).
- ``outcome``: what the worker streams back (no torch).
- ``archcompat``: whether the installed build has kernels for the GPU (no torch).
- ``explain``: failure -> explanation + fix (no torch).
- ``burn``: the sustained-load sampler and its cooling verdict (no torch).
- its renderer (summary table and JSON ``data``) is ``dlready.render.smoke_render`` (no torch).
"""
