//! `Config::from_yaml` on any text: errors are fine, panics (and hangs) are not.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_yaml(text, &BTreeMap::new()) {
        // A config that loads can be summarised (what `check-config` prints).
        let _ = config.summary();
    }
});
