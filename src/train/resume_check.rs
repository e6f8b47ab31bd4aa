//! Whether a run may continue from a checkpoint saved with other settings: every setting must be
//! equal except those that do not change the numbers computed so far (how long to go on, how
//! often to save, log or evaluate). Jobs save their settings as JSON in `trainer_state.json`; this
//! compares two such values key by key (nested tables as dotted keys).

use candle_core::Result;
use serde_json::Value;

/// Fails naming the first key (dotted for nested tables) whose value differs between `now` and
/// `saved`, unless it is one of `free`.
pub fn check_same_settings(now: &Value, saved: &Value, free: &[&str]) -> Result<()> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", saved, &mut a);
    flatten("", now, &mut b);
    let keys: std::collections::BTreeSet<&String> =
        a.iter().chain(b.iter()).map(|(k, _)| k).collect();
    for key in keys {
        if free.contains(&key.as_str()) {
            continue;
        }
        let find = |v: &[(String, Value)]| {
            v.iter()
                .find(|(k, _)| k == key)
                .map(|(_, x)| x.to_string())
                .unwrap_or_else(|| "nothing".into())
        };
        let (then, this) = (find(&a), find(&b));
        if then != this {
            candle_core::bail!(
                "cannot resume: `{key}` differs from the checkpoint's config (checkpoint {then}, this run {this}); only {} may change",
                free.join(", ")
            )
        }
    }
    Ok(())
}

/// `{"a": {"b": 1}}` -> `[("a.b", 1)]`; arrays and scalars are leaves.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}
