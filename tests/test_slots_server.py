"""The slot benchmarks' MCP tool server, run for real over stdio by the harness client."""

import json
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the eval extra is part of the dev install (make install-dev)")

from evalsuite.slots.client import ToolNotAllowed, ToolServer
from evalsuite.slots.tools_server import calculate, convert_units

ALL = ["calculate", "convert_units", "kv_set", "kv_get", "kv_delete", "get_weather", "list_events"]


def test_tools_over_stdio_answer_deterministically():
    with ToolServer(allow=ALL) as server:
        names = [t["function"]["name"] for t in server.tools]
        assert sorted(names) == sorted(ALL)
        schema = next(t for t in server.tools if t["function"]["name"] == "convert_units")["function"]["parameters"]
        assert schema["required"] == ["value", "from_unit", "to_unit"]
        assert float(server.call("calculate", {"expression": "(3 + 4) * 2"}).text) == 14
        assert float(server.call("convert_units", {"value": 100, "from_unit": "C", "to_unit": "F"}).text) == 212
        assert json.loads(server.call("get_weather", {"city": "Oslo"}).text) == {"condition": "snow", "temp_c": -3}
        assert json.loads(server.call("list_events", {"date": "2026-12-02"}).text) == ["11:00 dentist"]
        missing = server.call("get_weather", {"city": "Atlantis"})
        assert missing.error and "no weather for 'Atlantis'" in missing.text  # the reason reaches the tool slot
        unsafe = server.call("calculate", {"expression": "__import__('os').getcwd()"})
        assert unsafe.error and "not arithmetic" in unsafe.text


def test_only_allow_listed_tools_are_offered_and_run(tmp_path: Path):
    with ToolServer(allow=["calculate"]) as server:
        assert [t["function"]["name"] for t in server.tools] == ["calculate"]
        with pytest.raises(ToolNotAllowed, match="'kv_set' is not on the allow-list"):
            server.call("kv_set", {"key": "a", "value": "b"})
    with pytest.raises(ToolNotAllowed, match="does not offer: \\['rm_rf'\\]"), ToolServer(allow=["calculate", "rm_rf"]):
        pass


def test_key_value_store_persists_in_its_file(tmp_path: Path):
    import sys

    store = tmp_path / "kv.json"
    command = [sys.executable, "-m", "evalsuite.slots.tools_server", "--store", str(store)]
    with ToolServer(allow=["kv_set", "kv_get", "kv_delete"], command=command) as server:
        assert server.call("kv_set", {"key": "colour", "value": "blue"}).text == "ok"
        assert server.call("kv_get", {"key": "colour"}).text == "blue"
    with ToolServer(allow=["kv_get", "kv_delete"], command=command) as server:  # a new server process
        assert server.call("kv_get", {"key": "colour"}).text == "blue"
        assert server.call("kv_delete", {"key": "colour"}).text == "true"
    assert json.loads(store.read_text()) == {}


def test_tool_functions():
    assert calculate("2 ** 10 - 24 // 5") == 1020
    assert convert_units(1, "mi", "km") == pytest.approx(1.609344)
    assert convert_units(0, "K", "C") == pytest.approx(-273.15)
    with pytest.raises(ValueError, match="cannot convert kg to m"):
        convert_units(1, "kg", "m")
    with pytest.raises(ValueError, match="exponent too large"):
        calculate("9 ** 999999")
