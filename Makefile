# onceflow: the two commands are `make run` and `make test` (README).
SHELL := /bin/bash
.DEFAULT_GOAL := help

INFRA := deploy/local/infra.sh
RUN   := deploy/local/run.sh
OBSERVE := deploy/local/observe.sh
GO_TEST_FLAGS ?= -count=1
# KAFKA_NODES=3 runs Kafka as a three-node cluster (ADR 0045), DB_NODES=3 each
# service's database as a three-node Galera cluster behind HAProxy (ADR 0060),
# for run/infra-up; infra.sh and run.sh read them from the environment.
KAFKA_NODES ?= 1
DB_NODES ?= 1
# Fuzzing time per target: FUZZTIME for `make fuzz`, FUZZTIME_TEST inside `make test` (ADR 0048).
FUZZTIME ?= 2m
FUZZTIME_TEST ?= 20000x
export CI KAFKA_NODES DB_NODES

# The integration tests' own servers (ADR 0057): infra.sh on a data dir and
# ports of their own, wiped at the start of every run, so that `make test`
# never touches the servers of `make run` and every run starts clean. Always
# one Kafka node and one server per database (the fault suite runs the clusters).
TEST_INFRA_DIR ?= $(CURDIR)/.local/test-infra
TEST_ORDER_DB_PORT ?= 12307
TEST_PAYMENT_DB_PORT ?= 12308
TEST_KAFKA_PORT ?= 18092
TEST_KAFKA_CONTROLLER_PORT ?= 18093
TEST_INFRA := ONCEFLOW_INFRA_DIR=$(TEST_INFRA_DIR) ORDER_DB_PORT=$(TEST_ORDER_DB_PORT) PAYMENT_DB_PORT=$(TEST_PAYMENT_DB_PORT) \
	KAFKA_PORT=$(TEST_KAFKA_PORT) KAFKA_CONTROLLER_PORT=$(TEST_KAFKA_CONTROLLER_PORT) KAFKA_NODES=1 DB_NODES=1 $(INFRA)
# What internal/testenv reads: the addresses of the servers above.
TEST_SERVERS := ORDER_DB_ADDR=127.0.0.1:$(TEST_ORDER_DB_PORT) PAYMENT_DB_ADDR=127.0.0.1:$(TEST_PAYMENT_DB_PORT) \
	KAFKA_BROKERS=127.0.0.1:$(TEST_KAFKA_PORT)

.PHONY: help run prereqs stop test lint test-unit test-integration test-alerts check-generated fuzz cross e2e infra-up infra-down infra-status build up down bench demo demo-kill-kafka demo-duplicates demo-poison observe observe-down browser schemathesis fuzz-api

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

run: prereqs infra-up build ## check the prerequisites, install what is missing, start MariaDB x2 (DB_NODES=3: two 3-node Galera clusters), Kafka (KAFKA_NODES=3: a 3-node cluster) and both services
	@$(RUN) start

prereqs: ## what make run needs (Go per go.mod, Java 17+, Maven, curl, MariaDB or root to install it, free ports), checked without installing anything
	@deploy/local/prereqs.sh

stop: ## stop both services (the servers keep running; see infra-down)
	@$(RUN) stop

build: ## build both services into build/bin
	go build -o build/bin/order ./services/order
	go build -o build/bin/payment ./services/payment

# The steps are in deploy/local/test.sh: the servers install in the background
# while the first steps compile, and each step's time is printed (ADR 0065).
test: ## every test: vet, lint, unit, fuzz, integration and fault suite, against real servers of their own (not those of `make run`)
	@FUZZTIME_TEST=$(FUZZTIME_TEST) deploy/local/test.sh

# The servers stay up when a test fails (to look at them; `make infra-down`
# stops them) and are wiped by the next run.
test-integration: ## every test outside e2e/ on fresh servers of their own (127.0.0.1:12307, 12308, 18092), stopped after
	@$(TEST_INFRA) down
	@rm -rf $(TEST_INFRA_DIR)
	@$(TEST_INFRA) up
	$(TEST_SERVERS) go test $(GO_TEST_FLAGS) -timeout 20m $$(go list ./... | grep -v '/e2e$$')
	$(TEST_SERVERS) go test $(GO_TEST_FLAGS) -tags faults -run 'Fault' ./pkg/outbox/ ./pkg/consumer/ ./services/payment/internal/service/
	@$(TEST_INFRA) down

# Each tool pinned in lint.sh and installed into .local/tools if missing (ADR 0061).
lint: ## static checks: golangci-lint (plain and -tags faults), shellcheck, govulncheck on an offline copy of the Go vulnerability database
	@deploy/local/lint.sh

