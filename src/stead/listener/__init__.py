"""`stead listener`: runs in a data plane, polls the control plane (outbound only) and reconciles
the deployments placed on it onto a compute backend."""
