.PHONY: test build demo

# Everything CI runs (installs Jaeger and GoReleaser on first use).
test:
	scripts/test

build:
	go build -ldflags "-X github.com/ktrace-dev/ktrace/internal/cli.version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o ktrace ./cmd/ktrace

# The main job: the stargazers stack on an embedded broker and a real Jaeger v2.
demo:
	go run ./cmd/ktrace demo
