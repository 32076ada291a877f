//! Target `config`: the `gatehouse serve` configuration file, loaded as the binary loads it
//! (defaults, then the TOML, through figment: [`Config::from_toml`]) and validated as start-up
//! and `gatehouse check` validate it (the library's settings → builder, the limits, the credit
//! notes' upstreams), without starting anything.
//!
//! Invariants:
//! - loading and validating never panic, whatever the text;
//! - a loaded configuration round-trips: serialised to TOML, it loads again to the same
//!   configuration (equal as TOML values), so `Config`'s serde shapes and the file agree.

use std::net::SocketAddr;

use gatehouse_cli::config::Config;

/// Fuzz target `config` (see the module docs).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    validate(&config);
    let text = toml::to_string(&config).expect("a loaded configuration serialises to TOML");
    let again = Config::from_toml(&text)
        .unwrap_or_else(|e| panic!("a serialised configuration does not load: {e}\n{text}"));
    // Compared as TOML values, not text: `tenancy.clients` is a `HashMap`, whose order differs
    // from one instance to the next.
    let value = |c: &Config| toml::Value::try_from(c).expect("a configuration is a TOML value");
    assert_eq!(
        value(&config),
        value(&again),
        "the configuration changed through TOML"
    );
}

fn validate(config: &Config) {
    let bound: SocketAddr = config.server.listen;
    let _ = config.settings().builder(bound);
    let _ = config.limits.validate();
    if let Some(notes) = &config.credit_notes {
        let _ = notes.delivery(&config.upstreams);
    }
}
