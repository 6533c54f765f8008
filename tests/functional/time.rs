//! Time through the running device: status, manual set-time and clock steps recorded.
