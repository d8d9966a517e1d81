# engine — build, rootfs, tests, kernel module, benchmarks, demo.
# Every target installs what it needs (Debian packages) so a fresh machine works.
SHELL      := /bin/bash
ROOT       := $(CURDIR)
BUILD      := $(ROOT)/build
ENGINE     := $(ROOT)/target/release/engine
ROOTFS     := $(ROOT)/rootfs
WORKLOADS  := cpu_hog io_pulse memory_hog
CARGO      ?= cargo

.PHONY: all build workloads rootfs deps test unit-test integration-test leak-check lint fuzz demo clean install uninstall

all: build workloads

build:
	$(CARGO) build --release

# Debian packages the build and the tests need; apt-get update runs once per machine.
deps: oci-deps
	@bash scripts/apt-install.sh busybox-static python3-venv golang-github-containers-common
	@bash scripts/apt-install.sh docker-registry apache2-utils skopeo umoci zstd podman nftables

include mk/workloads.mk
include mk/vm.mk
include mk/bench.mk
include mk/install.mk
include mk/oci.mk

rootfs: $(ROOTFS)/.stamp

$(ROOTFS)/.stamp: scripts/mkrootfs.sh $(WORKLOAD_BINS)
	@bash scripts/apt-install.sh busybox-static python3-venv
	bash scripts/mkrootfs.sh $(ROOTFS) $(WORKLOAD_DIR)
	touch $@

unit-test:
	$(CARGO) test --release --lib

# Integration tests start real containers: root, the rootfs and the workloads are required.
integration-test: build rootfs
	ENGINE_TEST_ROOTFS=$(ROOTFS) $(CARGO) test --release --test '*'

# The fuzz tests for longer than make test runs them: the wire format and request handlers for
# FUZZ_SECS seconds per target (from ENGINE_FUZZ_SEED if set), the init channel for
# FUZZ_INIT_ITERATIONS messages.
FUZZ_SECS ?= 300
FUZZ_INIT_ITERATIONS ?= 2000000
fuzz: build rootfs
	ENGINE_TEST_ROOTFS=$(ROOTFS) ENGINE_FUZZ_SECS=$(FUZZ_SECS) $(CARGO) test --release --test fuzz_wire -- --nocapture
	ENGINE_TEST_ROOTFS=$(ROOTFS) ENGINE_FUZZ_ITERATIONS=$(FUZZ_INIT_ITERATIONS) $(CARGO) test --release --test fuzz_init

leak-check:
	bash tests/leak-check.sh

# Formatting and clippy, warnings as errors: part of make test.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

test: deps build rootfs lint
	ENGINE_TEST_ROOTFS=$(ROOTFS) $(CARGO) test --release
	$(MAKE) oci-conformance
	$(MAKE) oci-containerd
	$(MAKE) oci-podman
	$(MAKE) vm-test
	$(MAKE) vm-dkms-test
	bash tests/leak-check.sh

demo: build rootfs
	bash scripts/demo.sh

clean:
	$(CARGO) clean
	rm -rf $(BUILD) $(ROOTFS)
	$(MAKE) -C workloads clean
