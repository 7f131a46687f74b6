"""The self-hosted control plane: it deploys and rolls out agents onto data planes."""