cross: ## build everything for Windows and macOS, plain and -tags faults (the code stays portable)
	GOOS=windows go build ./...
	GOOS=windows go build -tags faults ./...
	GOOS=darwin go build ./...
	GOOS=darwin go build -tags faults ./...

# Runs the package's own go:generate lines in a copy beside it (the same depth,
# so its relative paths hold; a leading _ keeps ./... out of it) and compares.
check-generated: ## the committed examples/orderclient is what `go generate` makes from today's served OpenAPI document
	@tmp=$$(mktemp -d examples/_orderclient-check.XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && \
	cp examples/orderclient/generate.go examples/orderclient/oapi-codegen.yaml "$$tmp" && \
	(cd "$$tmp" && go generate .) && \
	for f in openapi.json client.gen.go; do \
		diff -u "examples/orderclient/$$f" "$$tmp/$$f" >/dev/null || { \
			diff -u "examples/orderclient/$$f" "$$tmp/$$f" | head -40; \
			echo "examples/orderclient/$$f is not what go generate makes now: run go generate ./examples/orderclient and commit it"; exit 1; }; \
	done

# Every server address points nowhere and CI=true turns a missing server into a
# failure: -short must need no MariaDB and no Kafka.
test-unit: ## only the tests that need no server (-short); proves they need none
	CI=true ORDER_DB_ADDR=127.0.0.1:1 PAYMENT_DB_ADDR=127.0.0.1:1 KAFKA_BROKERS=127.0.0.1:1 \
		go test $(GO_TEST_FLAGS) -short ./...

fuzz: ## every Go fuzz target, one after another, FUZZTIME each (default 2m; FUZZ_WORKERS=1 processes); needs no server
	@FUZZTIME=$(FUZZTIME) deploy/local/fuzz.sh

# promtool comes from Debian's prometheus package, installed if missing; with
# CI=true a promtool still missing after that is a failure, not a skip.
test-alerts: ## promtool check rules and test rules on deploy/prometheus (the alert rules' unit tests)
	@$(OBSERVE) check

# The e2e package starts servers of its own (e2e/harness); it needs MariaDB and
# Kafka's jars installed, not the servers of `make run`.
e2e: browser schemathesis ## the end-to-end tests, the fault suite, the strategy comparison, the database-cluster lane and the Debezium relay lane (SCENARIO=name runs one scenario or strategy; SCENARIO=cluster, dbcluster, debezium: a group)
	@$(INFRA) install
# The fault suite, the strategy comparison, the negative controls and the database-cluster lane start
# at once, each on servers of its own (ADRs 0050, 0060, 0065); the Debezium relay lane (ADR 0068) and
# the diagnosis causes take the place of the first of them to end. e2e/lanes_test.go keeps four at a
# time and decides the order; -parallel 8 gives every lane a slot, so that Go's order does not.
ifeq ($(SCENARIO),)
	@mkdir -p build; set -o pipefail; go test $(GO_TEST_FLAGS) -parallel 8 -timeout 60m -v ./e2e/ 2>&1 | tee build/e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|[a-z-]+.*: accepted=|strategy [a-z+-]+: )|^ +--- FAIL|_test\.go:[0-9]+: .*(want|the checker|broke a promise)|^ +(I[0-9]+:|the production auditor)|schemathesis_test\.go:[0-9]+:'
else
	@mkdir -p build; set -o pipefail; SCENARIO=$(SCENARIO) go test $(GO_TEST_FLAGS) -parallel 8 -timeout 40m -v -run 'TestFaults|TestStrategies|TestDBCluster|TestDebeziumRelay' ./e2e/ 2>&1 | tee build/e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|[a-z-]+.*: accepted=|strategy [a-z+-]+: )|^ +--- FAIL|_test\.go:[0-9]+: .*(want|the checker)|violations|broke a promise|cannot run|I[1-6]:'
endif

browser: ## install Debian's chromium if missing (the console's browser test drives it headless)
	@deploy/local/chromium.sh >/dev/null

# Installs Schemathesis (PyPI, pinned) into .local/venv-schemathesis for
# TestAPISchemathesis; a failed install fails only under CI=true (the test skips otherwise).
schemathesis: ## install the API fuzzer Schemathesis if missing (ADR 0047)
	@deploy/local/schemathesis.sh >/dev/null || [ "$$CI" != true ]

