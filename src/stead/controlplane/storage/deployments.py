"""Queries on deployments, always within one tenant (or one listener, for its own reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from stead.controlplane.storage.schema import deployment
from stead.storage._query import fetch_all, fetch_one
from stead.storage.connections import Connection


@dataclass(frozen=True)
class DeploymentFilter:
    name: str | None = None
    name_contains: str | None = None
    statuses: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        if self.name is not None:
            clauses.append(deployment.c.name == self.name)
        if self.name_contains:
            clauses.append(deployment.c.name.contains(self.name_contains, autoescape=True))
        if self.statuses:
            clauses.append(deployment.c.status.in_(self.statuses))
        if self.ids:
            clauses.append(deployment.c.id.in_(self.ids))
        return clauses


class DeploymentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def insert(self, record: dict[str, Any]) -> None:
        await self._conn.execute(sa.insert(deployment).values(**record))

    async def get(self, tenant_id: str, deployment_id: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(deployment).where(
                deployment.c.tenant_id == tenant_id, deployment.c.id == deployment_id
            ),
        )

    async def get_for_update(self, tenant_id: str, deployment_id: str) -> dict[str, Any] | None:
        """The row, locked until the transaction ends: revisions are created one at a time."""
        return await fetch_one(
            self._conn,
            sa.select(deployment)
            .where(deployment.c.tenant_id == tenant_id, deployment.c.id == deployment_id)
            .with_for_update(),
        )

    async def find_by_name(self, tenant_id: str, name: str) -> dict[str, Any] | None:
        return await fetch_one(
            self._conn,
            sa.select(deployment).where(
                deployment.c.tenant_id == tenant_id, deployment.c.name == name
            ),
        )

    async def select(
        self, tenant_id: str, where: DeploymentFilter, limit: int | None, offset: int
    ) -> list[dict[str, Any]]:
        return await fetch_all(
            self._conn,
            sa.select(deployment)
            .where(deployment.c.tenant_id == tenant_id, *where.where())
            .order_by(deployment.c.created_at.desc(), deployment.c.id)
            .limit(limit)
            .offset(offset),
        )

    async def list_on_listener(self, listener_id: str) -> list[dict[str, Any]]:
        return await fetch_all(
            self._conn,
            sa.select(deployment)
            .where(deployment.c.listener_id == listener_id)
            .order_by(deployment.c.created_at),
        )

    async def count_on_listener(self, listener_id: str) -> int:
        query = sa.select(sa.func.count()).where(deployment.c.listener_id == listener_id)
        return int((await self._conn.execute(query)).scalar_one())

    async def any_sealed_secrets(self) -> str | None:
        """The sealed secrets of one deployment, any tenant's (to check the encryption key)."""
        row = await fetch_one(self._conn, sa.select(deployment.c.secrets).limit(1))
        return None if row is None else str(row["secrets"])

    async def update(self, deployment_id: str, values: dict[str, Any]) -> None:
        await self._conn.execute(
            sa.update(deployment).where(deployment.c.id == deployment_id).values(**values)
        )

    async def delete(self, deployment_id: str) -> None:
        await self._conn.execute(sa.delete(deployment).where(deployment.c.id == deployment_id))
