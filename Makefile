# The two commands of the README:
#   make demo   build everything, run the engine with the demo tenant (SQLite)
#   make test   build everything, run the whole test suite
WASM_TARGET := wasm32-wasip2
PLUGINS := -p keyword-reply -p appointment-reminders -p order-notifications -p chaos-plugin -p wrong-wit-plugin -p visit-bot-rs

PRISM_VERSION := 5.16.0
PRISM := target/tools/node_modules/.bin/prism
# schemathesis and its dependencies, pinned in tests/tools/schemathesis.txt.
SCHEMATHESIS := target/tools/venv/bin/schemathesis
# Twilio's own SDKs, which the Twilio-compatible API is tested with.
TWILIO_PYTHON := target/tools/twilio-venv/bin/twilio-installed
TWILIO_NODE_VERSION := 6.3.1
TWILIO_NODE := target/tools/node_modules/twilio/package.json

.PHONY: plugins demo test engine tools guests browser

# Plugins are WebAssembly components built with the small `plugin` profile
# into target/wasm32-wasip2/plugin/.
plugins:
	rustup target add $(WASM_TARGET)
	cargo build --profile plugin --target $(WASM_TARGET) $(PLUGINS)

engine:
	cargo build --release -p switchboard

demo: plugins engine
	./target/release/switchboard serve

# The JavaScript and Python examples, built by `switchboard plugin build`
# with the toolchains it pins (jco and componentize-js from the npm registry,
# componentize-py from PyPI), installed once under target/tools/guests.
GUEST_TOOLS := $(CURDIR)/target/tools/guests
WIT := sdk-guest/wit/plugin.wit

guests: target/guests/visit-bot-js.wasm target/guests/visit-bot-py.wasm

target/guests/visit-bot-js.wasm: examples/visit-bot-js/plugin.js examples/visit-bot-js/package.json examples/visit-bot-js/plugin.toml $(WIT)
	SWITCHBOARD_TOOLS_DIR=$(GUEST_TOOLS) ./target/release/switchboard plugin build examples/visit-bot-js

target/guests/visit-bot-py.wasm: examples/visit-bot-py/app.py examples/visit-bot-py/plugin.toml $(WIT)
	SWITCHBOARD_TOOLS_DIR=$(GUEST_TOOLS) ./target/release/switchboard plugin build examples/visit-bot-py

# Test tools from the registries: Prism (npm) checks the Twilio connector's
# requests, and the Twilio-compatible API's requests and answers, against
# Twilio's OpenAPI description; schemathesis (PyPI) fuzzes the API from its
# own OpenAPI document; Twilio's SDKs (PyPI, npm) drive the compatible API.
tools: $(PRISM) $(SCHEMATHESIS) $(TWILIO_PYTHON) $(TWILIO_NODE)

$(PRISM):
	npm install --prefix target/tools --no-audit --no-fund --loglevel=error @stoplight/prism-cli@$(PRISM_VERSION)

$(TWILIO_PYTHON): tests/tools/twilio-python.txt
	python3 -m venv target/tools/twilio-venv
	target/tools/twilio-venv/bin/pip install --quiet --disable-pip-version-check -r tests/tools/twilio-python.txt
	touch $@

$(TWILIO_NODE): $(PRISM)
	npm install --prefix target/tools --no-audit --no-fund --loglevel=error twilio@$(TWILIO_NODE_VERSION)

$(SCHEMATHESIS): tests/tools/schemathesis.txt
	python3 -m venv target/tools/venv
	target/tools/venv/bin/pip install --quiet --disable-pip-version-check -r tests/tools/schemathesis.txt
	touch $@

# The suite runs on SQLite, then the end-to-end tests (and the engine's
# trace and console tests) again on PostgreSQL (each test in a database of its own,
# dropped afterwards). The second run
# selects the same packages (--workspace), so nothing is built again.
TEST_DATABASE ?= postgres://postgres@127.0.0.1:5432/test
E2E_TESTS := $(foreach t,$(basename $(notdir $(wildcard tests/*.rs))),--test $(t)) --test abuse --test traces --test console --test kv_commits

# Debian's Chromium and ChromeDriver, which the web console's tests drive
# (engine/tests/console.rs); installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }

# The test build comes first: `make guests` builds with its switchboard.
test: plugins tools browser
	cargo test --release --workspace --no-run
	$(MAKE) guests
	cargo test --release --workspace --no-fail-fast
	SWITCHBOARD_TEST_DATABASE=$(TEST_DATABASE) cargo test --release --workspace --no-fail-fast $(E2E_TESTS)
