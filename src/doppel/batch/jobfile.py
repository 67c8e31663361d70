"""The batch job file: a TOML file of shots to merge, with defaults, read into one frozen, validated object.

::

    [batch]                      # optional: how the work is cut (see doppel.batch.plan)
    chunk_frames = 0             # frames per chunk of a long shot; 0: chosen from the shots and workers

    [defaults]                   # any shot key or merge setting, for every shot that does not set it
    model = "alice2actor"
    crf = 18
    colour = "rct"

    [[shot]]
    name = "sh010"               # letters, digits, '.', '_' or '-'
    input = "plates/sh010.mp4"   # a video or a folder of images; relative to this file's folder
    output = "out/sh010.mp4"     # .mp4, .mov or .m4v (content credentials are embedded)
    identity = "actor"           # destination person (default: the model's)
    # model = ["a2actor1", "b2actor2"]   # several people in one pass: each model swaps its own person
    blend = "poisson"            # any merge setting (see `doppel merge --help`)
    overrides = ["120-180:keep_original=true"]
    eval = true                  # also measure the result (doppel eval), written beside the output

Errors are one line naming the file, the shot and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from doppel.core.config import Settings, short_repr
from doppel.core.errors import ConfigError, DoppelError
from doppel.merge.settings import MergeSettings, parse_override

_SHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OUTPUT_CONTAINERS = (".mp4", ".mov", ".m4v")  # what chunks are joined into by stream copy


class BatchOptions(Settings):
    """The ``[batch]`` table: how the work is cut and spread."""

    chunk_frames: int = Field(0, ge=0, le=1_000_000, description="frames per chunk of a long shot (0: automatic)")
    worker_cpus: float = Field(1.0, gt=0, le=64, description="CPUs each Ray worker asks for")


class Shot(Settings):
    """One shot of the batch, with the defaults applied and paths resolved against the job file's folder."""

    name: str
    input: Path
    output: Path
    model: str
    others: tuple[str, ...] = ()  # more models, each swapping its own destination person in the same pass
    identity: str | None = None
    eval: bool = False
    crf: int = Field(18, ge=0, le=51)
    preset: str = "veryfast"
    batch: int = Field(8, ge=1, le=256, description="faces per inference batch")
    settings: MergeSettings = Field(default_factory=MergeSettings)
    overrides: tuple[tuple[int, int, dict[str, Any]], ...] = ()


class JobFile(Settings):
    path: Path
    options: BatchOptions = Field(default_factory=BatchOptions)
    shots: tuple[Shot, ...]

    def shot(self, name: str) -> Shot:
        for s in self.shots:
            if s.name == name:
                return s
        raise ConfigError(f"no shot {name!r} (shots: {', '.join(s.name for s in self.shots)})", path=self.path)


SHOT_KEYS = frozenset(Shot.model_fields) - {"settings", "others"}
SETTING_KEYS = frozenset(MergeSettings.model_fields)


