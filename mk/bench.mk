# Benchmarks and scheduling experiments (issue 5). Not part of `make test`: they measure, they
# do not gate. Both start their own supervisor on a temporary --root and clean up after.
BENCH_DEPS := crun runc bubblewrap hyperfine
BENCH_ENV  := ENGINE=$(ENGINE) ROOTFS=$(ROOTFS) BUILD=$(BUILD)

.PHONY: bench experiments soak

# benches/results/bench.md + startup.svg; BENCH_ARGS passes options (e.g. --only startup --runs 20).
# Then the soak (below).
bench: build rootfs
	@bash scripts/apt-install.sh $(BENCH_DEPS)
	$(BENCH_ENV) python3 benches/bench.py $(BENCH_ARGS)
	$(MAKE) soak

# benches/results/soak.md: SOAK_CYCLES start/rm cycles with random supervisor SIGKILLs, then a leak
# audit (processes, mounts, cgroups, veths, files, supervisor fds, records); exits 1 on a leak.
SOAK_CYCLES ?= 10000
soak: build rootfs
	$(BENCH_ENV) python3 benches/soak.py --cycles $(SOAK_CYCLES) $(SOAK_ARGS)

# benches/results/experiments.md + nice.svg
experiments: build rootfs
	$(BENCH_ENV) python3 benches/experiments.py $(EXPERIMENT_ARGS)

# The echo server in a container on engine's bridge, the client on the host (issue 4's demo).
.PHONY: demo-net
demo-net: build rootfs workloads
	$(BENCH_ENV) bash benches/demo-net.sh
