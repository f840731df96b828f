"""Loading: a YAML file or parsed data → frozen, validated `Settings`, or one `ConfigError`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reporter.errors import ConfigError, ConfigProblem

from .display import FILE_PATH, _display, _mask_sections, _path
from .exceptions_file import _exceptions_file
from .hints import _problems_from_validation
from .references import _Resolver
from .settings import Settings
from .yamlfile import _parse_yaml


def load_data(
    data: Mapping[str, Any],
    environ: Mapping[str, str],
    source: str = "",
    *,
    base_dir: Path | None = None,
    today: date | None = None,
) -> Settings:
    """Validate already-parsed configuration data; raises `ConfigError` with every problem.

    `base_dir` is where a relative `exceptions.file` is read from (default: the working
    directory); `today` (default: today in UTC) is what exception expiry dates are checked against.
    """
    if not isinstance(data, Mapping):
        problem = ConfigProblem(
            FILE_PATH,
            _display(data, ()),
            "the top level must be a mapping of settings",
            "start from config/example.yaml: `key: value` lines, sections indented",
        )
        raise ConfigError([problem], source=source)
    today = today or datetime.now(UTC).date()
    resolver = _Resolver(environ)
    resolved: Any = None
    try:
        resolved = resolver.resolve(data, ())
        problems = [problem for _, problem in resolver.problems]
        settings = Settings.model_validate(resolved, context={"today": today})
    except ValidationError as exc:
        skip = [loc for loc, _ in resolver.problems]
        problems.extend(_problems_from_validation(exc, data, skip, resolver.refs))
    except RecursionError:
        # Only a YAML alias that contains itself (`a: &x [*x]`) nests this deep.
        problems = [ConfigProblem(FILE_PATH, "...", "nested too deeply", "remove the alias loop")]
    label, file_rules, file_problems = _exceptions_file(resolved, base_dir or Path(), today)
    problems.extend(file_problems)
    if problems:
        raise ConfigError(problems, source=source)
    refs = tuple(sorted(resolver.refs.items(), key=lambda item: _path(item[0])))
    settings._secret_refs = refs
    settings.exceptions._file_rules, settings.exceptions._file_label = file_rules, label
    _mask_sections(settings, refs)
    return settings


def load_file(path: Path, environ: Mapping[str, str], *, today: date | None = None) -> Settings:
    """Read a YAML file and validate it; raises `ConfigError` with every problem."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        hint = "check the path; config/example.yaml is a documented starting point"
        raise ConfigError(
            [ConfigProblem(FILE_PATH, repr(source), "file not found", hint)], source
        ) from None
    except IsADirectoryError:
        hint = "pass the YAML file itself, not its folder"
        raise ConfigError(
            [ConfigProblem(FILE_PATH, repr(source), "is a directory", hint)], source
        ) from None
    except PermissionError:
        hint = "make the file readable by the user that runs the reporter"
        raise ConfigError(
            [ConfigProblem(FILE_PATH, repr(source), "permission denied", hint)], source
        ) from None
    except OSError as exc:
        problem = ConfigProblem(FILE_PATH, repr(source), f"cannot read: {exc.strerror}", "")
        raise ConfigError([problem], source) from None
    except UnicodeDecodeError as exc:
        problem = ConfigProblem(
            FILE_PATH, repr(source), f"not UTF-8 (byte {exc.start})", "save the file as UTF-8"
        )
        raise ConfigError([problem], source) from None
    data, problems = _parse_yaml(text)
    if data is None:
        raise ConfigError(problems, source)
    try:
        settings = load_data(data, environ, source, base_dir=Path(path).parent, today=today)
    except ConfigError as exc:
        raise ConfigError([*problems, *exc.problems], source) from None
    if problems:
        raise ConfigError(problems, source)
    return settings