fuzz-api: schemathesis ## Schemathesis against a live order service, longer than in make test: 1000 cases per operation and phase, a random seed (SCHEMATHESIS_MAX_EXAMPLES, SCHEMATHESIS_SEED)
	@$(INFRA) install
	@mkdir -p build; set -o pipefail; SCHEMATHESIS_MAX_EXAMPLES=$${SCHEMATHESIS_MAX_EXAMPLES:-1000} SCHEMATHESIS_SEED=$${SCHEMATHESIS_SEED:-random} \
		go test -count=1 -timeout 90m -v -run 'TestAPISchemathesis$$' ./e2e/ 2>&1 | tee build/fuzz-api.log | grep -vE '^=== '

infra-up: ## install if missing, then start both databases (DB_NODES=1|3) and Kafka (KAFKA_NODES=1|3) (idempotent)
	@$(INFRA) up

infra-down: ## stop the servers of every mode (every Galera node and proxy too), the Prometheus of `make observe` and any servers `make test` left running (data stays in .local/)
	@$(RUN) stop
	@$(OBSERVE) down
	@$(INFRA) down
	@$(TEST_INFRA) down

infra-status: ## which servers run, with pid and port (and make test's, while they run)
	@$(INFRA) status
	@$(RUN) status
	@$(OBSERVE) status
	@if $(TEST_INFRA) status | grep -qv ' down '; then echo "make test's servers ($(TEST_INFRA_DIR)):"; $(TEST_INFRA) status | sed 's/^/  /'; fi

# A demo named after a failure strategy (block, skip, ..., or strategy-poison:
# plain `poison` is the poison-queue demo) runs that strategy's part of the
# comparison on the e2e servers, narrated, and prints its row of the table.
demo: ## a fault scenario, explained: SCENARIO=kill-kafka|duplicates|poison after `make run`, or SCENARIO=<strategy> (docs/strategies.md)
	@case "$(or $(SCENARIO),kill-kafka)" in \
	kill-kafka|duplicates|poison) go run ./e2e/demo $(or $(SCENARIO),kill-kafka) ;; \
	*) set -o pipefail; SCENARIO=$(patsubst strategy-%,%,$(SCENARIO)) go test -count=1 -timeout 10m -v -run 'TestStrategies$$' ./e2e/ 2>&1 \
		| grep -vE '^(=== |    --- )' ;; \
	esac

demo-kill-kafka: ## after `make run`: Kafka killed while orders come in (watch http://127.0.0.1:8080/console)
	@go run ./e2e/demo kill-kafka

demo-duplicates: ## after `make run`: one event delivered four times
	@go run ./e2e/demo duplicates

demo-poison: ## after `make run`: bad messages among good ones
	@go run ./e2e/demo poison

observe: ## after `make run`: a real Prometheus on 127.0.0.1:9090 scraping both services, with the alert rules
	@$(OBSERVE) up

observe-down: ## stop the Prometheus of `make observe` (its data stays in .local/prometheus)
	@$(OBSERVE) down

up: ## docker compose: build, start everything, wait until healthy, print the URLs (Docker Compose 2.20+; KAFKA_NODES=3: the three-node Kafka cluster; ORDER_OUTBOX_RELAY=debezium: Debezium relays the order outbox)
	$(if $(filter-out 1 3,$(or $(KAFKA_NODES),1)),$(error KAFKA_NODES must be 1 or 3, not "$(KAFKA_NODES)"))
	docker compose $(if $(filter 3,$(KAFKA_NODES)),--profile cluster,$(if $(filter debezium,$(ORDER_OUTBOX_RELAY)),--profile single)) \
		$(if $(filter debezium,$(ORDER_OUTBOX_RELAY)),--profile debezium) up --build --detach --wait
	@printf '%s\n' '' 'onceflow is up (docker compose; `make down` stops it):' \
		'  order API   http://127.0.0.1:8080   (payment service http://127.0.0.1:8081)' \
		'  console     http://127.0.0.1:8080/console' \
		'  Grafana     http://127.0.0.1:3000/d/onceflow' \
		'  Prometheus  http://127.0.0.1:9090' \
		'  traces      http://127.0.0.1:16686   (Jaeger: service "order" or "payment")'

down: ## docker compose: stop everything (either Kafka profile, and Kafka Connect)
	docker compose --profile single --profile cluster --profile debezium down

bench: ## max rate (bisection, median of 3) with CPU per order, latency, forwarder alone and drain, outage recovery, consumer overhead, the three relays side by side (docs/relays.md), the delivery auditor on vs off, the saga of stock Watermill parts, judged against fourteen named goals (about 50 min)
	@$(INFRA) install
	go run -tags faults ./e2e/bench
