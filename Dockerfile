# The cacheinspect command as a container image (docs/ci.md#container-image):
#   docker build -t cacheinspect .            (--build-arg EXTRAS=aws,gcp for the ECR and Google backends)
#   docker run --rm cacheinspect probe --offline ghcr.io
# A wheel is built and installed into a virtual environment in one stage; only that environment is copied
# into a slim runtime, which runs as a numeric non-root user (Kubernetes' runAsNonRoot can check it).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY inspector ./inspector
ARG EXTRAS=""
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/cacheinspect \
 && wheel=$(echo /wheels/cacheinspect-*.whl) \
 && /opt/cacheinspect/bin/pip install --no-cache-dir "${wheel}${EXTRAS:+[$EXTRAS]}"

FROM python:${PYTHON_VERSION}-slim AS runtime
# git: gc's branches-from-git runs `git ls-remote`
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 cacheinspect \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cacheinspect
COPY --from=build /opt/cacheinspect /opt/cacheinspect
ENV PATH=/opt/cacheinspect/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["cacheinspect"]
CMD ["--help"]
