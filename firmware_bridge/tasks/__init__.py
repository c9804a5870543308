"""Per-task C hooks for the generated ``main.cc``: one module per task, found by the task's name.

A module ``firmware_bridge/tasks/<task>.py`` defines ``report(bundle) -> str | None``: the C body of
``ReportResult`` (it sees ``output``, ``features`` and ``DequantizeOutput``), or None when the
bundle's head lacks what the hook needs (the template then prints the raw outputs). A task without
a module gets the raw outputs too.
"""
