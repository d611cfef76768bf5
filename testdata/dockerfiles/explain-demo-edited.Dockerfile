# explain-demo.Dockerfile with its first RUN edited: the next build runs from that step.
ARG REGISTRY=docker.io
FROM ${REGISTRY}/library/demo-base:1
WORKDIR /app
COPY . .
RUN make CFLAGS=-O2
RUN make check
