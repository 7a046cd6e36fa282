//! `[cluster]`: who this node is when several `ivr` nodes share one PostgreSQL store (issue 16).
//!
//! The node name marks the calls a node has open (so a restarting node closes only its own
//! interrupted calls, never a live call on another node) and the webhook events it has leased
//! for delivery. Each node of a cluster needs its own name; the host name is the default
//! because it already differs between machines.

use serde::Deserialize;

/// The name when the host name cannot be read.
const FALLBACK_NODE: &str = "ivr";
/// Long enough for any host name (HOST_NAME_MAX is 64 on Linux).
const MAX_NODE_LEN: usize = 64;

/// `[cluster]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name; by default the host name, else "ivr".
    #[serde(default = "default_node")]
    pub node: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node: default_node(),
        }
    }
}

/// The host name as the kernel has it, else [`FALLBACK_NODE`].
pub fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| check_node(h).is_ok())
        .unwrap_or_else(|| FALLBACK_NODE.to_string())
}

/// `Err` is the reason `node` is refused: empty, too long, or holding spaces or control
/// characters (it is stored in rows and shown in logs and /api/status).
pub fn check_node(node: &str) -> Result<(), String> {
    if node.trim().is_empty() {
        return Err("the node name is empty; name this node (e.g. its host name) or leave cluster.node out for the host name".into());
    }
    if node.len() > MAX_NODE_LEN {
        return Err(format!("longer than {MAX_NODE_LEN} bytes"));
    }
    if node.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("spaces and control characters are not allowed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_default_is_a_valid_name_and_a_set_name_is_kept() {
        let c = Config::from_str("", "test.toml").expect("defaults load");
        assert!(check_node(&c.cluster.node).is_ok(), "{:?}", c.cluster.node);
        assert_eq!(c.cluster.node, default_node());
        let c = Config::from_str("[cluster]\nnode = \"ivr-b\"\n", "test.toml").expect("loads");
        assert_eq!(c.cluster.node, "ivr-b");
    }

    #[test]
    fn an_empty_or_spaced_name_is_a_config_error_on_cluster_node() {
        for bad in ["", "  ", "ivr b"] {
            let err = Config::from_str(&format!("[cluster]\nnode = {bad:?}\n"), "test.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains("cluster.node"), "{err}");
        }
    }
}
