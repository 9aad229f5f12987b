"""The command table: every command module is listed once, under the name it registers, and
its --help works; the top-level help lists them all without importing them."""

from __future__ import annotations

import argparse
import pkgutil

import pytest

import radiologynet.cli.commands as commands
from radiologynet.cli import main
from radiologynet.cli.commands import COMMANDS, load


def test_every_command_module_is_in_the_table():
    modules = {
        m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")
    }
    assert modules == {entry.module for entry in COMMANDS.values()}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_register_fills_the_parser_it_is_given(name):
    """The table names each command and gives its help; the module only fills the parser
    it receives (description, options, func)."""
    parser = argparse.ArgumentParser(prog=name)
    load(name).register(parser)
    assert parser.description
    assert callable(parser.get_default("func"))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_sub_command_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert f"usage: radiologynet {name}" in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for name, entry in COMMANDS.items():
        assert name in out and entry.help.split()[0] in out


def test_no_command_prints_help_and_unknown_command_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["no-such-command"])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_download_needs_names_or_all(capsys, tmp_path):
    assert main(["download", "--to", str(tmp_path)]) == 2
    assert "or pass --all" in capsys.readouterr().err
    assert main(["download", "resnet18.radiologynet", "--all", "--to", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_multi_line_errors_print_as_one_line(monkeypatch, capsys):
    from radiologynet.cli.commands import info
    from radiologynet.errors import ImageReadError

    def fail(args):
        raise ImageReadError("2 unreadable image(s):\n  a.dcm: truncated\n  b.png: empty\n")

    monkeypatch.setattr(info, "run", fail)
    monkeypatch.setattr(info, "register", lambda parser: parser.set_defaults(func=fail))
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.dcm: truncated; b.png: empty" in err
