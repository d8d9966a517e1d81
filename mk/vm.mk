# Kernel module (kmod/) and the QEMU test VM (tests/vm/): issue 3, DESIGN.md "Testing the
# kernel module". Included by the top-level Makefile (ROOT, BUILD, ROOTFS, CARGO, WORKLOAD_*).
#
#   make kmod           monitor.ko for this host's kernel (/lib/modules/$(uname -r)/build);
#                       without one (a module-less build host), for the VM's Debian kernel
#   make vm-kernel      fetch + unpack the current Debian cloud kernel and headers (cached)
#   make engine-static  static engine for the guest
#   make vm-test        boot the guest, run tests/vm/scenario.sh, require every check; a guest
#                       kernel lockup while monitor.ko is not loaded (an emulator/kernel flake,
#                       reported with its trace) gets one fresh boot (single-threaded TCG)
#   make vm-dkms-test   the module as DKMS builds and installs it (make install's source tree,
#                       scripts/vm-dkms.sh), loaded with modprobe in the guest (tests/vm/dkms.sh)
#   make vm-run VM_SCRIPT=path   boot the guest, run a script of yours, print its output
#   make bench-monitor  detection delay, idle cost and --soft-signal latency figures, measured in
#                       the guest; benches/monitor.py writes benches/results/monitor.md
#   make softlimit-vm   the soft-limit figure's guest runs (tests/vm/softlimit.sh) into
#                       build/vm/softlimit.out (make softlimit / experiments plot them)
#
# VM_ACCEL=kvm for hosts with a real KVM; VM_ENGINE_CHECKS=1 adds the engine checks
# (tests/vm/engine-scenario.sh) and the OCI binary's monitor checks (tests/vm/engine-oci-monitor.sh)
# to vm-test.

VM_DIR           := $(BUILD)/vm
VM_TOOLS         := $(VM_DIR)/tools
VM_KMOD          := $(VM_DIR)/kmod
VM_ACCEL         ?= tcg
VM_MEM           ?= 1024
VM_TIMEOUT       ?= 300
VM_ENGINE_CHECKS ?= 1
# The one re-boot after a guest kernel lockup: under TCG, single-threaded emulation, which rules
# out the multi-threaded emulator's own races.
comma            := ,
VM_RETRY_ACCEL   := $(if $(filter tcg,$(VM_ACCEL)),tcg$(comma)thread=single,$(VM_ACCEL))
ENGINE_TARGET    := x86_64-unknown-linux-gnu
ENGINE_STATIC    := $(ROOT)/target/$(ENGINE_TARGET)/release/engine
HOST_KDIR        := /lib/modules/$(shell uname -r)/build
KMOD_SRCS        := $(ROOT)/kmod/monitor.c $(ROOT)/kmod/monitor_uapi.h $(ROOT)/kmod/Kbuild
VM_EXPECTED      := $(ROOT)/tests/vm/expected-module.txt \
                    $(if $(filter 1,$(VM_ENGINE_CHECKS)),$(ROOT)/tests/vm/expected-engine.txt \
                                                         $(ROOT)/tests/vm/expected-oci.txt)

# What scripts/vm-initramfs.sh and tests/vm/boot.sh read.
VM_ENV = VM_DIR=$(VM_DIR) MONITOR_KO=$(VM_KMOD)/monitor.ko VM_TOOLS=$(VM_TOOLS) \
         WORKLOAD_DIR=$(WORKLOAD_DIR) ROOTFS=$(ROOTFS) VM_ACCEL=$(VM_ACCEL) \
         VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT)

.PHONY: kmod vm-deps vm-kernel vm-kmod vm-tools engine-static vm-test vm-dkms-test vm-run bench-monitor softlimit-vm

vm-deps:
	@bash $(ROOT)/scripts/apt-install.sh qemu-system-x86 busybox-static gcc gcc-12 make libc6-dev libelf1 zlib1g

vm-kernel: vm-deps
	@bash $(ROOT)/scripts/vm-kernel.sh $(VM_DIR)

kmod:
	@if [ -d $(HOST_KDIR) ]; then \
		$(MAKE) -C $(ROOT)/kmod KDIR=$(HOST_KDIR); \
	else \
		echo "kmod: no $(HOST_KDIR): building for the VM's Debian kernel"; \
		$(MAKE) vm-kernel && . $(VM_DIR)/kernel.env && $(MAKE) -C $(ROOT)/kmod KDIR=$$KDIR; \
	fi

# The guest's module is built from a copy, so it never clobbers a host build in kmod/.
vm-kmod: vm-kernel
	@mkdir -p $(VM_KMOD)
	@cp -p $(KMOD_SRCS) $(VM_KMOD)/
	@. $(VM_DIR)/kernel.env && $(MAKE) -s -C $$KDIR M=$(VM_KMOD) modules

vm-tools: $(VM_TOOLS)/cm_test $(VM_TOOLS)/vm-exit

$(VM_TOOLS)/cm_test: $(ROOT)/tests/vm/cm_test.c $(ROOT)/kmod/monitor_uapi.h
	@mkdir -p $(VM_TOOLS)
	gcc -O2 -Wall -Wextra -static -I$(ROOT)/kmod -o $@ $<

