.PHONY: test build demo

# Everything CI runs (installs Jaeger and GoReleaser on first use).
test:
	scripts/test

build:
	go build -ldflags "-X github.com/ktrace-dev/ktrace/internal/cli.version=$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o ktrace ./cmd/ktrace

demo:
	go run ./cmd/ktrace graph --fixture kafka-e2e
