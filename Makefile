# medvault: one non-recursive Makefile.  make | make test | make asan | make demo
BUILD ?= build
PKGS := fuse3 libsodium lmdb p11-kit-1 libcrypto
CC ?= cc
CPPFLAGS += -Iinclude -D_GNU_SOURCE -DFUSE_USE_VERSION=312 $(shell pkg-config --cflags $(PKGS))
CFLAGS += -std=c11 -g -O2 -Wall -Wextra -MMD -MP -pthread $(SAN)
LDFLAGS += -pthread $(SAN)
LDLIBS += $(shell pkg-config --libs $(PKGS)) -ldl

# fs/<layer>/*.c and crypto/*.c make the library; fs/cli/ is the command
# line on top of it (its own archive, so unit tests can link a command group)
LIB_SRC := $(filter-out fs/cli/%,$(wildcard fs/*/*.c crypto/*.c))
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
LIB := $(BUILD)/libmedvault.a
CLI_SRC := $(filter-out fs/cli/main.c,$(wildcard fs/cli/*.c))
CLI_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(CLI_SRC))
CLI_LIB := $(BUILD)/libmedvault-cli.a
BIN := $(BUILD)/medvault
# tests/unit/<layer>/test_<module>.c -> $(BUILD)/tests/<layer>/test_<module>
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))

.PHONY: all test unit integration asan clean demo deps stress fuzz bench install uninstall
all: $(BIN) $(UNIT_BIN) $(TOOL_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(CLI_LIB): $(CLI_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(BUILD)/fs/cli/main.o $(CLI_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(CLI_LIB) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test: all
	SAN_LOG_DIR=$(SAN_LOG_DIR) BUILD=$(BUILD) scripts/run-tests.sh

unit: all
	BUILD=$(BUILD) scripts/run-tests.sh unit

integration: all
	BUILD=$(BUILD) scripts/run-tests.sh integration

asan:
	$(MAKE) BUILD=build/asan SAN='-fsanitize=address,undefined -fno-omit-frame-pointer' \
		SAN_LOG_DIR=$(CURDIR)/build/asan/san-reports test

# 200 crash rounds take longer than the 10 minutes a test program gets by default
stress: all
	TEST_TIMEOUT=$${TEST_TIMEOUT:-2400} BUILD=$(BUILD) scripts/run-tests.sh stress

demo:
	scripts/install-deps.sh
	$(MAKE) all
	scripts/demo.sh

deps:
	scripts/install-deps.sh

bench: all
	scripts/install-bench-deps.sh
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh

PREFIX ?= /usr/local
install: all
	install -D -m 0755 $(BUILD)/medvault $(DESTDIR)$(PREFIX)/bin/medvault
	install -D -m 0755 scripts/mount.medvault $(DESTDIR)/sbin/mount.medvault
	install -D -m 0644 docs/medvault.1 $(DESTDIR)$(PREFIX)/share/man/man1/medvault.1
	install -d -m 0700 $(DESTDIR)/etc/medvault
	install -m 0644 contrib/medvault.conf.example $(DESTDIR)/etc/medvault/
	sed 's|/usr/local/bin/medvault|$(PREFIX)/bin/medvault|g' contrib/medvault@.service >$(BUILD)/medvault@.service
	install -D -m 0644 $(BUILD)/medvault@.service $(DESTDIR)/etc/systemd/system/medvault@.service
	-systemctl daemon-reload 2>/dev/null
	# the account a root mount serves as once mounted (docs/DESIGN.md)
	[ -n "$(DESTDIR)" ] || id -u medvault >/dev/null 2>&1 || \
		useradd --system --no-create-home --shell /usr/sbin/nologin medvault

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/medvault $(DESTDIR)/sbin/mount.medvault \
	      $(DESTDIR)$(PREFIX)/share/man/man1/medvault.1 $(DESTDIR)/etc/systemd/system/medvault@.service

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BUILD)/fs/cli/main.d $(UNIT_BIN:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.d) $(TOOL_BIN:$(BUILD)/tools/%=$(BUILD)/tests/tools/%.d)
