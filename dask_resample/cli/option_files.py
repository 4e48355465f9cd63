"""Option files (``--config``, YAML or TOML) and the merge of defaults < option file < command line
(:func:`resolve`), for any set of options.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..params import check_wcs_pars
from .record_options import CLIError, Option

__all__ = ["load_options_file", "resolve"]


# ----------------------------------------------------------------------------
# option files and the merge of defaults, file and command line
# ----------------------------------------------------------------------------
def _norm_key(key: Any) -> str:
    return str(key).strip().lstrip("-").replace("-", "_")


def load_options_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or TOML options file (``--config``) into a flat dictionary.

    Keys are the long option names, with dashes or underscores. A ``wcs_pars``
    table may hold the output-grid keys (``pixel_scale``, ``rotation``, ...).

    Parameters
    ----------
    path : path-like
        ``*.toml`` is read as TOML, anything else as YAML.

    Returns
    -------
    dict
        Normalised key -> raw value.

    Raises
    ------
    CLIError
        If the file is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{path}: options file (--config) not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            doc = tomllib.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # any parser error: reported in one line naming the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "TOML" if path.suffix.lower() == ".toml" else "YAML"
        raise CLIError(f"{path}: not a valid {kind} file ({first})") from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise CLIError(f"{path}: expected a mapping of option names to values")
    out: dict[str, Any] = {}
    for key, value in doc.items():
        k = _norm_key(key)
        if k == "wcs_pars":
            if not isinstance(value, Mapping):
                raise CLIError(f"{path}: wcs_pars: expected a mapping")
            try:
                pars = check_wcs_pars({_norm_key(kk): vv for kk, vv in value.items()})
            except KeyError as exc:
                raise CLIError(f"{path}: {exc.args[0]}") from None
            for kk, vv in pars.items():
                out[kk] = vv
            continue
        out[k] = value
    return out


def resolve(
    args: argparse.Namespace,
    options: Sequence[Option],
    *,
    keys_of: str,
    defaults: Mapping[str, Any] | None = None,
    aliases: Mapping[str, str] | None = None,
    config_path: Any = None,
    positional: Sequence[str] = (),
    from_args: bool = True,
) -> dict[str, Any]:
    """Merge defaults < option file < command line into one dictionary (option name -> value).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    options : sequence of Option
        The options to resolve; each gets a value (``None`` when it has no default).
    keys_of : str
        What the keys of the option file are, for the message naming an unknown key.
    defaults : mapping, optional
        Option name -> default.
    aliases : mapping, optional
        Option-file keys that set a negated switch (``enable_ctx`` -> ``no_ctx``, inverted).
    config_path : path-like, optional
        The option file.
    positional : sequence of str
        Further keys taken as they are, from the file or from ``args`` (``inputs``, ``output``, ...).
    from_args : bool
        Whether values given on the command line (in ``args``) win.

    Raises
    ------
    CLIError
        For an unknown key or a bad value in the option file.
    """
    defaults = defaults or {}
    aliases = aliases or {}
    values: dict[str, Any] = {opt.dest: defaults.get(opt.dest) for opt in options}
    if config_path:
        source = str(config_path)
        by_dest = {opt.dest: opt for opt in options}
        for key, raw in load_options_file(config_path).items():
            if key in aliases:
                if not isinstance(raw, bool):
                    raise CLIError(f"{source}: {key}: expected true or false, got {raw!r}")
                values[aliases[key]] = not raw
            elif key in positional:
                values[key] = raw
            elif key in by_dest:
                values[key] = by_dest[key].from_config(raw, source)
            else:
                raise CLIError(f"{source}: unknown key {key!r}; keys are the {keys_of}")
    if from_args:
        for opt in options:
            if hasattr(args, opt.dest):
                values[opt.dest] = getattr(args, opt.dest)
        for name in positional:
            given = getattr(args, name, None)
            if given not in (None, []):
                values[name] = given
    return values
