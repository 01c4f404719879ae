# Vigil. `make run` and `make test` are the two commands; the rest are their parts.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO        ?= go
BUF       := $(GO) tool -modfile=tools/go.mod buf
BIN       := bin/vigil
ORT_LIB   := .cache/onnxruntime/libonnxruntime.so.1
TEST_FLAGS ?= -count=1 -timeout 18m

.DEFAULT_GOAL := help

help: ## list targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install what is missing (Go, PostgreSQL, Redis, npm) from the package registries
	@bash deploy/local/deps.sh

ort: $(ORT_LIB) ## fetch the ONNX Runtime shared library from its npm package
$(ORT_LIB):
	@bash deploy/onnxruntime.sh

services: ## make sure PostgreSQL and Redis answer on loopback, starting private ones if not
	@bash deploy/local/services.sh

gen: ## regenerate gen/ from proto/ (local plugins, no registry)
	$(BUF) lint
	$(BUF) generate

check-generated: ## fail when gen/ is stale or the contracts break lint
	$(GO) test -count=1 ./gen/

lint: ## gofmt, go vet and buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...
	$(BUF) lint

build: deps ort ## build bin/vigil
	$(GO) build -o $(BIN) ./cmd/vigil

migrate: build services ## apply every component's migrations
	./$(BIN) migrate

run: build services ## build, migrate and run `vigil all` on http://localhost:8080
	./$(BIN) migrate
	./$(BIN) all

test: deps ort services ## the whole test suite (starts what it needs)
	$(GO) build ./...
	$(GO) test $(TEST_FLAGS) ./...
	$(GO) test $(TEST_FLAGS) -tags lbstamps -run Stamp ./lb # the lb's latency-breakdown build (stamps_on.go)

bench: deps ort services ## the comparisons against peers (slow; writes bench/*/RESULTS.md)
	@for b in bench/*/run.sh; do [ -x "$$b" ] && { echo "== $$b"; "$$b"; }; done

clean: ## remove build outputs (keeps .pgdata and caches)
	rm -rf bin

.PHONY: help deps ort services gen check-generated lint build migrate run test bench clean
