# Benchmarks and scheduling experiments (issue 5). Not part of `make test`: they measure, they
# do not gate. Both start their own supervisor on a temporary --root and clean up after.
BENCH_DEPS := crun runc bubblewrap hyperfine
BENCH_ENV  := ENGINE=$(ENGINE) ROOTFS=$(ROOTFS) BUILD=$(BUILD)

.PHONY: bench experiments soak softlimit

# benches/results/bench.md + startup.svg; BENCH_ARGS passes options (e.g. --only startup --runs 20).
# Then the OCI runtime rows (mk/oci.mk: oci-bench) and the soak (below).
bench: build rootfs
	@bash scripts/apt-install.sh $(BENCH_DEPS)
	$(BENCH_ENV) python3 benches/bench.py $(BENCH_ARGS)
	$(MAKE) oci-bench
	$(MAKE) soak

# benches/results/soak.md: SOAK_CYCLES start/rm cycles with random supervisor SIGKILLs, then a leak
# audit (processes, mounts, cgroups, veths, files, supervisor fds, records); exits 1 on a leak.
SOAK_CYCLES ?= 10000
soak: build rootfs
	$(BENCH_ENV) python3 benches/soak.py --cycles $(SOAK_CYCLES) $(SOAK_ARGS)

# benches/results/experiments.md + nice.svg, then the soft-limit figure (below).
experiments: build rootfs
	$(BENCH_ENV) python3 benches/experiments.py $(EXPERIMENT_ARGS)
	$(MAKE) softlimit

# benches/results/softlimit.md + softlimit.svg: soft_trap's RSS over time under the hard limit,
# --soft-signal (module, cgroup fallback) and memory.high; guest runs in QEMU (softlimit-vm),
# the cgroup v1 ones on this host.
softlimit: build rootfs
	$(MAKE) softlimit-vm
	$(BENCH_ENV) python3 benches/softlimit.py --guest $(VM_DIR)/softlimit.out

# The echo server in a container on engine's bridge, the client on the host (issue 4's demo).
.PHONY: demo-net
demo-net: build rootfs workloads
	$(BENCH_ENV) bash benches/demo-net.sh