def _split(table: Mapping[str, Any], where: str, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A shot or defaults table as (shot keys, merge settings); refuses anything else."""
    shot, settings = {}, {}
    for key, value in table.items():
        if key in SHOT_KEYS:
            shot[key] = value
        elif key in SETTING_KEYS:
            settings[key] = value
        else:
            raise ConfigError(f"{where}: unknown key {key!r} (shot keys: {', '.join(sorted(SHOT_KEYS))}; or any "
                              "merge setting, see `doppel merge --help`)", path=path)
    return shot, settings


def _resolve(value: Any, folder: Path, key: str, where: str, path: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a path (text), got {short_repr(value)}", path=path)
    p = Path(value).expanduser()
    return p if p.is_absolute() else folder / p


def _shot(table: Mapping[str, Any], defaults: tuple[dict[str, Any], dict[str, Any]], index: int,
          path: Path) -> Shot:
    where = f"shot {table.get('name', index + 1)!r}" if isinstance(table.get("name"), str) else f"shot {index + 1}"
    own, own_settings = _split(table, where, path)
    data = {**defaults[0], **own}
    for key in ("name", "input", "output", "model"):
        if key not in data:
            raise ConfigError(f"{where}: missing {key!r}", path=path)
    if not isinstance(data["name"], str) or not _SHOT_NAME.match(data["name"]):
        raise ConfigError(f"{where}: name must be 1-64 letters, digits, '.', '_' or '-'", path=path)
    for key in ("input", "output"):
        data[key] = _resolve(data[key], path.parent, key, where, path)
    if isinstance(data["model"], list):  # several people: the first model's render, the others composited after
        names = data["model"]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{where}: model must be a model name or a list of model names", path=path)
        if len(set(names)) < len(names):
            raise ConfigError(f"{where}: the same model is listed twice", path=path)
        if len(names) > 1 and data.get("identity"):
            raise ConfigError(f"{where}: identity works with one model only (several models: each swaps its "
                              "model's own destination person)", path=path)
        data["model"], data["others"] = names[0], tuple(names[1:])
    if data["output"].suffix.lower() not in OUTPUT_CONTAINERS:
        raise ConfigError(f"{where}: output must be one of {', '.join(OUTPUT_CONTAINERS)} (chunks are joined "
                          f"into a video that carries content credentials), got {data['output'].name!r}", path=path)
    overrides = data.pop("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{where}: overrides must be a list of 'FIRST[-LAST]:key=value' strings", path=path)
    try:
        data["overrides"] = tuple(parse_override(o) for o in overrides)
        data["settings"] = MergeSettings.validated({**defaults[1], **own_settings})
        return Shot.validated(data)
    except DoppelError as exc:
        raise ConfigError(f"{where}: {exc.message}", path=path) from None


def parse_jobfile(text: str, path: Path) -> JobFile:
    """The job file's ``text`` (read from ``path``, which relative paths are resolved against) validated."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", path=path) from None
    unknown = set(doc) - {"batch", "defaults", "shot"}
    if unknown:
        raise ConfigError(f"unknown table(s) {', '.join(sorted(unknown))}; a job file has [batch], [defaults] "
                          "and [[shot]] tables", path=path)
    if not isinstance(doc.get("shot"), list) or not doc["shot"]:
        raise ConfigError("no shots: add one [[shot]] table per shot", path=path)
    defaults_table = doc.get("defaults", {})
    if "name" in defaults_table or "overrides" in defaults_table:
        raise ConfigError("[defaults]: name and overrides belong to each shot", path=path)
    defaults = _split(defaults_table, "[defaults]", path)
    try:
        options = BatchOptions.validated(doc.get("batch", {}))
    except ConfigError as exc:
        raise ConfigError(f"[batch]: {exc.message}", path=path) from None
    shots = tuple(_shot(t, defaults, i, path) for i, t in enumerate(doc["shot"]))
    _check_unique(shots, path)
    return JobFile(path=path, options=options, shots=shots)


def _check_unique(shots: tuple[Shot, ...], path: Path) -> None:
    names: set[str] = set()
    outputs: dict[Path, str] = {}
    for s in shots:
        if s.name in names:
            raise ConfigError(f"shot {s.name!r} is listed twice; shot names must be unique", path=path)
        names.add(s.name)
        out = s.output.resolve()
        if out in outputs:
            raise ConfigError(f"shots {outputs[out]!r} and {s.name!r} write the same output {s.output}", path=path)
        if out == s.input.resolve():
            raise ConfigError(f"shot {s.name!r}: output would overwrite its input", path=path)
        outputs[out] = s.name


def load_jobfile(path: str | Path) -> JobFile:
    """Read and validate a job file (raises :class:`ConfigError` naming the file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such job file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the job file ({exc})", path=path) from None
    return parse_jobfile(text, path.resolve().parent / path.name)
