"""The official OpenAI Python SDK against trickle's simulated model.

Run by tests/api/openai_sdk.rs (trickle started with known settings):
    python sdk_check.py BASE_URL REASONING_TOKENS RESPONSES_BASE_URL OUTPUT_TOKENS
Streams chat and completions with and without usage, asks without
streaming, checks that bad requests raise the SDK's typed errors, and
streams and asks the Responses API (the second server stops answers on its
own after OUTPUT_TOKENS tokens, so they end completed), and parses streamed
and whole tool calls on both APIs.
Exits non-zero with the failed check on stderr.
"""

import json
import sys

import openai
from openai import OpenAI

WORDS = [
    "the", "stream", "of", "tokens", "flows", "from", "a", "simulated", "model", "to", "every",
    "client", "at", "its", "own", "pace", "and", "each", "word", "arrives", "when", "it", "is",
    "ready", "so", "that", "latency", "shows", "in", "what", "users", "see",
]


def text(n):
    """What trickle's model says in n tokens (docs/llm.md: the simulated model)."""
    return "".join(" " + WORDS[i % len(WORDS)] for i in range(n))


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def responses(base, reasoning, output_tokens):
    """The Responses API: every event type of a streamed answer, in order,
    ending completed with the usage; one response object without stream."""
    client = OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0, timeout=30)
    kinds, text_deltas, reasoning_deltas, final = [], "", "", None
    for event in client.responses.create(model="trickle-sim", input="Say a few tokens.",
                                         max_output_tokens=50, stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text_deltas += event.delta
        elif event.type == "response.reasoning_text.delta":
            reasoning_deltas += event.delta
        elif event.type == "response.completed":
            final = event.response
    expected = ["response.created", "response.in_progress", "response.output_item.added",
                "response.reasoning_text.delta", "response.reasoning_text.done", "response.output_item.done",
                "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done", "response.output_item.done",
                "response.completed"]
    check(sorted(set(kinds)) == sorted(set(expected)), f"responses stream: every event type ({sorted(set(kinds))})")
    check(kinds[0] == "response.created" and kinds[-1] == "response.completed",
          f"responses stream: created first, completed last ({kinds[0]}, {kinds[-1]})")
    answer = output_tokens - reasoning
    check(text_deltas == text(answer), f"responses stream: the text {text_deltas!r}")
    check(reasoning_deltas == text(reasoning), f"responses stream: the reasoning {reasoning_deltas!r}")
    check(final is not None and final.status == "completed" and final.usage.output_tokens == output_tokens
          and final.usage.output_tokens_details.reasoning_tokens == reasoning
          and final.output_text == text(answer), f"responses stream: completed with usage ({final})")
    whole = client.responses.create(model="trickle-sim",
                                    input=[{"role": "user", "content": "Say a few tokens."}],
                                    max_output_tokens=50)
    check(whole.status == "completed" and whole.output_text == text(answer)
          and whole.usage.output_tokens == output_tokens and whole.usage.input_tokens == 5,
          f"responses: one object with the text and usage ({whole.output_text!r}, {whole.usage})")


WEATHER = {"type": "object",
           "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
           "required": ["city", "unit"]}


def fits_weather(arguments):
    """Whether a call's arguments are JSON that fits WEATHER."""
    try:
        args = json.loads(arguments)
    except ValueError:
        return False
    return isinstance(args.get("city"), str) and args.get("unit") in ("c", "f")


def tool_calls(base, reasoning):
    """Tool calls as the SDK parses them: chat streamed (deltas gathered by
    index) and whole, and the Responses API's function_call item."""
    client = OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0, timeout=30)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    calls, finish = {}, None
    for chunk in client.chat.completions.create(model="trickle-sim", messages=messages, tools=tools,
                                                tool_choice="required", max_tokens=200, stream=True):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["name"] = call.function.name or entry["name"]
                    entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    call = calls.get(0, {})
    check(list(calls) == [0] and call["name"] == "get_weather" and (call["id"] or "").startswith("call_")
          and fits_weather(call["arguments"]) and finish == "tool_calls",
          f"chat stream: one tool call, its arguments fit the schema ({calls}, {finish})")
    whole = client.chat.completions.create(model="trickle-sim", messages=messages, tools=tools,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    message = whole.choices[0].message
    check(message.content is None and len(message.tool_calls) == 1
          and message.tool_calls[0].function.name == "get_weather"
          and fits_weather(message.tool_calls[0].function.arguments)
          and whole.choices[0].finish_reason == "tool_calls",
          f"chat: a whole tool call ({message})")
    # The conversation goes on with the tool's result.
    history = messages + [message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"}]
    after = client.chat.completions.create(model="trickle-sim", messages=history, tools=tools,
                                           tool_choice="none", max_tokens=reasoning + 3)
    check(after.choices[0].message.content == text(3) and after.choices[0].message.tool_calls is None,
          f"chat: the answer after the tool's result ({after.choices[0].message})")
    rtools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    arguments, final = "", None
    for event in client.responses.create(model="trickle-sim", input="Weather?", tools=rtools,
                                         tool_choice="required", stream=True):
        if event.type == "response.function_call_arguments.delta":
            arguments += event.delta
        elif event.type == "response.completed":
            final = event.response
    # After the reasoning item, when the model reasons.
    item = next((o for o in (final.output if final is not None else []) if o.type == "function_call"), None)
    check(item is not None and item.type == "function_call" and item.name == "get_weather"
          and item.arguments == arguments and fits_weather(arguments),
          f"responses stream: a function_call item, arguments in deltas ({final})")


def main():
    base, reasoning = sys.argv[1], int(sys.argv[2])
    client = OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Say eight tokens."}]

    # Chat, streamed, with usage.
    stream = client.chat.completions.create(
        model="trickle-sim", messages=messages, max_tokens=8, stream=True,
        stream_options={"include_usage": True},
    )
    content, thoughts, finish, usage, roles = "", "", None, None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.role:
                roles.append(delta.role)
            content += delta.content or ""
            # reasoning_content is not in the SDK's model: it arrives as an extra field.
            thoughts += getattr(delta, "reasoning_content", None) or ""
            finish = choice.finish_reason or finish
    check(roles == ["assistant"], f"chat stream: the role once ({roles})")
    check(thoughts == text(reasoning), f"chat stream: reasoning {thoughts!r}")
    check(content == text(8 - reasoning), f"chat stream: content {content!r}")
    check(finish == "length", f"chat stream: finish_reason {finish!r} (ran into max_tokens)")
    check(usage is not None and usage.completion_tokens == 8 and usage.prompt_tokens == 5
          and usage.total_tokens == 13, f"chat stream: usage {usage}")

    # Chat, streamed, without usage: no usage chunk at all.
    chunks = list(client.chat.completions.create(
        model="trickle-sim", messages=messages, max_tokens=3, stream=True))
    check(all(c.usage is None for c in chunks), "chat stream without include_usage: no usage")
    check(chunks[-1].choices[0].finish_reason == "length", "chat stream without usage: finish")

    # Completions, streamed, with and without usage.
    said, usage = "", None
    for chunk in client.completions.create(
            model="trickle-sim", prompt="abcdefgh", max_tokens=5, stream=True,
            stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            said += choice.text
    check(said == text(5), f"completions stream: text {said!r}")
    check(usage is not None and usage.completion_tokens == 5 and usage.prompt_tokens == 2,
          f"completions stream: usage {usage}")
    chunks = list(client.completions.create(
        model="trickle-sim", prompt="x", max_tokens=2, stream=True))
    check("".join(c.choices[0].text for c in chunks if c.choices) == text(2),
          "completions stream without usage: text")

    # Not streamed.
    whole = client.chat.completions.create(model="trickle-sim", messages=messages, max_tokens=4)
    check(whole.choices[0].message.content == text(4 - min(reasoning, 4)),
          f"chat: content {whole.choices[0].message.content!r}")
    check(whole.choices[0].finish_reason == "length", "chat: finish_reason")
    check(whole.usage.completion_tokens == 4, f"chat: usage {whole.usage}")
    whole = client.completions.create(model="trickle-sim", prompt="abcd", max_tokens=3)
    check(whole.choices[0].text == text(3), f"completions: text {whole.choices[0].text!r}")
    check(whole.usage.prompt_tokens == 1, "completions: prompt tokens")

    # Models.
    check([m.id for m in client.models.list()] == ["trickle-sim"], "models: the served model")

    # Bad requests raise the SDK's typed errors with the right status.
    try:
        client.chat.completions.create(model="trickle-sim", messages=[], max_tokens=1)
        check(False, "empty messages must fail")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.body and e.body.get("param") == "messages",
              f"empty messages: BadRequestError 400 naming the parameter ({e.body})")
    try:
        client.completions.create(model="no-such-model", prompt="x")
        check(False, "an unknown model must fail")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and e.code == "model_not_found",
              "unknown model: NotFoundError 404, model_not_found")
    try:
        client.completions.create(model="trickle-sim", prompt="x", max_tokens=10**9)
        check(False, "too many tokens must fail")
    except openai.BadRequestError as e:
        check(e.status_code == 400, "max_tokens beyond the limit: BadRequestError 400")

    responses(sys.argv[3], reasoning, int(sys.argv[4]))
    tool_calls(base, reasoning)


if __name__ == "__main__":
    main()
