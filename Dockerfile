# syntax=docker/dockerfile:1
# Builds the manager image: `make docker-build IMG=...`, or for several platforms
# `docker buildx build --platform linux/amd64,linux/arm64 -t IMG --push .`

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

# The sources of the manager binary.
COPY main.go main.go
COPY api/ api/
COPY controllers/ controllers/
COPY webhookserver/ webhookserver/
COPY internal/ internal/

# Cross-compiled on the build platform: no emulation for other architectures.
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags='-s -w' -o manager .

# Distroless static: no shell, no package manager; nonroot user 65532.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
