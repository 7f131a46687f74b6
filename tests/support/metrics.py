"""Reading a Stead process's `/metrics` in tests: every sample by name and labels."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, frozenset[tuple[str, str]]]


def samples_of(response: httpx.Response) -> dict[Sample, float]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def scrape(http: httpx.AsyncClient) -> dict[Sample, float]:
    return samples_of(await http.get("/metrics"))


def scrape_url(base: str) -> dict[Sample, float]:
    return samples_of(httpx.get(f"{base}/metrics", timeout=10))


def value(samples: Mapping[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(
    before: Mapping[Sample, float], after: Mapping[Sample, float], name: str, **labels: str
) -> float:
    return value(after, name, **labels) - value(before, name, **labels)
