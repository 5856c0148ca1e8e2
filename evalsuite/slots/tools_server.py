"""The deterministic MCP tool server the slot benchmarks run against, over stdio:

    python -m evalsuite.slots.tools_server [--store FILE]

Tools: `calculate` (arithmetic, parsed safely, never `eval`), `convert_units` (length, mass, temperature),
`kv_set` / `kv_get` / `kv_delete` (a key-value store in the JSON file `--store` names, read on every call;
in memory without one),
`get_weather` and `list_events` (fixed fixtures: the same answer every time, so scores are reproducible).
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: operator.pow, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv, ast.USub: operator.neg,
              ast.UAdd: operator.pos}
# to metres, kilograms; temperatures are handled apart (offsets)
_LENGTH = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344}
_MASS = {"g": 0.001, "kg": 1.0, "t": 1000.0, "oz": 0.028349523125, "lb": 0.45359237}
WEATHER = {"oslo": {"condition": "snow", "temp_c": -3}, "paris": {"condition": "cloudy", "temp_c": 9},
           "beijing": {"condition": "sunny", "temp_c": 4}, "new york": {"condition": "rain", "temp_c": 7},
           "tokyo": {"condition": "clear", "temp_c": 12}}
EVENTS = {"2026-12-01": ["09:00 team stand-up", "14:00 design review"], "2026-12-02": ["11:00 dentist"]}


def calculate(expression: str) -> float:
    """The value of an arithmetic expression (+ - * / // % ** and parentheses)."""
    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:60]}")
    try:
        return value(ast.parse(expression, mode="eval"))
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """`value` in `from_unit` expressed in `to_unit` (mm cm m km in ft yd mi; g kg t oz lb; C F K)."""
    temps = {"C", "F", "K"}
    if from_unit in temps and to_unit in temps:
        celsius = {"C": value, "F": (value - 32) * 5 / 9, "K": value - 273.15}[from_unit]
        return round({"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + 273.15}[to_unit], 6)
    for table in (_LENGTH, _MASS):
        if from_unit in table and to_unit in table:
            return round(value * table[from_unit] / table[to_unit], 6)
    raise ValueError(f"cannot convert {from_unit} to {to_unit}")


def build_server(store: Path | None = None) -> MCPServer:
    """The tool server; `store` is the key-value store's JSON file (created on first write)."""
    app = MCPServer("corpusloop-slot-tools", instructions="Deterministic tools for the evalsuite slot benchmarks.",
                    log_level="ERROR")
    memory: dict[str, str] = {}

    # the store is re-read on every call, so the harness can reset it between cases by rewriting the file
    # (restarting the server per case would cost about a second each)
    def load() -> dict[str, str]:
        return json.loads(store.read_text(encoding="utf-8")) if store and store.is_file() else memory

    def save(data: dict[str, str]) -> None:
        if store:
            tmp = store.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            tmp.replace(store)

    @app.tool(name="calculate")
    def calculate_tool(expression: str) -> float:
        """Evaluate an arithmetic expression, e.g. '(3 + 4) * 2'."""
        try:
            return calculate(expression)
        except (ValueError, ZeroDivisionError, OverflowError) as e:  # the model sees why, in the tool slot
            raise ToolError(str(e)) from None

    @app.tool(name="convert_units")
    def convert_units_tool(value: float, from_unit: str, to_unit: str) -> float:
        """Convert a quantity between units of length (mm, cm, m, km, in, ft, yd, mi), mass (g, kg, t, oz, lb)
        or temperature (C, F, K)."""
        try:
            return convert_units(value, from_unit, to_unit)
        except ValueError as e:
            raise ToolError(str(e)) from None

    @app.tool()
    def kv_set(key: str, value: str) -> str:
        """Store `value` under `key`."""
        data = load()
        data[key] = value
        save(data)
        return "ok"

    @app.tool()
    def kv_get(key: str) -> str:
        """The value stored under `key` (an empty string when there is none)."""
        return load().get(key, "")

    @app.tool()
    def kv_delete(key: str) -> bool:
        """Delete `key`; whether it existed."""
        data = load()
        existed = data.pop(key, None) is not None
        save(data)
        return existed

    @app.tool()
    def get_weather(city: str) -> dict:
        """Today's weather in a city: condition and temperature in degrees Celsius."""
        found = WEATHER.get(city.strip().lower())
        if found is None:
            raise ToolError(f"no weather for {city!r}")
        return found

    @app.tool()
    def list_events(date: str) -> list[str]:
        """The calendar's events on a date (YYYY-MM-DD)."""
        return EVENTS.get(date, [])

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None, help="JSON file of the key-value store")
    args = parser.parse_args()
    build_server(args.store).run("stdio")


if __name__ == "__main__":
    main()
