# Static C workloads (workloads/*.c) built by workloads/Makefile into workloads/bin/.
WORKLOAD_DIR  := $(ROOT)/workloads/bin
WORKLOAD_SRCS := $(wildcard $(ROOT)/workloads/*.c)
WORKLOAD_BINS := $(patsubst $(ROOT)/workloads/%.c,$(WORKLOAD_DIR)/%,$(WORKLOAD_SRCS))

.PHONY: workloads
workloads: $(WORKLOAD_BINS)

# workloads/Makefile holds the compiler flags; one sub-make per binary keeps make -j safe.
$(WORKLOAD_DIR)/%: $(ROOT)/workloads/%.c $(ROOT)/workloads/Makefile
	$(MAKE) -C $(ROOT)/workloads bin/$*
