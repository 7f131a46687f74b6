"""The control plane's services, built once over one database."""

from __future__ import annotations

from dataclasses import dataclass

from stead.controlplane.services.data_plane import DataPlane
from stead.controlplane.services.deployments import Deployments
from stead.controlplane.services.listeners import Listeners
from stead.controlplane.services.revisions import Revisions
from stead.controlplane.services.secrets import SecretBox
from stead.controlplane.services.tenants import TenantKeys
from stead.controlplane.services.uploads import Uploads
from stead.controlplane.settings import ControlPlaneSettings
from stead.controlplane.signing import signing_key
from stead.controlplane.storage import ControlPlaneDatabase


@dataclass(frozen=True)
class ControlPlaneServices:
    db: ControlPlaneDatabase
    keys: TenantKeys
    deployments: Deployments
    revisions: Revisions
    listeners: Listeners
    uploads: Uploads
    data_plane: DataPlane

    @classmethod
    def build(cls, settings: ControlPlaneSettings, box: SecretBox) -> ControlPlaneServices:
        db = ControlPlaneDatabase(settings.database_url)
        uploads = Uploads(db, settings.uploads_dir)
        public_key = signing_key(settings.data_dir).public_key()
        timeout = settings.heartbeat_timeout
        return cls(
            db=db,
            keys=TenantKeys(db),
            deployments=Deployments(db, box, timeout, uploads),
            revisions=Revisions(db, box),
            listeners=Listeners(db, timeout),
            uploads=uploads,
            data_plane=DataPlane(db, box, public_key, uploads),
        )
