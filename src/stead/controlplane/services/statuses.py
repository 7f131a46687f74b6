"""The status machines of revisions and deployments, as the LangSmith Deployments API names them."""

from __future__ import annotations

# Revision statuses, in the order a revision moves through them.
QUEUED = "QUEUED"
AWAITING_BUILD = "AWAITING_BUILD"
BUILDING = "BUILDING"
AWAITING_DEPLOY = "AWAITING_DEPLOY"
DEPLOYING = "DEPLOYING"
DEPLOYED = "DEPLOYED"
BUILD_FAILED = "BUILD_FAILED"
DEPLOY_FAILED = "DEPLOY_FAILED"
SKIPPED = "SKIPPED"

IN_PROGRESS = (QUEUED, AWAITING_BUILD, BUILDING, AWAITING_DEPLOY, DEPLOYING)
FAILED = (BUILD_FAILED, DEPLOY_FAILED)
# What the official CLI stops polling at (it also knows CREATE_FAILED, which Stead never sets).
TERMINAL = (DEPLOYED, *FAILED, SKIPPED)
REVISION_STATUSES = (*IN_PROGRESS, *TERMINAL)

# Where a listener may move a revision from each status.
NEXT: dict[str, tuple[str, ...]] = {
    QUEUED: (AWAITING_BUILD, AWAITING_DEPLOY, BUILD_FAILED, DEPLOY_FAILED),
    AWAITING_BUILD: (BUILDING, BUILD_FAILED),
    BUILDING: (AWAITING_DEPLOY, BUILD_FAILED),
    AWAITING_DEPLOY: (DEPLOYING, DEPLOY_FAILED),
    DEPLOYING: (DEPLOYED, DEPLOY_FAILED),
}

# Deployment statuses. UNKNOWN is shown, never stored: its listener (or the server itself)
# stopped reporting.
READY = "READY"
AWAITING_DELETE = "AWAITING_DELETE"
UNKNOWN = "UNKNOWN"
DEPLOYMENT_STATUSES = (READY, AWAITING_DELETE, UNKNOWN)
