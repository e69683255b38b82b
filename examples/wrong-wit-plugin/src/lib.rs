//! Targets `switchboard:plugin@0.2.0`, which this engine does not provide:
//! the deploy-validation tests expect a clear `WRONG_WIT_VERSION` refusal.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

struct Future;

impl Guest for Future {
    fn on_timer(payload: String) -> Result<(), String> {
        switchboard::plugin::log::write(switchboard::plugin::log::Level::Info, &payload);
        Ok(())
    }
}

export!(Future);
