"""``dlready fit``: will this model run on this machine, and how.

``catalog`` knows model shapes (built-in table, a Hugging Face ``config.json``, a bare
parameter count), ``estimate`` turns a shape and a request into bytes per item, ``plan`` judges
them against the machine's GPUs (or RAM) and lists what would make it fit, ``dlready.render.fit_render`` writes
the result. ``measure`` checks an estimate in a child process (``measure_worker``, the only
module here that imports torch). Nothing here imports torch at import time.
"""
