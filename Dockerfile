# throttlekit-server: the gRPC service door.
#   docker build -t throttlekit-server .                                  # memory and Redis
#   docker build --build-arg EXTRAS=postgres,dynamodb -t throttlekit-server .   # + Postgres, DynamoDB
#   docker run --rm -p 127.0.0.1:50051:50051 throttlekit-server
# Mount your own policy file over /etc/throttlekit/policies.yaml. Address and TLS are read from the
# THROTTLEKIT_HOST/PORT/TLS_CERT/TLS_KEY/TLS_CA variables (flags work too), and the HEALTHCHECK probe
# (`throttlekit-server health`) reads the same variables, so it follows them: set TLS and the port with
# -e, e.g. -e THROTTLEKIT_TLS_CERT=/certs/server.pem -e THROTTLEKIT_TLS_KEY=/certs/server.key
# (+ THROTTLEKIT_TLS_ROOT=/certs/ca.pem when a CA signed the certificate). See docs/server.md.
FROM python:3.12.8-slim-bookworm

# Extras to install: "" (memory and Redis), "postgres", "dynamodb" or "postgres,dynamodb".
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY docker/constraints.txt ./docker/constraints.txt
COPY throttlekit ./throttlekit
COPY lua ./lua
COPY vectors ./vectors
RUN PIP_CONSTRAINT=/src/docker/constraints.txt pip install ".${EXTRAS:+[$EXTRAS]}" && rm -rf /src

RUN useradd --system --uid 10001 --user-group --no-create-home throttlekit
COPY examples/policies.yaml /etc/throttlekit/policies.yaml

USER throttlekit
WORKDIR /
ENV THROTTLEKIT_HOST=0.0.0.0 \
    THROTTLEKIT_PORT=50051
EXPOSE 50051

HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["throttlekit-server", "health"]

ENTRYPOINT ["throttlekit-server"]
CMD ["--config", "/etc/throttlekit/policies.yaml"]
