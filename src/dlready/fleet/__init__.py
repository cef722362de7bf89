"""``dlready fleet``: every node and GPU of a cluster checked at once over torch.distributed.

Pure modules (no torch): ``launch`` (who am I, from the launcher's variables), ``report`` (the
typed fleet report), ``judge`` (findings from the gathered results), ``dlready.render.fleet_render`` (table,
Markdown). ``runtime`` is the only module that imports torch; it runs on every rank.
"""