$(VM_TOOLS)/vm-exit: $(ROOT)/tests/vm/vm-exit.c
	@mkdir -p $(VM_TOOLS)
	gcc -O2 -Wall -Wextra -static -o $@ $<

engine-static:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(ENGINE_TARGET)

# $(call vm_engine): path of a freshly built static engine, or empty if it does not build
# (the guest then has no engine and every engine check FAILs; module checks still run).
vm_engine = $$($(MAKE) -s engine-static >&2 && echo $(ENGINE_STATIC) || \
              echo "vm: make engine-static failed; the guest has no engine" >&2)

vm-test: vm-deps vm-kmod vm-tools rootfs
	@eb=$(if $(filter 1,$(VM_ENGINE_CHECKS)),$(call vm_engine)); \
	$(VM_ENV) ENGINE_BIN=$$eb bash $(ROOT)/scripts/vm-initramfs.sh $(VM_DIR)/test.cpio $(ROOT)/tests/vm/scenario.sh
	@boot() { $(VM_ENV) VM_ACCEL=$$2 VM_APPEND=engine_checks=$(VM_ENGINE_CHECKS) \
		bash $(ROOT)/tests/vm/boot.sh test $(VM_DIR)/test.cpio $(VM_DIR)/test$$1.log $(VM_EXPECTED); }; \
	boot "" $(VM_ACCEL); rc=$$?; \
	if [ $$rc = 3 ]; then \
		echo "vm-test: booting the guest once more, $(VM_RETRY_ACCEL); every check runs again and must pass (first log: $(VM_DIR)/test.log)"; \
		boot -retry $(VM_RETRY_ACCEL); rc=$$?; \
	fi; \
	exit $$rc
	@$(if $(filter 1,$(VM_ENGINE_CHECKS)),:,echo "vm-test: engine checks NOT RUN (VM_ENGINE_CHECKS=1 runs them)")

# One boot; the guest needs neither the engine nor the containers' rootfs. A guest kernel lockup
# while the module is not loaded gets one fresh boot, as in vm-test.
vm-dkms-test: vm-deps vm-kernel vm-tools install-deps build
	@$(VM_ENV) ENGINE=$(ENGINE) MAKE=$(MAKE) bash $(ROOT)/scripts/vm-dkms.sh $(VM_DIR)/dkms $(VM_DIR)/dkms.cpio
	@boot() { $(VM_ENV) VM_ACCEL=$$2 bash $(ROOT)/tests/vm/boot.sh test $(VM_DIR)/dkms.cpio \
		$(VM_DIR)/dkms$$1.log $(ROOT)/tests/vm/expected-dkms.txt | sed 's/^vm-test:/vm-dkms-test:/'; \
		return $${PIPESTATUS[0]}; }; \
	boot "" $(VM_ACCEL); rc=$$?; \
	if [ $$rc = 3 ]; then \
		echo "vm-dkms-test: booting the guest once more, $(VM_RETRY_ACCEL) (first log: $(VM_DIR)/dkms.log)"; \
		boot -retry $(VM_RETRY_ACCEL); rc=$$?; \
	fi; \
	exit $$rc

vm-run: vm-deps vm-kmod vm-tools rootfs
	@[ -n "$(VM_SCRIPT)" ] && [ -f "$(VM_SCRIPT)" ] || { echo "usage: make vm-run VM_SCRIPT=path/to/script.sh" >&2; exit 2; }
	@eb=$(call vm_engine); \
	$(VM_ENV) ENGINE_BIN=$$eb bash $(ROOT)/scripts/vm-initramfs.sh $(VM_DIR)/run.cpio $(abspath $(VM_SCRIPT))
	@$(VM_ENV) bash $(ROOT)/tests/vm/boot.sh run $(VM_DIR)/run.cpio $(VM_DIR)/run.log

# The guest's output is kept in bench.out; monitor.py turns it into benches/results/monitor.md.
bench-monitor: vm-deps vm-kmod vm-tools rootfs
	@eb=$(call vm_engine); \
	$(VM_ENV) ENGINE_BIN=$$eb bash $(ROOT)/scripts/vm-initramfs.sh $(VM_DIR)/bench.cpio $(ROOT)/tests/vm/bench.sh
	@$(VM_ENV) bash $(ROOT)/tests/vm/boot.sh run $(VM_DIR)/bench.cpio $(VM_DIR)/bench.log | tee $(VM_DIR)/bench.out; \
	rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || exit $$rc
	python3 $(ROOT)/benches/monitor.py $(VM_DIR)/bench.out

softlimit-vm: vm-deps vm-kmod vm-tools rootfs
	@eb=$(call vm_engine); \
	$(VM_ENV) ENGINE_BIN=$$eb bash $(ROOT)/scripts/vm-initramfs.sh $(VM_DIR)/softlimit.cpio $(ROOT)/tests/vm/softlimit.sh
	@$(VM_ENV) bash $(ROOT)/tests/vm/boot.sh run $(VM_DIR)/softlimit.cpio $(VM_DIR)/softlimit.log > $(VM_DIR)/softlimit.out; \
	rc=$$?; grep -v '^SL sample ' $(VM_DIR)/softlimit.out | cut -c1-300; exit $$rc
