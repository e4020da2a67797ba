"""Benchmarks for kiteline's performance targets: ``python -m bench [name ...]``.

Each ``bench/<name>.py`` that defines ``run() -> list[Result]`` is a benchmark. It
measures its subject and a baseline in the same run and reports the ratio against the
target named in its issue; it never fails because a target is missed (it reports, it
does not gate). A benchmark may also define ``profile() -> None`` for
``python -m bench --profile``: a breakdown of where the time goes. Generated data lives
under ``bench/.data/`` (gitignored), built from fixed seeds and reused between runs.
"""
