# The build that wrote samples/explain-demo:latest: `cacheinspect explain` finds every step in that cache.
ARG REGISTRY=docker.io
FROM ${REGISTRY}/library/demo-base:1
WORKDIR /app
COPY . .
RUN make
RUN make check
