"""Tool calls out of model text in every common format; a local chat model (`HFChatAgent`) and the same model
behind a real `evalsuite serve` process (`EndpointAgent`) making the same calls and answers."""

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import TOOL_MODEL_TURNS, serve_process, tool_model_messages, tool_model_tools
from evalsuite.slots.cases import Message, ToolCall
from evalsuite.slots.parsing import parse_tool_calls, render_tool_calls

TOOLS = {"get_weather", "calculate", "math.factorial"}
OSLO = ToolCall(name="get_weather", arguments={"city": "Oslo"})
SUM = ToolCall(name="calculate", arguments={"expression": "2 + 3"})


@pytest.mark.parametrize(("text", "expected_text", "calls"), [
    # Hermes / Qwen: several calls, text around them, arguments given as a JSON string
    ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
     '<tool_call>{"name": "calculate", "arguments": "{\\"expression\\": \\"2 + 3\\"}"}</tool_call>',
     "Let me check.", [OSLO, SUM]),
    # a final call cut off after its JSON (max tokens reached before the closing tag)
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}', "", [OSLO]),
    # explicit markup counts whatever the name: a call to a tool not offered is scored wrong, not dropped
    ('<tool_call>{"name": "get_wether", "arguments": {"city": "Oslo"}}</tool_call>', "",
     [ToolCall(name="get_wether", arguments={"city": "Oslo"})]),
    # Mistral: a JSON list, and the name[ARGS] form (with a call id)
    ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
     '{"name": "calculate", "arguments": {"expression": "2 + 3"}}]', "", [OSLO, SUM]),
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]calculate[CALL_ID]a1b2c3d4e[ARGS]'
     '{"expression": "2 + 3"}', "", [OSLO, SUM]),
    # Llama 3.x: bare JSON with "parameters", ";"-separated, a list, after <|python_tag|>
    ('{"name": "get_weather", "parameters": {"city": "Oslo"}}', "", [OSLO]),
    ('{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "calculate", "parameters": '
     '{"expression": "2 + 3"}}', "", [OSLO, SUM]),
    ('[{"name": "get_weather", "parameters": {"city": "Oslo"}}, {"name": "calculate", "parameters": '
     '{"expression": "2 + 3"}}]', "", [OSLO, SUM]),
    ('<|python_tag|>{"name": "lookup", "parameters": {"q": "x"}}', "",
     [ToolCall(name="lookup", arguments={"q": "x"})]),
    ("<|python_tag|>brave_search.call(query=\"Oslo weather\")", "",
     [ToolCall(name="brave_search.call", arguments={"query": "Oslo weather"})]),
    # OpenAI's wire shape, as some models echo it
    ('{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}}', "",
     [OSLO]),
    # functionary / Llama 3.1 custom tools
    ('<function=get_weather>{"city": "Oslo"}</function> and <function=calculate>{"expression": "2 + 3"}</function>',
     "and", [OSLO, SUM]),
    # fenced JSON and fenced Python calls
    ('Calling:\n```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```', "Calling:", [OSLO]),
    ("```python\n[get_weather(city='Oslo')]\n```", "", [OSLO]),
    # BFCL's Python call syntax: literals only, dotted names, tuples as lists
    ("[get_weather(city='Oslo'), math.factorial(n=5, opts={'exact': True}, seq=(1, -2.5), none=None)]", "",
     [OSLO, ToolCall(name="math.factorial", arguments={"n": 5, "opts": {"exact": True}, "seq": [1, -2.5],
                                                        "none": None})]),
])
def test_tool_calls_in_every_format(text, expected_text, calls):
    assert parse_tool_calls(text, TOOLS) == (expected_text, calls)


@pytest.mark.parametrize("text", [
    # malformed markup: no call, and the text stays
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Os',
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}}</tool_call>',
    "<tool_call>get_weather(city='Oslo')</tool_call>",
    '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}',
    '<function=get_weather>{"city": Oslo}</function>',
    # bare JSON or Python calls naming no offered tool, and JSON that is data, not a call
    '{"name": "send_email", "arguments": {"to": "a@b.c"}}',
    "[send_email(to='a@b.c')]",
    '{"condition": "snow", "temp_c": -3}',
    '{"name": "get_weather", "description": "Today\'s weather", "parameters": {"type": "object"}}',
    '```json\n{"name": "Oslo", "arguments": {}}\n```',
    # answers that merely mention a function
    "You can ask get_weather for that; I used get_weather(city) before.",
    "The result of calculate(expression='2 + 3') is 5.",
    # Python syntax that is not a literal call: nothing is evaluated
    "[get_weather(city=__import__('os').getcwd())]",
    "[get_weather('Oslo')]",
    "[get_weather(**{'city': 'Oslo'})]",
])
def test_what_is_not_a_call_stays_text(text):
    assert parse_tool_calls(text, TOOLS) == (text.strip(), [])


