"""Where in ``kiteline.yaml`` a problem is: the line of each key path, so that every
message names its file and line."""

from __future__ import annotations

from pathlib import Path

import yaml


def line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each mapping key path in the YAML text to its 1-based line number."""
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                child = (*path, str(position))
                index[child] = item.start_mark.line + 1
                walk(item, child)

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return index


def located(
    message_path: tuple[str, ...], message: str, lines: dict[tuple[str, ...], int], source: Path
) -> str:
    probe = message_path
    while probe and probe not in lines:
        probe = probe[:-1]
    line = f":{lines[probe]}" if probe else ""
    where = ".".join(message_path) or "(top level)"
    return f"{source}{line}: {where}: {message}"
