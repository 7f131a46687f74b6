"""Images of a user's project: `stead dockerfile` writes its Dockerfile, `stead build` builds it."""