def test_bare_calls_need_offered_names_and_markup_roundtrips():
    bare = '{"name": "get_weather", "parameters": {"city": "Oslo"}}'
    assert parse_tool_calls(bare) == (bare, [])  # no tools named: bare JSON is an answer
    assert parse_tool_calls(bare, {"calculate"}) == (bare, [])
    assert parse_tool_calls("[TOOL_CALLS]get_weather[ARGS]{}") == ("", [ToolCall(name="get_weather")])
    calls = [OSLO, ToolCall(name="calculate", arguments={"expression": "ø ÷ 2"})]
    markup = render_tool_calls(calls)
    assert markup.splitlines()[0] == TOOL_MODEL_TURNS["call"]  # what the tool model was trained to emit
    assert parse_tool_calls(markup) == ("", calls)


torch = pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")

from evalsuite.serve import LocalModel
from evalsuite.slots.adapters import EndpointAgent, EndpointError, HFChatAgent, chat_messages, turn_seed, wire_names


@pytest.fixture(scope="module")
def local(tool_model):
    return HFChatAgent(tool_model, max_new_tokens=64)


def test_local_model_calls_the_tool_then_answers(local):
    tools = tool_model_tools()
    first = local.respond(None, tool_model_messages(), tools)
    assert (first.text, first.calls) == ("", [OSLO])
    assert first.prompt_tokens > 100 and 0 < first.completion_tokens < 64 and first.seconds > 0
    second = local.respond(None, tool_model_messages(after_call=True), tools)
    assert (second.text, second.calls) == (TOOL_MODEL_TURNS["answer"], [])
    # the template cannot render past tool calls: they are in the prompt as the markup the model emitted
    prompt = local.model.tokenizer.decode(local.prompt(tool_model_messages(after_call=True), tools))
    assert f"<|im_start|>assistant\n{TOOL_MODEL_TURNS['call']}<|im_end|>\n<|im_start|>tool\n" in prompt
    assert local.name == "tool-model"


def test_prompt_follows_what_the_template_can_render(tool_model):
    messages = chat_messages(tool_model_messages(after_call=True))
    assert messages[2]["tool_calls"][0]["id"] == messages[3]["tool_call_id"] == "call00000"
    tools = tool_model_tools()

    def rendered(template: str) -> str:
        model = LocalModel(tool_model)
        model.tokenizer.chat_template = template
        return model.tokenizer.decode(model.chat_ids(messages, tools))

    # a template blind to tools and tool calls: the tools go into the system message, the calls into the content
    plain = rendered("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:")
    assert plain.startswith("system: You are a helpful assistant.\n\nYou can call these tools")
    assert json.dumps(tools[1], ensure_ascii=False) in plain and "<tool_call>{" in plain
    assert f"assistant: {TOOL_MODEL_TURNS['call']}\ntool: " in plain
    # a template that renders both gets them natively (arguments as objects, not JSON strings)
    native = rendered("{% for t in tools or [] %}[{{ t.function.name }}]{% endfor %}{% for m in messages %}{{ m.role }}: "
                      "{{ m.content }}{% for c in m.tool_calls or [] %}<{{ c.function.name }} "
                      "{{ c.function.arguments | tojson }}>{% endfor %}{{ '\\n' }}{% endfor %}assistant:")
    assert native.startswith("[calculate][get_weather]system: You are a helpful assistant.\n")
    assert 'assistant: <get_weather {"city": "Oslo"}>\n' in native and "<tool_call>" not in native


@pytest.fixture(scope="module")
def served(tool_model):
    """`evalsuite serve` serving the tool model in its own process; yields its base URL."""
    with serve_process(tool_model) as url:
        yield url


def post(url: str, body: dict) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_endpoint_gives_the_local_models_calls_and_answer(served, local):
    tools = tool_model_tools()
    remote = EndpointAgent(served, max_tokens=64)
    assert remote.name == "tool-model" and remote.url == served + "/chat/completions"
    for after_call in (False, True):
        here = local.respond(None, tool_model_messages(after_call), tools)
        there = remote.respond(None, tool_model_messages(after_call), tools)
        assert (there.text, there.calls) == (here.text, here.calls)
        assert (there.prompt_tokens, there.completion_tokens) == (here.prompt_tokens, here.completion_tokens)
    # the route speaks OpenAI's tool-calling format
    messages = [m.chat() for m in tool_model_messages()]
    status, said = post(served + "/chat/completions", {"messages": messages, "tools": tools, "max_tokens": 64})
    assert status == 200 and said["choices"][0]["finish_reason"] == "tool_calls"
    assert said["choices"][0]["message"] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    # tool_choice "none": the tools are not offered, so no call comes back
    status, said = post(served + "/chat/completions", {"messages": messages, "tools": tools, "tool_choice": "none",
                                                       "max_tokens": 32})
    assert status == 200 and "tool_calls" not in said["choices"][0]["message"]
    assert said["choices"][0]["finish_reason"] != "tool_calls" and isinstance(said["choices"][0]["message"]["content"],
                                                                              str)


