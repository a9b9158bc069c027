"""Helpers every `fastemb` command shares: options rendered from the options classes, --json/--quiet/--force/-o,
output claiming and table printing. Importing it loads neither numba nor the kernels."""
from __future__ import annotations

import json
import os

import click

from fastemb import registry
from fastemb.errors import OptionError
from fastemb.options import RunOptions, describe_default


# ------------------------------------------------------------------------------- options from specs
def click_type(spec):
    if spec.choices:
        return click.Choice([str(c) for c in spec.choices])
    return {int: int, float: float, str: str, "size": str}[spec.kind]


def spec_option(name, spec, defaults_note):
    """A click option for an option `name` described by `spec`; default None so that what the user gave
    can be told from what was left to the defaults (`defaults_note` shows those)."""
    help_text = f"{spec.help} [{defaults_note}]"
    if spec.kind is bool:
        decl = spec.flags or f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}"
        return click.option(decl, name, default=None, help=help_text)
    return click.option(f"--{name.replace('_', '-')}", name, type=click_type(spec), default=None,
                        metavar=spec.metavar, help=help_text)


def options_of(*classes):
    """Decorator: every option of these classes, each with its default."""
    def decorate(f):
        for cls in reversed(classes):
            for name, (_, spec, default) in reversed(list(cls.specs().items())):
                f = spec_option(name, spec, f"default: {describe_default(spec, default)}")(f)
        return f
    return decorate


def counting_options_of(f):
    """Decorator: the CoocOptions, each with its default per algorithm that counts (`fastemb cooc --for`)."""
    from fastemb.cooc import CoocOptions
    algos = [a for a in registry.all_algorithms() if a.input == "cooc"]
    for name, (_, spec, _) in reversed(list(CoocOptions.specs().items())):
        groups = {}
        for a in algos:
            groups.setdefault(describe_default(spec, a.options().cooc.get(name)), []).append(a.name)
        note = "default: " + "; ".join(f"{', '.join(names)}: {d}" for d, names in groups.items())
        f = spec_option(name, spec, note)(f)
    return f


def algorithm_options(f):
    """Decorator: the union of every registered algorithm's options, with each algorithm's default."""
    seen = {}
    for a in registry.all_algorithms():
        for name, (_, spec, default) in a.options.specs().items():
            seen.setdefault(name, (spec, []))[1].append((a.name, describe_default(spec, default)))
    for name, (spec, per_algo) in reversed(list(seen.items())):
        groups = {}
        for algo, d in per_algo:
            groups.setdefault(d, []).append(algo)
        note = "; ".join(f"{', '.join(algos)}: {d}" for d, algos in groups.items())
        f = spec_option(name, spec, note)(f)
    return f


def require(ok, name, problem):
    if not ok:
        raise OptionError(name, problem)


def given(params):
    return {k: v for k, v in params.items() if v is not None}


def run_options(f):
    return options_of(RunOptions)(f)


def set_quiet(ctx, param_, value):
    if value:
        from fastemb.progress import set_cli_quiet
        set_cli_quiet()
    return value


def quiet_option(f):
    return click.option("--quiet", "-q", is_flag=True, callback=set_quiet, help="Print nothing but errors.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON result or summary on stdout.")(f)


def output_option(f):
    f = click.option("--force", is_flag=True, help="Overwrite an existing output (and discard an unfinished "
                                                   "run's checkpoint).")(f)
    return click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")(f)


def checkpoint_options(inputs, free):
    """--checkpoint-every and --resume, one policy for every command that trains in epochs (fastemb.checkpoint):
    `inputs` what a resumed run reads again, `free` the options it may change besides --checkpoint-every."""
    def decorate(f):
        f = click.option("--resume", type=click.Path(dir_okay=False), default=None,
                         help=f"Continue the run saved in this checkpoint, with its {inputs} and settings (only "
                              f"{free} and --checkpoint-every may change; other options given must agree).")(f)
        return click.option("--checkpoint-every", default=None, metavar="N",
                            help="Write OUTPUT.ckpt every N epochs (1, 2epochs) or minutes (10min); kept if the run "
                                 "stops.")(f)
    return decorate


def tmp_dir_option(f):
    return click.option("--tmp-dir", type=click.Path(file_okay=False), default=None,
                        help="Where the encoded corpus and spilled runs go (default: system temp).")(f)


def jsonable(x):
    """Plain JSON values: numpy scalars and arrays as numbers and lists, NaN and infinity as null."""
    import math
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def echo_json(data, indent=None):
    click.echo(json.dumps(jsonable(data), indent=indent, allow_nan=False, default=str))


def summary(as_json, data, line, quiet):
    if as_json:
        echo_json(data)
    if not quiet:
        click.echo(line, err=True)


def dask_option(what):
    def deco(f):
        return click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
                            help=f"{what} on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for "
                                 f"a LocalCluster of N worker processes (pip install 'fastemb[dask]'). The corpus "
                                 f"may then also be fsspec URLs (s3://..., gs://...).")(f)
    return deco


def claim_output(output, force):
    """Lock `output` for this command (a second run writing it fails at once) and check it can be written."""
    from fastemb.files import output_lock
    from fastemb.store import check_output
    click.get_current_context().with_resource(output_lock(output))
    check_output(output, force)


def load_vectors(path, fmt=None, vocab=None):
    from fastemb.embeddings import load
    return load(path, fmt, vocab)


def printable(text) -> str:
    """A string from a file, safe to print on one line: control characters, line breaks and other
    unprintable characters as Python escapes (a crafted label cannot break the one-line-per-text output or
    send escape sequences to the terminal)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def print_table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    click.echo("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def topn_option(default):
    return click.option("-k", "--topn", "topn", type=int, default=default, show_default=True,
                        help="How many answers per query.")


def restrict_option(text, default=None):
    return click.option("--restrict", "restrict_vocab", type=int, default=default, show_default=default is not None,
                        help=text)


def process_seconds():
    """Seconds since this process started (Linux's /proc; 10 ms resolution), or None where it cannot be read:
    the start-up cost (interpreter, imports, kernels' cache) a command reports before its first pass."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None
