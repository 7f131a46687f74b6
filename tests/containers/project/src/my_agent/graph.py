"""The container tier's project, in the seed's layout: a requirement from PyPI (tabulate), a
local package (libs/greeting), a secret from the env file, and a run of several slow steps."""

import operator
import os
import time
from typing import Annotated, TypedDict

import tabulate
from greeting import greet
from langgraph.graph import END, START, StateGraph


class Steps(TypedDict, total=False):
    pause: float
    done: Annotated[list[str], operator.add]


def _step(name: str):
    def step(state: Steps) -> Steps:
        time.sleep(state.get("pause", 0))
        return {"done": [name]}

    return step


_steps = StateGraph(Steps)
_previous = START
for _name in ("one", "two", "three", "four"):
    _steps.add_node(_name, _step(_name))
    _steps.add_edge(_previous, _name)
    _previous = _name
_steps.add_edge(_previous, END)
steps = _steps.compile()


class Hello(TypedDict, total=False):
    name: str
    text: str


def _hello(state: Hello) -> Hello:
    secret = os.environ.get("GREETING_SECRET", "no secret")
    return {"text": f"{greet(state['name'])}; tabulate {tabulate.__version__}; {secret}"}


hello = StateGraph(Hello).add_node("hello", _hello).add_edge(START, "hello").compile()
