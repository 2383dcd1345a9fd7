# ringmail build. `make run` and `make test` are the two entry points a new
# user needs (see README.md); everything else is for developers.
#
# Sources are discovered by wildcard so that adding a module never means
# editing this file: every .c under engine/ (except the CLI entry point),
# campaigns/ and templates/ goes into one static library that both the
# binary and the test runner link.

CC       ?= cc
PKGS     := liburing openssl yaml-0.1 hiredis libcares
BUILD    ?= build

# -Wno-format-truncation: every snprintf into a bounded field truncates on
# purpose (reply texts, reasons); the warning would force unbounded buffers.
# -Wconversion and -Wpedantic from STYLE.md 3.9 are left out for now: the
# Criterion macros trip -Wpedantic, and -Wconversion is kept for a later
# pass over the parsers (see README "Build").
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough -Wvla \
            -Wpointer-arith -Wundef -Wwrite-strings -fno-common \
            -Wno-format-truncation
OPT      ?= -O2 -g
HARDEN   ?= -fstack-protector-strong -D_FORTIFY_SOURCE=2
CFLAGS   += -std=c17 -D_GNU_SOURCE $(OPT) -pipe $(WARN) $(HARDEN) -fPIE \
            -Iengine -I. -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS  += -pie -Wl,-z,relro,-z,now
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

MAIN_SRC := engine/cli/main.c
LIB_SRC  := $(filter-out $(MAIN_SRC),$(sort $(shell find engine campaigns templates -name '*.c' 2>/dev/null)))
# .S files embed shipped data files (.incbin), e.g. the bounce rules.
ASM_SRC  := $(sort $(shell find engine campaigns templates -name '*.S' 2>/dev/null))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(ASM_SRC:%.S=$(BUILD)/obj/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
HDRS     := $(sort $(shell find engine campaigns templates -name '*.h' 2>/dev/null))

.PHONY: all deps run test unit integration asan bench check-headers clean fmt fuzz fuzz-run

all: $(BUILD)/ringmail

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) -I. -MMD -MP -c $< -o $@

# .incbin is invisible to -MMD: name the embedded data files here.
$(BUILD)/obj/engine/mail/bounce_rules_data.o: engine/mail/bounce-rules.txt

$(BUILD)/libringmail.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ringmail: $(BUILD)/obj/$(MAIN_SRC:.c=.o) $(BUILD)/libringmail.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_all: $(TEST_OBJ) $(BUILD)/libringmail.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# Every header must compile on its own (STYLE.md 3.6).
check-headers: $(HDRS:%.h=$(BUILD)/hdr/%.ok)
$(BUILD)/hdr/%.ok: %.h
	@mkdir -p $(dir $@)
	@$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -x c -fsyntax-only $< && touch $@

# The one test command (README, .ci/run). Installs what the tests need,
# builds, runs the unit suite (Criterion) and the integration suite (real
# redis-server, real SMTP receivers, started by the tests on free loopback
# ports), then prints one closing "N passed, N failed" line for both.
test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/test_all check-headers
	@scripts/run-tests.sh $(BUILD)

unit: $(BUILD)/test_all
	$(BUILD)/test_all -j2

integration: all
	/usr/bin/python3 tests/integration/run.py --build $(BUILD)

# ASan + UBSan build of the same suite, in its own build directory.
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  OPT='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
	  HARDEN= LDFLAGS='-fsanitize=address,undefined' all build-asan/test_all
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp build-asan/test_all -j2
	RINGMAIL_SANITIZED=1 /usr/bin/python3 tests/integration/run.py --build build-asan

run: deps all
	@scripts/run-example.sh $(BUILD)

bench: deps all
	@bench/run.sh $(BUILD)

bench-render: all
	@bench/bench_render.sh $(BUILD)

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, each built with clang
# against the library sources, which are compiled once (instrumented,
# build-fuzz/obj) into build-fuzz/libringmail-fuzz.a. `make fuzz` builds
# them; `make fuzz-run` runs each for FUZZ_SECONDS.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -g -O1 -Iengine -I. -MMD -MP \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o) $(ASM_SRC:%.S=build-fuzz/obj/%.o)
fuzz: $(FUZZ_BIN)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
build-fuzz/obj/%.o: %.S
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
build-fuzz/obj/engine/mail/bounce_rules_data.o: engine/mail/bounce-rules.txt
build-fuzz/libringmail-fuzz.a: $(FUZZ_OBJ)
	ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libringmail-fuzz.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< \
	  build-fuzz/libringmail-fuzz.a $(LDLIBS)
-include $(FUZZ_OBJ:.o=.d)
fuzz-run: fuzz
	@for f in $(FUZZ_BIN); do mkdir -p build-fuzz/corpus-$$(basename $$f); \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus-$$(basename $$f) tests/fuzz/seeds/$$(basename $$f) 2>&1 | tail -n 2 || exit 1; done

fmt:
	clang-format -i $(LIB_SRC) $(MAIN_SRC) $(HDRS) $(TEST_SRC)

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/obj/$(MAIN_SRC:.c=.d)
