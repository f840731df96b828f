"""The YAML reader: safe, strict about duplicate keys, every problem as a `ConfigProblem`."""

from __future__ import annotations

from typing import Any

import yaml

from reporter.errors import ConfigProblem

from .display import FILE_PATH, _display, _path
from .masking import Loc


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date (`2026-02-30`) as text instead of crashing."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except ValueError:
            # Validation then reports it at its key, with the value and a hint.
            return self.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _parse_yaml(text: str) -> tuple[Any, list[ConfigProblem]]:
    """(data, problems): data is None when the text is not YAML at all."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # PyYAML refuses control characters up front
        at_line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
        message = f"character U+{code:04X} at line {at_line} is not allowed in YAML"
        hint = "remove it; in a double-quoted string it may be written as an escape"
        return None, [ConfigProblem(FILE_PATH, "...", message, hint)]
    try:
        node = loader.get_single_node()
        problems = _duplicate_keys(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        message = f"YAML syntax error at {where}: {exc.problem or exc.context}"
        hint = "check indentation (spaces, not tabs) and quote values containing `: ` or `#`"
        return None, [ConfigProblem(FILE_PATH, _display(line.strip(), ()), message, hint)]
    except yaml.YAMLError as exc:
        return None, [ConfigProblem(FILE_PATH, "...", f"not valid YAML: {exc}", "save as UTF-8")]
    except RecursionError:
        return None, [ConfigProblem(FILE_PATH, "...", "nested too deeply", "flatten the file")]
    finally:
        loader.dispose()
    # An empty document (blank, comments only, or a bare `---`) means "all defaults".
    return ({} if data is None else data), problems


def _duplicate_keys(node: yaml.Node | None) -> list[ConfigProblem]:
    # PyYAML silently keeps the last of two equal keys; a second `mail:` block would quietly
    # replace the first, so duplicates are errors here.
    problems: list[ConfigProblem] = []
    seen_nodes: set[int] = set()

    def walk(current: yaml.Node, loc: Loc) -> None:
        if id(current) in seen_nodes:
            return
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in first_line:
                    problems.append(
                        ConfigProblem(
                            _path((*loc, key)),
                            repr(key),
                            f"duplicate key at line {line} (first at line {first_line[key]})",
                            "keep one: YAML would silently use only the last",
                        )
                    )
                else:
                    first_line[key] = line
                walk(value_node, (*loc, key))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, (*loc, index))

    if node is not None:
        walk(node, ())
    return problems
