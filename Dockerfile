# throttlekit-server: the gRPC service door.
#   docker build -t throttlekit-server .
#   docker run --rm -p 127.0.0.1:50051:50051 throttlekit-server
# Mount your own policy file over /etc/throttlekit/policies.yaml, and add --tls-cert/--tls-key
# (and --tls-ca) for anything reachable beyond the host.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY throttlekit ./throttlekit
COPY lua ./lua
COPY vectors ./vectors
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --user-group --no-create-home throttlekit
COPY examples/policies.yaml /etc/throttlekit/policies.yaml

USER throttlekit
WORKDIR /
EXPOSE 50051

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD \
  python -c "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
ch = grpc.insecure_channel('127.0.0.1:50051'); \
sys.exit(g.HealthStub(ch).Check(h.HealthCheckRequest(), timeout=2).status != h.HealthCheckResponse.SERVING)"

ENTRYPOINT ["throttlekit-server"]
CMD ["--config", "/etc/throttlekit/policies.yaml", "--host", "0.0.0.0", "--port", "50051"]
