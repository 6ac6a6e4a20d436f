# Everything a developer or CI runs. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

SERVICES := user hello gateway
BIN := $(CURDIR)/bin
# Built tools live outside the clone, keyed by version, so a fresh clone
# (CI's) reuses them. Consul takes ~6 minutes to build, etcd ~30 s.
# Jaeger (all-in-one v2, for traces) ~8 minutes.
TOOLS_CACHE ?= $(HOME)/.cache/micro-starter/tools
CONSUL_VERSION := $(shell cd tools/consul && go list -m -f '{{.Version}}' github.com/hashicorp/consul)
ETCD_VERSION := $(shell cd tools && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
JAEGER_VERSION := $(shell cd tools/jaeger && go list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)
# protoc-gen-micro is a package of the go-micro.dev/v4 module (pinned at v4.7.0 there).
MICRO_GEN_VERSION := $(shell cd tools && go list -m -f '{{.Version}}' go-micro.dev/v4)
PROTOBUF_VERSION := $(shell cd tools && go list -m -f '{{.Version}}' google.golang.org/protobuf)
# protoc-gen-go-grpc (bench/grpcbare's stubs) has a module of its own: in
# tools/ it would raise etcd's grpc-go.
GRPCGEN_VERSION := $(shell cd tools/grpcgen && go list -m -f '{{.Version}}' google.golang.org/grpc/cmd/protoc-gen-go-grpc)
TEST_FLAGS ?=

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the services into bin/
	@mkdir -p $(BIN)
	go build -o $(BIN)/ $(addprefix ./services/,$(SERVICES))

.PHONY: run
run: build certs ## run every service (user x2) on this machine with mDNS and mutual TLS; Ctrl-C stops them
	@SERVICES="$(SERVICES)" CERTS_DIR="$(CERTS_DIR)" scripts/run-local.sh

# Development certificates for mutual TLS between services (internal/devcerts;
# never committed: certs/ is in .gitignore). Existing files are kept, so
# after `make new` this adds only the new service's certificate. SERVICES
# reaches the program through the environment unexpanded ($(value)), as in
# `new` below, not through the shell's parsing of a command line.
CERTS_DIR ?= certs
# Keys and secrets readable by the containers' users (65534, Consul's):
# each container mounts its files one by one, and the folder itself is
# closed to other local users (0700, by stackinit).
CERTS_KEY_MODE ?= 0644
.PHONY: certs
certs: export CERTS_SERVICES = $(value SERVICES)
certs: ## write a development CA, a certificate per service and the stack's registry secrets into certs/ (kept if present)
	go run ./cmd/certs -dir "$(CERTS_DIR)" -key-mode $(CERTS_KEY_MODE) -services "$$CERTS_SERVICES"
	go run ./cmd/stackinit secrets -dir "$(CERTS_DIR)" -key-mode $(CERTS_KEY_MODE) -services "$$CERTS_SERVICES"

.PHONY: test
test: tools ## run every test (unit and integration against real Consul and etcd) with -race
	PATH="$(BIN):$$PATH" go test -race -count=1 $(TEST_FLAGS) ./...
	@# third_party/hystrix-go is a module of its own: ./... does not reach it.
	cd third_party/hystrix-go && go test -race -count=1 $(TEST_FLAGS) ./...
	@# Every benchmark once, so that none rots; the figures are not checked.
	PATH="$(BIN):$$PATH" go test -race -count=1 -run='^$$' -bench=. -benchtime=1x $(TEST_FLAGS) ./bench/perf/ ./pkg/wrappers/
	@# deploy/k8s is a module of its own (kustomize's dependencies stay out of go.mod): no cluster needed.
	cd deploy/k8s && go test -race -count=1 $(TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## run the tests that need no registry server
	go test -race -count=1 -short $(TEST_FLAGS) ./...
	cd third_party/hystrix-go && go test -race -count=1 -short $(TEST_FLAGS) ./...

.PHONY: tools
tools: protoc $(BIN)/consul $(BIN)/etcd $(BIN)/etcdctl $(BIN)/jaeger $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro $(BIN)/protoc-gen-go-grpc ## build Consul, etcd, Jaeger and the code generators (cached)

# protoc is Debian's protobuf-compiler: installed here when missing and we
# are root on Debian (CI, this project's machines), else a clear error.
.PHONY: protoc
protoc:
	@command -v protoc >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing protoc (Debian's protobuf-compiler)"; \
			apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null; \
		else \
			echo "protoc not found: install Debian's protobuf-compiler (apt-get install protobuf-compiler)"; exit 1; \
		fi; }

# Prometheus, for the metrics tests (integration.TestPrometheusFindsInstances):
# Debian's package, installed like protoc. Its service is not used: tests
# run the binary with their own config on a free port.
tools: prometheus
.PHONY: prometheus
prometheus:
	@command -v prometheus >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing prometheus (Debian's package)"; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else \
			echo "prometheus not found: install Debian's prometheus (apt-get install prometheus)"; exit 1; \
		fi; }

# Chromium, for the status page's browser test (gateway
# TestStatusPageInBrowser, which skips without it): Debian's package.
tools: chromium
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium (Debian's package)"; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
		else \
			echo "chromium not found: TestStatusPageInBrowser will skip (apt-get install chromium)"; \
		fi; }

# $(call cached,name,version,module dir,package): build once per version into
# the cache, then copy into bin/.
define cached
	@mkdir -p $(TOOLS_CACHE)/$(1)-$(2) $(BIN)
	@if [ ! -x $(TOOLS_CACHE)/$(1)-$(2)/$(1) ]; then \
		echo "building $(1) $(2) (cached in $(TOOLS_CACHE))"; \
		(cd $(3) && CGO_ENABLED=0 go build -trimpath -o $(TOOLS_CACHE)/$(1)-$(2)/$(1).tmp $(4)) && \
		mv $(TOOLS_CACHE)/$(1)-$(2)/$(1).tmp $(TOOLS_CACHE)/$(1)-$(2)/$(1); \
	fi
	@cp $(TOOLS_CACHE)/$(1)-$(2)/$(1) $@
endef

$(BIN)/consul: tools/consul/go.mod
	$(call cached,consul,$(CONSUL_VERSION),tools/consul,github.com/hashicorp/consul)
$(BIN)/jaeger: tools/jaeger/go.mod
	$(call cached,jaeger,$(JAEGER_VERSION),tools/jaeger,github.com/jaegertracing/jaeger/cmd/jaeger)
$(BIN)/etcd: tools/go.mod
	$(call cached,etcd,$(ETCD_VERSION),tools,go.etcd.io/etcd/server/v3)
$(BIN)/etcdctl: tools/go.mod
	$(call cached,etcdctl,$(ETCD_VERSION),tools,go.etcd.io/etcd/etcdctl/v3)
$(BIN)/protoc-gen-go: tools/go.mod
	$(call cached,protoc-gen-go,$(PROTOBUF_VERSION),tools,google.golang.org/protobuf/cmd/protoc-gen-go)
$(BIN)/protoc-gen-micro: tools/go.mod
	$(call cached,protoc-gen-micro,$(MICRO_GEN_VERSION),tools,go-micro.dev/v4/cmd/protoc-gen-micro)
$(BIN)/protoc-gen-go-grpc: tools/grpcgen/go.mod
	$(call cached,protoc-gen-go-grpc,$(GRPCGEN_VERSION),tools/grpcgen,google.golang.org/grpc/cmd/protoc-gen-go-grpc)

PROTOS := $(wildcard services/*/proto/*.proto)
# bench/grpcbare: plain grpc-go stubs of user and hello from the same
# files, in packages of their own (bench/grpcbare/userpb, hellopb).
BARE_PROTOS := services/user/proto/user.proto services/hello/proto/hello.proto
BARE_GO := $(foreach p,$(BARE_PROTOS),bench/grpcbare/$(basename $(notdir $(p)))pb/$(basename $(notdir $(p))))
MODULE := $(shell awk '$$1 == "module" {print $$2}' go.mod)

.PHONY: proto
proto: protoc $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro $(BIN)/protoc-gen-go-grpc ## regenerate the committed protobuf code
	@# One protoc run per file: protoc-gen-micro refuses several Go packages in one run.
	for p in $(PROTOS); do \
		PATH="$(BIN):$$PATH" protoc --proto_path=. --go_out=paths=source_relative:. --micro_out=paths=source_relative:. $$p; \
	done
	for p in $(BARE_PROTOS); do \
		pkg=$(MODULE)/bench/grpcbare/$$(basename $$p .proto)pb; \
		PATH="$(BIN):$$PATH" protoc --proto_path=. --go_out=module=$(MODULE):. --go-grpc_out=module=$(MODULE):. \
			--go_opt=M$$p=$$pkg --go-grpc_opt=M$$p=$$pkg $$p; \
	done

.PHONY: proto-check
proto-check: proto ## fail if the committed generated code differs from what `make proto` writes
	@git diff --exit-code -- $(PROTOS:.proto=.pb.go) $(PROTOS:.proto=.pb.micro.go) || \
		{ echo "generated code is stale: run make proto and commit"; exit 1; }
	@# Changed or never committed.
	@test -z "$$(git status --porcelain -- $(BARE_GO:=.pb.go) $(BARE_GO:=_grpc.pb.go))" || \
		{ git status --short -- $(BARE_GO:=.pb.go) $(BARE_GO:=_grpc.pb.go); echo "generated code is stale or not committed: run make proto and commit"; exit 1; }

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go vet -tags e2e ./e2e/
	cd third_party/hystrix-go && go vet ./...
# the plugin copies (third_party/go-micro-plugins), as the main module builds them
	go vet $(addprefix github.com/go-micro/plugins/v4/,client/grpc/... server/grpc/... registry/consul/... registry/etcd/...)
	cd deploy/k8s && go vet ./...

.PHONY: clean
clean: ## remove bin/ (the tools cache stays)
	rm -rf $(BIN)

# The stack in docker-compose (docker-compose.yml; docs/compose.md). The
# service images hold static binaries built here, FROM scratch: building
# them pulls nothing.
COMPOSE_PROJECT ?= micro-starter
# PROFILE=ha: the registries as clusters (docker-compose.ha.yml over
# docker-compose.yml: three etcd members, three Consul servers and the
# client agent the services register through).
PROFILE ?=
ifneq ($(filter-out ha,$(PROFILE)),)
$(error PROFILE=$(PROFILE): want ha, or nothing for single-member registries)
endif
COMPOSE_FILES := -f docker-compose.yml $(if $(PROFILE),-f docker-compose.$(PROFILE).yml)
COMPOSE := docker-compose -p $(COMPOSE_PROJECT) $(COMPOSE_FILES)
# Stand-ins for the official Consul, etcd, Prometheus and Jaeger images,
# made from bin/ and Debian's prometheus by `make standins`, so that
# test-e2e pulls nothing.
STANDIN_CONSUL_IMAGE := micro-starter/consul-standin:$(CONSUL_VERSION)
STANDIN_ETCD_IMAGE := micro-starter/etcd-standin:$(ETCD_VERSION)
STANDIN_PROMETHEUS_IMAGE := micro-starter/prometheus-standin:debian
STANDIN_JAEGER_IMAGE := micro-starter/jaeger-standin:$(JAEGER_VERSION)
STANDIN_IMAGES := CONSUL_IMAGE=$(STANDIN_CONSUL_IMAGE) ETCD_IMAGE=$(STANDIN_ETCD_IMAGE) \
	PROMETHEUS_IMAGE=$(STANDIN_PROMETHEUS_IMAGE) JAEGER_IMAGE=$(STANDIN_JAEGER_IMAGE)
# Every image built here carries this label, so that the images a rebuild
# replaced, and only those, can be pruned.
IMAGE_LABEL := micro-starter.built-by=make

.PHONY: images
images: ## build the images micro-starter/<service>:dev (and stackinit:dev, the stack's init step) from static binaries
	@mkdir -p $(BIN)/linux
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o $(BIN)/linux/ $(addprefix ./services/,$(SERVICES)) ./cmd/stackinit
	for s in $(SERVICES) stackinit; do docker build -q --label $(IMAGE_LABEL) --build-arg SERVICE=$$s -t micro-starter/$$s:dev . >/dev/null; done
	@docker image prune -f --filter label=$(IMAGE_LABEL) >/dev/null

.PHONY: up
up: certs images ## start the stack in docker-compose (certificates and secrets made on first use); returns when it answers (REGISTRY=etcd, USERS=3)
	$(COMPOSE) up -d --remove-orphans $(if $(USERS),--scale user=$(USERS))
	@scripts/compose-wait.sh $(COMPOSE_PROJECT)
	@echo "gateway: curl --cacert certs/ca.crt 'https://127.0.0.1:$${GATEWAY_PORT:-8080}/hello?user_id=ada'"
	@echo "Consul UI: http://127.0.0.1:$${CONSUL_PORT:-8500}/ui (token: certs/consul-management.token)  registry: $${REGISTRY:-consul}$(if $(PROFILE), ($(PROFILE)))"
	@echo "Prometheus: http://127.0.0.1:$${PROMETHEUS_PORT:-9090}/targets (every instance, found through the registry)"
	@echo "Jaeger query API: http://127.0.0.1:$${JAEGER_PORT:-16686}/api/traces?service=gateway"

.PHONY: down
down: ## stop the compose stack and remove its containers, networks and anonymous volumes
	$(COMPOSE) down -v --remove-orphans

.PHONY: logs
logs: ## follow the compose stack's logs (Ctrl-C stops following)
	$(COMPOSE) logs -f --tail=100

.PHONY: ps
ps: ## list the compose stack's containers and their health
	$(COMPOSE) ps

.PHONY: standins
standins: $(BIN)/consul $(BIN)/etcd $(BIN)/etcdctl $(BIN)/jaeger prometheus ## build stand-ins for the Consul, etcd, Prometheus and Jaeger images from bin/ and Debian's prometheus
	@rm -rf $(BIN)/standin && mkdir -p $(BIN)/standin/consul/tmp $(BIN)/standin/etcd/tmp $(BIN)/standin/jaeger/tmp \
		$(BIN)/standin/prometheus/root/bin $(BIN)/standin/prometheus/root/prometheus
	@chmod 1777 $(BIN)/standin/consul/tmp $(BIN)/standin/etcd/tmp $(BIN)/standin/jaeger/tmp $(BIN)/standin/prometheus/root/prometheus
	@ln -f $(BIN)/consul $(BIN)/standin/consul/ && ln -f $(BIN)/etcd $(BIN)/etcdctl $(BIN)/standin/etcd/ && ln -f $(BIN)/jaeger $(BIN)/standin/jaeger/
	@# Debian's prometheus and promtool are linked against glibc: copied
	@# with the libraries ldd lists, at their paths.
	@cp "$$(command -v prometheus)" "$$(command -v promtool)" $(BIN)/standin/prometheus/root/bin/
	@ldd $(BIN)/standin/prometheus/root/bin/* | awk '$$2 == "=>" && $$3 ~ /^\// {print $$3} $$1 ~ /^\// && $$1 !~ /:$$/ {print $$1}' | \
		sort -u | xargs -I{} cp --parents -L {} $(BIN)/standin/prometheus/root/
	docker build -q --label $(IMAGE_LABEL) -t $(STANDIN_CONSUL_IMAGE) -f e2e/testdata/consul.Dockerfile $(BIN)/standin/consul >/dev/null
	docker build -q --label $(IMAGE_LABEL) -t $(STANDIN_ETCD_IMAGE) -f e2e/testdata/etcd.Dockerfile $(BIN)/standin/etcd >/dev/null
	docker build -q --label $(IMAGE_LABEL) -t $(STANDIN_PROMETHEUS_IMAGE) -f e2e/testdata/prometheus.Dockerfile $(BIN)/standin/prometheus >/dev/null
	docker build -q --label $(IMAGE_LABEL) -t $(STANDIN_JAEGER_IMAGE) -f e2e/testdata/jaeger.Dockerfile $(BIN)/standin/jaeger >/dev/null
	@docker image prune -f --filter label=$(IMAGE_LABEL) >/dev/null

.PHONY: test-e2e
test-e2e: certs images standins ## run the compose stack end to end with Consul and with etcd (needs Docker)
	$(STANDIN_IMAGES) go test -tags e2e -race -count=1 $(TEST_FLAGS) ./e2e/

# bench/plain: the same services with plain go-micro, the comparison that
# make chaos and make bench measure the starter against (not a product).
.PHONY: chaos
chaos: build tools ## run the resilience suite (bench/chaos) against Consul and etcd, write its part of docs/resilience.md (~30 min, T8 and T9 on registry clusters included)
	go build -o $(BIN)/plain/ ./bench/plain/...
	go run ./bench/chaos -bin $(BIN) -out docs/resilience.md

# Performance (issue #7; bench/perf, bench/load; figures in docs/performance.md).
# The Go benchmarks run BENCH_COUNT times with -count=1 each, so that bare
# client and wrapper chain alternate and contention hits both alike.
BENCH_COUNT ?= 6
BENCH_OUT ?= $(BIN)/bench
BENCH_LOAD_FLAGS ?= -rounds 3 -duration 10s

$(BIN)/benchstat: tools/benchstat/go.mod
	cd tools/benchstat && go build -o $(BIN)/benchstat golang.org/x/perf/cmd/benchstat

.PHONY: bench
bench: build tools $(BIN)/benchstat ## benchmarks and gateway load (bare net/http, bare gRPC, plain go-micro, ours and its metrics/tracing variants) against Consul and etcd; raw results in bin/bench/ (~20 min)
	go build -o $(BIN)/plain/ ./bench/plain/...
	@mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/go.txt
	@echo "load average at start: $$(cat /proc/loadavg)"
	for i in $$(seq $(BENCH_COUNT)); do \
		PATH="$(BIN):$$PATH" go test -run='^$$' -bench=. -count=1 ./bench/perf/ ./pkg/wrappers/ | tee -a $(BENCH_OUT)/go.txt; \
	done
	$(BIN)/benchstat -filter '.name:Call' -col /client $(BENCH_OUT)/go.txt | tee $(BENCH_OUT)/benchstat.txt
	@# Labelled, or benchstat heads the column with the file's path on this machine.
	$(BIN)/benchstat -filter '.name:Added' runs=$(BENCH_OUT)/go.txt | tee -a $(BENCH_OUT)/benchstat.txt
	$(BIN)/benchstat -filter '.name:Layers' -col /layers $(BENCH_OUT)/go.txt | tee -a $(BENCH_OUT)/benchstat.txt
	$(BIN)/benchstat -filter '.name:Lookup' -col /from $(BENCH_OUT)/go.txt | tee -a $(BENCH_OUT)/benchstat.txt
	$(BIN)/benchstat -filter '.name:Instrumentation' -col /instr $(BENCH_OUT)/go.txt | tee -a $(BENCH_OUT)/benchstat.txt
	PATH="$(BIN):$$PATH" go run ./bench/load -bin $(BIN) $(BENCH_LOAD_FLAGS) | tee $(BENCH_OUT)/load.md
	@echo "load average at end: $$(cat /proc/loadavg)"

.PHONY: bench-smoke
bench-smoke: tools ## run every benchmark once (-benchtime=1x) and every bench/load stack for one short round, so they cannot rot; figures are not checked
	PATH="$(BIN):$$PATH" go test -count=1 -run='^$$' -bench=. -benchtime=1x $(TEST_FLAGS) ./bench/perf/ ./pkg/wrappers/
	@# bench/load's tests (in make test too): every stack (bare net/http, bare gRPC, plain go-micro,
	@# ours and its metrics and tracing variants) one 0.3 s round against etcd, each hop measured.
	PATH="$(BIN):$$PATH" go test -count=1 $(TEST_FLAGS) ./bench/load/ ./bench/grpcbare/

# Registry scaling (bench/scale; docs/scaling.md): Consul and etcd on
# loopback with up to 50 registered instances and 20 watching callers:
# lookup latency, watch delay, registry CPU. The figures replace the marked
# section of docs/scaling.md; a tiny run is a test, so make test runs it.
SCALE_FLAGS ?=
.PHONY: scale
scale: $(BIN)/consul $(BIN)/etcd ## measure the registries with up to 50 instances and 20 watchers; results into docs/scaling.md (~5 min)
	@echo "load average at start: $$(cat /proc/loadavg)"
	go run ./bench/scale -bin $(BIN) -out docs/scaling.md $(SCALE_FLAGS)

# Scaffolding (internal/scaffold; docs/scaffold.md): both check their
# argument before writing anything, and never overwrite. The argument
# reaches the program as it was typed, so that name="x'; rm -rf ~; '" is a
# name to refuse, not a command to run: $(value) takes it unexpanded into
# the environment, where the shell expands "$$SCAFFOLD_ARG" without parsing
# it; and make would expand name and module (running a $(shell ...) in
# them) to export them to every recipe, as it does variables set on its
# command line, so they are not exported.
unexport name module
.PHONY: new
new: export SCAFFOLD_ARG = $(value name)
new: protoc $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro ## add a service: make new name=orders
	@test -n "$$SCAFFOLD_ARG" || { echo "usage: make new name=<service> (a lowercase letter, then lowercase letters, digits or -)"; exit 2; }
	go build -o $(BIN)/scaffold ./cmd/scaffold && $(BIN)/scaffold new "$$SCAFFOLD_ARG"

.PHONY: rename
rename: export SCAFFOLD_ARG = $(value module)
rename: protoc $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro $(BIN)/protoc-gen-go-grpc ## rewrite the module path: make rename module=github.com/acme/shop
	@test -n "$$SCAFFOLD_ARG" || { echo "usage: make rename module=<module path, e.g. github.com/acme/shop>"; exit 2; }
	go build -o $(BIN)/scaffold ./cmd/scaffold && $(BIN)/scaffold rename "$$SCAFFOLD_ARG"
	@# bench/grpcbare's stubs embed the services' go_package: regenerate them under the new module (a new make reads it from go.mod).
	$(MAKE) --no-print-directory proto
