# syntax=docker/dockerfile:1
# Builds the manager image: `make docker-build IMG=...`, or for several platforms
# `docker buildx build --platform linux/amd64,linux/arm64 -t IMG --push .`
#
# Without a Docker engine, `make image` (hack/image) builds the same image from the same
# inputs as an OCI index for linux/amd64 and linux/arm64, and `make image-push IMG=...`
# publishes it. hack/image's tests (`make test-image`) keep the two equal: entrypoint, user,
# workdir, build flags, the files of the image, and the COPYs below against the packages
# the manager's build needs (`go list -deps`). Change both together.

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

# Distroless static: no shell, no package manager; nonroot user 65532, CA roots for HTTPS
# to Tencent's API (hack/image's BaseFiles emulates it).
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
