"""The Lua files are what the broker runs: each one loaded, each with its KEYS/ARGV
stated at its top, none building a key name of its own (so a per-site ACL's key patterns
can name every key a script touches), and the lease-loss reply the one errors.py reads."""

from pathlib import Path

from platform_core.broker import keys, scripts
from platform_core.errors import LeaseLost

LUA = Path(scripts.__file__).parent / "lua"
HELPERS = {
    "clock",
    "clock_checked",
    "mark_redelivered",
    "result_write",
}  # included by others, never run alone


def test_every_lua_file_is_a_script_or_an_included_helper():
    files = {path.stem for path in LUA.glob("*.lua")}
    loaded = {script.name for script in scripts.ALL}
    assert files == loaded | HELPERS
    for helper in HELPERS:
        assert any(f"--#include {helper}" in script.source for script in scripts.ALL) is False
        assert any(f"--#include {helper}\n" in (LUA / f"{name}.lua").read_text() for name in loaded)


def test_each_script_states_its_keys_and_arguments_at_its_top():
    for script in scripts.ALL:
        lines = script.source.splitlines()
        assert lines[0] == "#!lua", f"{script.name}: not a flagged script (#!lua)"
        header = []
        for line in lines[1:]:
            if not line.startswith("--"):
                break
            header.append(line)
        assert any("KEYS" in line for line in header), f"{script.name}: no KEYS in its header"
        assert "Returns" in "\n".join(header), f"{script.name}: its header says no reply"


def test_no_script_builds_a_key_name_of_its_own():
    for script in scripts.ALL:
        assert keys.PREFIX not in script.source, script.name
        # Key names join their parts with ':'; only SWEEP joins one (a dead worker's held
        # lists, from the prefix it is given: keys.held's layout).
        joins = "':'" in script.source
        assert joins == (script is scripts.SWEEP), script.name


def test_the_lease_loss_reply_is_the_one_the_code_reads():
    assert f"'{LeaseLost.REPLY_CODE} '" in scripts.FETCH.source
    lost = LeaseLost.from_reply(Exception(f"{LeaseLost.REPLY_CODE} host:1:ab"))
    assert lost is not None
    assert lost.worker_id == "host:1:ab"
    assert LeaseLost.from_reply(Exception("OOM command not allowed")) is None
