# A thin wrapper over cargo for people and packagers who expect make.
#
#   make                                  cargo build --release (+ the
#                                         native-static-libs list for the .pc)
#   make install [PREFIX=/usr/local] [LIBDIR=...] [INCLUDEDIR=...] [DESTDIR=...]
#   make uninstall [same variables]
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
DESTDIR ?=
CARGO ?= cargo
CARGOFLAGS ?= --locked
LDCONFIG ?= ldconfig
BUILD_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release

INSTALL_ARGS = --prefix="$(PREFIX)" --libdir="$(LIBDIR)" \
	--includedir="$(INCLUDEDIR)" --pkgconfigdir="$(PKGCONFIGDIR)" \
	--destdir="$(DESTDIR)" --build-dir="$(BUILD_DIR)" --ldconfig="$(LDCONFIG)"

export CARGO CARGOFLAGS

.PHONY: all build install uninstall examples test clean

# written last by `build`: present means the libraries are there too
BUILT = $(BUILD_DIR)/rte_power.native-static-libs

all: build

build:
	$(CARGO) build --release $(CARGOFLAGS)
	bash scripts/install.sh native-libs --build-dir="$(BUILD_DIR)"

$(BUILT):
	$(MAKE) build

install: | $(BUILT)
	bash scripts/install.sh install $(INSTALL_ARGS)

uninstall:
	bash scripts/install.sh uninstall $(INSTALL_ARGS)

examples:
	$(MAKE) -C examples-c

test:
	bash scripts/test.sh

clean:
	$(CARGO) clean
	$(MAKE) -C examples-c clean
