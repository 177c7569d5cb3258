"""The session's function tools, from the Realtime shape to the chat model's.

Realtime tools are `{type: "function", name, description, parameters}`; `tool_choice` is a mode ("auto",
"none", "required") or `{type: "function", name}`. MCP tools (`type: "mcp"`) are accepted in the session but
not served: this server connects to no MCP server, so the model is not offered them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from adapters.llm.base import ToolSpec


def _plain(value: Any) -> Any:
    """Session fields arrive validated (models); `response.create` overrides arrive as dicts."""
    return value.model_dump() if isinstance(value, BaseModel) else value


def tool_specs(tools: list[Any] | None) -> tuple[ToolSpec, ...]:
    out: list[ToolSpec] = []
    for tool in map(_plain, tools or ()):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not tool.get("name"):
            continue
        parameters = tool.get("parameters")
        out.append(ToolSpec(name=str(tool["name"]), description=str(tool.get("description") or ""),
                            parameters=parameters if isinstance(parameters, dict)
                            else {"type": "object", "properties": {}}))
    return tuple(out)


def tool_choice(choice: Any, tools: tuple[ToolSpec, ...]) -> str:
    """"auto" | "none" | "required" | a function's name; a forced function the session lacks means "none"."""
    choice = _plain(choice)
    if isinstance(choice, dict):
        name = choice.get("name")
        return str(name) if choice.get("type") == "function" and name in {t.name for t in tools} else "none"
    return choice if choice in ("auto", "none", "required") else "auto"
