"""A graph whose answer says which revision of the code and which secret it runs with."""

import os
import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

CODE_VERSION = "v1"


class State(TypedDict, total=False):
    name: str
    greeting: str
    delay: float


def greet(state: State) -> State:
    time.sleep(state.get("delay", 0))
    greeting = os.environ.get("GREETING", "hello")
    return {"greeting": f"{greeting}, {state.get('name', 'world')} ({CODE_VERSION})"}


graph = StateGraph(State).add_node("greet", greet).add_edge(START, "greet")
graph = graph.add_edge("greet", END).compile()