def test_endpoint_errors_are_clear(served, tool_model):
    messages = [m.chat() for m in tool_model_messages()]
    status, said = post(served + "/chat/completions", {"messages": messages, "tools": tool_model_tools(),
                                                       "tool_choice": "required"})
    assert status == 400 and "'tool_choice' must be" in said["error"]["message"]
    bad_call = {"role": "assistant", "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    status, said = post(served + "/chat/completions", {"messages": [*messages, bad_call]})
    assert status == 400 and "messages[2].tool_calls: the arguments of 'f' are not valid JSON" in said["error"]["message"]
    too_long = EndpointAgent(served + "/chat/completions", model="tool-model", max_tokens=1000)
    with pytest.raises(EndpointError, match=re.escape(served) + r"/chat/completions: HTTP 400: .*exceeds the model's "
                                            "context of 512 tokens"):
        too_long.respond(None, tool_model_messages(), tool_model_tools())
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}/v1/models: cannot reach the endpoint"):
        EndpointAgent(f"http://127.0.0.1:{port}/v1")


class _StubServer:
    """An OpenAI-style server that records each chat request and answers with `reply` (a chat message)."""

    def __init__(self, reply: dict, models: list[str] | None = None):
        self.requests: list[tuple[dict, dict]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send({"data": [{"id": m} for m in models or []]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((dict(self.headers), body))
                self._send({"choices": [{"message": reply}], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})

            def _send(self, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_endpoint_wire_format_and_fallbacks(caplog):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    history = [Message(role="user", content="Weather in Oslo and Paris?"),
               Message(role="assistant", tool_calls=[OSLO, ToolCall(name="get_weather", arguments={"city": "Paris"})]),
               Message(role="tool", name="get_weather", content="snow"),
               Message(role="tool", name="get_weather", content="cloudy")]
    # a server without native tool calling: the calls are read out of its text
    stub = _StubServer({"role": "assistant", "content": 'Sure. [TOOL_CALLS][{"name": "get_weather", '
                                                        '"arguments": {"city": "Oslo"}}]'})
    try:
        reply = EndpointAgent(stub.url, model="m", api_key="s3cret", seed=4).respond(None, history, tools)
        headers, body = stub.requests[0]
    finally:
        stub.close()
    assert (reply.text, reply.calls, reply.prompt_tokens, reply.completion_tokens) == ("Sure.", [OSLO], 7, 3)
    assert headers["Authorization"] == "Bearer s3cret"
    assert {k: body[k] for k in ("model", "temperature", "seed", "tool_choice", "tools")} == {
        "model": "m", "temperature": 0, "seed": turn_seed(4, 0, len(history)), "tool_choice": "auto", "tools": tools}
    assistant, *results = body["messages"][1:]
    assert assistant["content"] is None
    assert [(c["id"], c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        ("call00000", '{"city": "Oslo"}'), ("call00001", '{"city": "Paris"}')]
    assert results == [{"role": "tool", "content": "snow", "tool_call_id": "call00000"},
                       {"role": "tool", "content": "cloudy", "tool_call_id": "call00001"}]
    # native calls with undecodable arguments are kept, with no arguments; the log does not repeat them
    stub = _StubServer({"role": "assistant", "content": None, "tool_calls": [
        {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "secret-Osl'}}]})
    try:
        reply = EndpointAgent(stub.url, model="m").respond(None, history[:1], tools)
    finally:
        stub.close()
    assert (reply.text, reply.calls) == ("", [ToolCall(name="get_weather")])
    assert "not a JSON object" in caplog.text and "secret" not in caplog.text


def test_endpoint_model_defaults_to_the_first_listed():
    stub = _StubServer({}, models=["first", "second"])
    try:
        assert EndpointAgent(stub.url + "/").name == "first"
    finally:
        stub.close()
    stub = _StubServer({}, models=[])
    try:
        with pytest.raises(EndpointError, match="/v1/models: the endpoint lists no model"):
            EndpointAgent(stub.url)
    finally:
        stub.close()


def test_endpoint_sends_dotted_tool_names_as_openai_accepts_them_and_maps_calls_back():
    tools = [{"type": "function", "function": {"name": "math.factorial", "parameters": {"type": "object"}}},
             {"type": "function", "function": {"name": "math_gcd", "parameters": {"type": "object"}}}]
    history = [Message(role="user", content="5!?"),
               Message(role="assistant", tool_calls=[ToolCall(name="math.factorial", arguments={"n": 4})]),
               Message(role="tool", name="math.factorial", content="24"), Message(role="user", content="and 5?")]
    stub = _StubServer({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "math_factorial", "arguments": '{"n": 5}'}}]})
    try:
        reply = EndpointAgent(stub.url, model="m").respond(None, history, tools)
        _, body = stub.requests[0]
    finally:
        stub.close()
    assert [t["function"]["name"] for t in body["tools"]] == ["math_factorial", "math_gcd"]
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "math_factorial"
    assert reply.calls == [ToolCall(name="math.factorial", arguments={"n": 5})]
    # names that the mapping would merge are sent unchanged
    clash = [{"type": "function", "function": {"name": n}} for n in ("a.b", "a_b")]
    assert wire_names(clash) == {"a.b": "a.b", "a_b": "a_b"}
