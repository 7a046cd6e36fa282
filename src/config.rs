//! Settings from `config/ivr.toml`.
