# A thin wrapper over cargo for people and packagers who expect make.
#
#   make                                  cargo build --release (+ the
#                                         native-static-libs list for the .pc)
#                                         and the DPDK binary ABIs
#                                         (scripts/build-abi.sh:
#                                         target/release/dpdk-abi/)
#   make install [PREFIX=/usr/local] [LIBDIR=...] [INCLUDEDIR=...] [DESTDIR=...]
#                [DPDKLIBDIR=$(LIBDIR)/rte-power] [STRIP=1]
#   make uninstall [same variables]
#   make dpdk-override [LDCONFDIR=/etc/ld.so.conf.d]   as root, after
#                                         install: every DPDK program on
#                                         the host loads our librte_power.so.N
#                                         (an ld.so.conf.d entry, ldconfig)
#   make dpdk-restore                     the way back
#   make deb                              Debian packages in target/deb/
#                                         (scripts/build-deb.sh; README,
#                                         "Packages and fleet")
#   make examples                         the C examples, against the
#                                         installed tree (PKG_CONFIG_PATH)
#   make test                             the whole test suite
#
# `install` builds only when the files it copies are missing; it does not
# rebuild stale ones: run `make` as yourself first, then `sudo make install`
# (root's PATH needs no Rust toolchain then). scripts/install.sh does the
# work and says what every variable means.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DPDKLIBDIR ?= $(LIBDIR)/rte-power
LDCONFDIR ?= /etc/ld.so.conf.d
STRIP ?= 1
DESTDIR ?=
CARGO ?= cargo
CARGOFLAGS ?= --locked
LDCONFIG ?= ldconfig
BUILD_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release

INSTALL_ARGS = --prefix="$(PREFIX)" --libdir="$(LIBDIR)" \
	--includedir="$(INCLUDEDIR)" --pkgconfigdir="$(PKGCONFIGDIR)" \
	--destdir="$(DESTDIR)" --build-dir="$(BUILD_DIR)" --ldconfig="$(LDCONFIG)" \
	--dpdklibdir="$(DPDKLIBDIR)" --ldconfdir="$(LDCONFDIR)" --strip="$(STRIP)"

export CARGO CARGOFLAGS

.PHONY: all build install uninstall dpdk-override dpdk-restore deb examples test clean

# written last by `build`: present means the libraries are there too
BUILT = $(BUILD_DIR)/dpdk-abi/.built

all: build

build:
	$(CARGO) build --release $(CARGOFLAGS)
	bash scripts/install.sh native-libs --build-dir="$(BUILD_DIR)"
	bash scripts/build-abi.sh --build-dir="$(BUILD_DIR)"

$(BUILT):
	$(MAKE) build

install: | $(BUILT)
	bash scripts/install.sh install $(INSTALL_ARGS)

uninstall:
	bash scripts/install.sh uninstall $(INSTALL_ARGS)

dpdk-override:
	bash scripts/install.sh dpdk-override $(INSTALL_ARGS)

dpdk-restore:
	bash scripts/install.sh dpdk-restore $(INSTALL_ARGS)

deb: | $(BUILT)
	bash scripts/build-deb.sh --build-dir="$(BUILD_DIR)"

examples:
	$(MAKE) -C examples-c

test:
	bash scripts/test.sh

clean:
	$(CARGO) clean
	$(MAKE) -C examples-c clean
