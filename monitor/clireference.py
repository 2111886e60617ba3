"""The command-line reference as Markdown, read from the click commands themselves (README embeds it).

``python scripts/update_readme_cli.py`` rewrites README.md's block; a test
fails when the block and the commands disagree, so the reference cannot go
stale when a command or flag changes.
"""

from __future__ import annotations

import click


def _option_row(param: click.Option, ctx: click.Context) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    if not param.is_flag and not param.count:
        names += f" {param.make_metavar(ctx)}"
    help_text = " ".join((param.help or "").split())
    if param.show_default and param.default is not None and not param.is_flag:
        help_text += f" Default: `{param.default}`."
    cells = [cell.replace("|", "\\|") for cell in (names, help_text)]  # a bare | would end the cell
    return f"| {cells[0]} | {cells[1]} |"


def command_markdown(name: str, command: click.Command, parent: click.Context) -> str:
    """One command: its usage, what it does and a table of its options."""
    ctx = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(command.collect_usage_pieces(ctx))
    out = [f"#### `monitor {name} {usage}`\n"]
    out.append(" ".join((command.help or "").split("\n\n")[0].split()) + "\n")
    rest = [" ".join(part.split()) for part in (command.help or "").split("\n\n")[1:] if part.strip()]
    out.extend(part + "\n" for part in rest)
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    if options:
        out.append("| option | meaning |")
        out.append("|---|---|")
        out.extend(_option_row(p, ctx) for p in options)
        out.append("")
    return "\n".join(out)


def cli_markdown(group: click.Group) -> str:
    """Every command of ``group`` (``monitor``), by name; a command group's subcommands follow it."""
    ctx = click.Context(group, info_name="monitor")
    parts = []
    for name in sorted(group.commands):
        command = group.commands[name]
        parts.append(command_markdown(name, command, ctx))
        if isinstance(command, click.Group):
            sub_ctx = click.Context(command, info_name=name, parent=ctx)
            parts.extend(command_markdown(f"{name} {sub}", command.commands[sub], sub_ctx)
                         for sub in sorted(command.commands))
    return "\n".join(parts).rstrip() + "\n"


def full_cli() -> click.Group:
    """The ``monitor`` group with the commands the installed plugins add (as ``main()`` builds it)."""
    from .cli import _register_plugin_commands, cli

    _register_plugin_commands()
    return cli
