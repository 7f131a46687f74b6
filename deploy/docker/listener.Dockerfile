# The listener's image for the Helm chart's self_hosted_data_plane mode: Stead's image with the
# kubernetes client, helm and Stead's chart, which it renders for each deployment.
#   docker build -f deploy/docker/Dockerfile -t stead:0.1.0 .
#   docker build -f deploy/docker/listener.Dockerfile -t stead-listener:0.1.0 .
# checkov:skip=CKV_DOCKER_7:STEAD_IMAGE defaults to stead:0.1.0, built from deploy/docker/Dockerfile; checkov cannot resolve build arguments
ARG STEAD_IMAGE=stead:0.1.0
ARG HELM_IMAGE=alpine/helm:3.17.3

FROM ${HELM_IMAGE} AS helm

FROM ${STEAD_IMAGE}
USER 0
RUN /opt/stead/bin/pip install --no-cache-dir kubernetes==37.0.2
COPY --from=helm /usr/bin/helm /usr/local/bin/helm
COPY deploy/helm/stead /opt/stead/chart
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=4 CMD ["stead", "healthcheck", "--listener", "/data"]
ENTRYPOINT ["stead"]
CMD ["listener", "--backend", "kubernetes", "--data-dir", "/data"]
