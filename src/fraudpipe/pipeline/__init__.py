"""Running the pipeline: the stage runner, the checks before it, and bringing in a new dataset.

- ``stage``: what every ``stages/*.py`` script shares (params, one-line errors, profiling).
- ``preflight``: every config group and every data-dependent setting checked at once.
- ``onboarding``: ``fraudpipe data add`` (profile a file, propose a mapping, bring it in).
- ``intake``: the file read and validated as ingest will, its refusals in ingest's words.
- ``derived``: the settings that depend on a labelled file, and what no setting can fix.
"""
