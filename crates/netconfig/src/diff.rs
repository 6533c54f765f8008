//! Differences between two configurations, for the revision history.
//!
//! Both are written as canonical pretty JSON ([`NetworkConfig::to_canonical_json`]) and
//! compared line by line (`similar`, Myers' algorithm): a rule inserted at the top shows as
//! the lines of that rule, not as every later index changed, which a structural diff by path
//! would report. The output is a unified diff with three lines of context, deterministic for
//! the same pair.

use similar::TextDiff;

use crate::model::NetworkConfig;

/// A unified diff from `old` to `new`, empty when they are equal. `old_name` and `new_name`
/// label the two sides (`r12`, `candidate`).
pub fn diff(old: &NetworkConfig, new: &NetworkConfig, old_name: &str, new_name: &str) -> String {
    let a = old.to_canonical_json();
    let b = new.to_canonical_json();
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}
