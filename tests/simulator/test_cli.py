"""The command line shared by `python -m simulator` and `manage.py simulate-fleet`."""

import pytest

from simulator import DEMO_MISBEHAVIOUR, Misbehaviour


def test_the_command_line_misbehaves_like_the_demo_unless_told_otherwise():
    import argparse

    from simulator.cli import _misbehaviour, misbehaviour_option

    assert misbehaviour_option(None) == DEMO_MISBEHAVIOUR, "without --misbehave: every alarm type shows"
    assert misbehaviour_option([_misbehaviour("none")]) == {}
    asked = [_misbehaviour("overheat"), _misbehaviour("run_dry:0.5"), _misbehaviour("overheat:1")]
    assert misbehaviour_option(asked) == {Misbehaviour.OVERHEAT: 1.0, Misbehaviour.RUN_DRY: 0.5}
    assert _misbehaviour("go_silent") == (Misbehaviour.GO_SILENT, 0.1)
    for wrong in ("explode", "overheat:2", "overheat:lots"):
        with pytest.raises(argparse.ArgumentTypeError):
            _misbehaviour(wrong)


def test_the_command_line_takes_the_install_failures_a_rollout_demo_needs():
    import argparse

    from simulator.cli import _misbehaviour, add_fleet_arguments

    parser = argparse.ArgumentParser()
    add_fleet_arguments(parser)
    base = ["--devices", "3", "--base-url", "http://localhost:8000"]

    assert _misbehaviour("fail_installs:0.5") == (Misbehaviour.FAIL_INSTALLS, 0.5)
    assert parser.parse_args(base).install_failure_probability == 0.0
    assert (
        parser.parse_args([*base, "--install-failure-probability", "0.2"]).install_failure_probability == 0.2
    )
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--install-failure-probability", "2"])
