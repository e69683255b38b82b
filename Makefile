# The two commands of the README:
#   make demo   build everything, run the engine with the demo tenant (SQLite)
#   make test   build everything, run the whole test suite
WASM_TARGET := wasm32-wasip2
PLUGINS := -p keyword-reply -p appointment-reminders -p order-notifications -p chaos-plugin

.PHONY: plugins demo test engine

# Plugins are WebAssembly components built with the small `plugin` profile
# into target/wasm32-wasip2/plugin/.
plugins:
	rustup target add $(WASM_TARGET)
	cargo build --profile plugin --target $(WASM_TARGET) $(PLUGINS)

engine:
	cargo build --release -p switchboard

demo: plugins engine
	./target/release/switchboard serve

test: plugins
	cargo test --release --workspace --no-fail-fast
