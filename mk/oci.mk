# engine as an OCI runtime (issue 9, parts 3 and 4): the conformance suite, podman and containerd
# (ctr and the CRI path) driven against an OCI runtime binary, and the speed rows against crun/runc.
# Every target takes the runtime as OCI_RUNTIME (default: engine's binary); crun and runc stand in
# for it until it exists.
OCI_RUNTIME    ?= $(ROOT)/target/release/engine-oci
# The conformance suite (runtime-tools, vendored) lives in the steering repo's shared/ beside the
# clone (CI lays a copy there); on these machines /work/shared is the same folder.
OCI_VALIDATION ?= $(firstword $(wildcard $(ROOT)/../shared/oci-validation) /work/shared/oci-validation)
OCI_RESULTS    := $(ROOT)/benches/results/oci-validation
OCI_DEPS       := crun runc podman containerd skopeo umoci conmon containernetworking-plugins golang-go \
                  hyperfine python3-grpcio util-linux bsdutils iproute2 jq

# A ROOTFS given on the command line (e.g. another checkout's, read-only) is used as it is: the
# rootfs target would rebuild it whenever this checkout's workloads are newer than its stamp.
OCI_ROOTFS_DEP := $(if $(filter command line,$(origin ROOTFS)),,rootfs)

.PHONY: oci-deps oci-conformance oci-validation-table oci-ecosystem oci-podman oci-containerd oci-bench

# Packages, then the suite's one-time build (into /var/tmp/oci-validation-260e151): run.sh builds
# before it runs, so asking it for no test only builds.
oci-deps:
	@bash scripts/apt-install.sh $(OCI_DEPS)
	@bash $(OCI_VALIDATION)/run.sh true --build-only >/dev/null 2>&1 || bash $(OCI_VALIDATION)/run.sh true --build-only

# The whole suite against OCI_RUNTIME; fails on a failure not in tests/oci/known-failures.txt.
# Results: benches/results/oci-validation/<name>.txt (name: OCI_NAME, default the binary's name).
oci-conformance: oci-deps
	OCI_VALIDATION=$(OCI_VALIDATION) bash tests/oci/conformance.sh $(OCI_RUNTIME)

# benches/results/oci-validation.md from the saved per-runtime results (engine, crun, runc).
oci-validation-table:
	python3 tests/oci/oci_results.py table $(OCI_RESULTS) $(ROOT)/benches/results/oci-validation.md

# podman and containerd (ctr + CRI) with OCI_RUNTIME, each in its own temp dir.
oci-ecosystem: oci-podman oci-containerd
oci-podman: oci-deps $(OCI_ROOTFS_DEP)
	ROOTFS=$(ROOTFS) bash tests/oci/podman.sh $(OCI_RUNTIME)
oci-containerd: oci-deps $(OCI_ROOTFS_DEP)
	ROOTFS=$(ROOTFS) bash tests/oci/containerd.sh $(OCI_RUNTIME)

# benches/results/oci-bench.md + .json: bundle run, podman run, ctr run; crun, runc, OCI_RUNTIME.
oci-bench: oci-deps $(OCI_ROOTFS_DEP)
	ROOTFS=$(ROOTFS) BUILD=$(BUILD) python3 benches/oci_bench.py --runtime $(OCI_RUNTIME) $(OCI_BENCH_ARGS)
