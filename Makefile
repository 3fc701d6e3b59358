# The two commands a newcomer needs are `go run ./cmd/odi dev` (the demo)
# and `make test` (everything CI runs).

GO ?= go

.PHONY: test build bench demo fuzz lint

test: lint
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz

lint:
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Each fuzz target runs briefly; a longer session is `go test -fuzz=X -fuzztime=10m ./pkg`.
FUZZTIME ?= 4s
FUZZ_TARGETS = \
	internal/catalog:FuzzParseRequestPath \
	internal/relay:FuzzParseHead \
	internal/tufrepo:FuzzClientTimestamp \
	internal/tufrepo:FuzzClientTrustedRoot \
	internal/tufrepo:FuzzClientRootUpdate \
	internal/tufrepo:FuzzClientSnapshot \
	internal/tufrepo:FuzzClientBin \
	internal/tufrepo:FuzzParseHashedTargetName \
	internal/tufrepo:FuzzParsePrivateKey \
	internal/tufrepo:FuzzFastBin \
	internal/tufrepo:FuzzFastSnapshot
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) ./$$pkg >/dev/null || \
			$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) ./$$pkg; \
	done

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/odi ./cmd/odi

demo:
	$(GO) run ./cmd/odi dev

# Not run by CI: it needs Linux, two or more cores, wrk and nginx (installed with
# apt-get when run as root), and takes about ten minutes. See doc/performance.md.
bench:
	$(GO) run ./cmd/odibench -out bench-results/bench.json
