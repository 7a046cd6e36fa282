//! Hot reload: re-read the config, the flows and the prompts from where `serve` read them at
//! start, check them with the same functions start uses, and swap the set new calls start with.
//!
//! A call task takes its `Arc<CallSettings>` when its INVITE arrives and keeps it to the end, so a
//! live call finishes on the set it started with while the next call gets the new one. A set that
//! fails its checks is never installed: the old one stays and the error (with file:line from the
//! flow checker) is returned, logged and written to `DATA/reload.json` for `ivr reload`.
//!
//! What a running process cannot change (sockets it has bound, the store it has opened, the
//! registrar and webhook worker built at start) is compared too: a changed key is reported as
//! needing a restart, never silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

use super::control::ReloadOutcome;
use super::*;
use crate::config::{ConfigError, ConfigSource};

/// The settings new calls start with; swapped whole by a reload.
pub struct LiveSettings {
    current: RwLock<Arc<CallSettings>>,
}

impl LiveSettings {
    pub fn new(settings: Arc<CallSettings>) -> LiveSettings {
        LiveSettings {
            current: RwLock::new(settings),
        }
    }

    /// The set a new call keeps for its whole life.
    pub fn current(&self) -> Arc<CallSettings> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn install(&self, settings: Arc<CallSettings>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }
}

/// Why a reload kept the old set.
#[derive(Debug, Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The same errors `serve` refuses to start with (flow diagnostics carry file:line:col).
    #[error("{0}")]
    Check(#[from] ServeError),
    #[error("this ivr was started without a config source to reload from")]
    NoSource,
    #[error("reload task failed: {0}")]
    Task(String),
}

/// Reads one key (or section) of a config as comparable text.
type KeyReader = fn(&Config) -> String;

/// Config keys a running process cannot change, with how to read each from a config. Everything
/// else (flows, prompts, hours, desk groups and timings, clients and billing, caller and repeat
/// policy, call timings, RTP latching and timeout) applies to the next call.
fn restart_keys() -> Vec<(&'static str, KeyReader)> {
    vec![
        // Sockets, limits, domains and timers of the SIP core, bound and built at start.
        ("sip", |c| format!("{:?}", c.sip)),
        ("rtp.ports", |c| c.rtp.ports.clone()),
        ("data.dir", |c| c.data.dir.display().to_string()),
        ("log", |c| format!("{:?}", c.log)),
        // The webhook worker and the SLA timers run with what they were started with.
        // Compared in full (secrets and header values included), never printed.
        ("webhooks", |c| {
            let w = &c.webhooks;
            format!(
                "{} {} {:?} {} {} {:?} {}",
                w.url,
                w.secret,
                w.headers,
                w.escalation_url,
                w.escalation_secret,
                w.escalation_headers,
                w.ca_file.display()
            )
        }),
        ("sla", |c| format!("{:?}", c.sla)),
        // The registrar's users and digest settings (the desk's copy of passwords does reload,
        // but a phone registers against the registrar's).
        ("staff", |c| {
            let passwords: Vec<&str> = c.staff.users.iter().map(|u| u.password.as_str()).collect();
            format!("{:?} {passwords:?}", c.staff)
        }),
        // Also the SIP core's per-source limit exemptions.
        ("callers.trusted_proxies", |c| {
            format!("{:?}", c.callers.trusted_proxies)
        }),
        // The transcription worker runs the engine it was started with.
        ("transcription", |c| format!("{:?}", c.transcription)),
        // Registrations and the inbound rules run in the signalling loop as started. Compared
        // with the secrets (Debug hides them), never printed.
        ("trunks", |c| {
            let secrets: Vec<(&str, &str)> = c
                .trunks
                .iter()
                .map(|t| (t.password.as_str(), t.ha1.as_str()))
                .collect();
            format!("{:?} {secrets:?}", c.trunks)
        }),
    ]
}

/// The changed keys that need a restart.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    restart_keys()
        .into_iter()
        .filter(|(_, read)| read(old) != read(new))
        .map(|(key, _)| key.to_string())
        .collect()
}

/// The restart-needed entry of a reload whose larger desk groups outgrow the open-files plan.
const OPEN_FILES_BUDGET: &str = "desk groups (open-files budget)";

/// The flows by dialled number, each as a comparable text.
fn flow_texts(flows: &FlowTable) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = flows
        .numbers
        .iter()
        .map(|(n, f)| (n.clone(), format!("{f:?}")))
        .collect();
    map.insert("default".into(), format!("{:?}", flows.default));
    map
}

fn diff_flows(old: &FlowTable, new: &FlowTable, outcome: &mut ReloadOutcome) {
    let (old, new) = (flow_texts(old), flow_texts(new));
    for (key, text) in &new {
        match old.get(key) {
            None => outcome.flows_added.push(key.clone()),
            Some(t) if t != text => outcome.flows_changed.push(key.clone()),
            Some(_) => {}
        }
    }
    outcome.flows_removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
}

/// What `serve` checks and builds from the config that a reload rebuilds too.
pub(super) struct Reloadable {
    pub prompts: PromptStore,
    pub flows: FlowTable,
    pub desk: call::DeskSettings,
    pub hours: BusinessHours,
    pub clients: Vec<Client>,
}

/// Loads and checks everything reloadable, in the order `serve` starts with.
pub(super) fn load_reloadable(config: &Config) -> Result<Reloadable, ServeError> {
    let prompts =
        PromptStore::load_dir(&config.prompts.dir).map_err(|source| ServeError::Prompts {
            source,
            origin: config.path_origin("prompts.dir"),
        })?;
    info!(dir = %config.prompts.dir.display(), count = prompts.len(), "prompts loaded");
    let missing = config
        .incidents
        .missing_prompts(|p| prompts.get(p).is_some(), &config.prompts.dir);
    if !missing.is_empty() {
        return Err(ServeError::Incidents(missing.join("; ")));
    }
    let flows = load_flows(config)?;
    let desk = desk_settings(config, &flows)?;
    let hours = BusinessHours::from_config(&config.hours)?;
    let clients = super::load_clients(config)?;
    Ok(Reloadable {
        prompts,
        flows,
        desk,
        hours,
        clients,
    })
}

/// Re-reads and swaps the serving set; one reload at a time.
pub struct Reloader {
    source: Option<ConfigSource>,
    live: Arc<LiveSettings>,
    data_dir: PathBuf,
    /// The config the serving set came from, and the last generation; held across a reload so
    /// two reloads never interleave.
    state: tokio::sync::Mutex<(Config, u64)>,
    last: Mutex<ReloadOutcome>,
    /// Open files per call the start's budget was fitted to.
    fds_planned: usize,
}

impl Reloader {
    pub(super) fn new(
        source: Option<ConfigSource>,
        config: Config,
        live: Arc<LiveSettings>,
    ) -> Reloader {
        let settings = live.current();
        let first = ReloadOutcome {
            pid: std::process::id(),
            generation: 0,
            ok: true,
            error: None,
            at: jiff::Timestamp::now().to_string(),
            flows_added: flow_texts(&settings.flows).into_keys().collect(),
            prompts: settings.prompts.len(),
            ..ReloadOutcome::default()
        };
        let reloader = Reloader {
            source,
            live,
            data_dir: config.data.dir.clone(),
            state: tokio::sync::Mutex::new((config, 0)),
            last: Mutex::new(first.clone()),
            fds_planned: super::settings::fds_per_call(&settings.desk),
        };
        reloader.publish(&first);
        reloader
    }

    /// The outcome of the last reload (generation 0: the start).
    pub fn last(&self) -> ReloadOutcome {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads config, flows and prompts; on success new calls use them, on failure nothing
    /// changes. Either way the outcome is logged and written to `DATA/reload.json`.
    pub async fn reload(&self) -> ReloadOutcome {
        let mut state = self.state.lock().await;
        state.1 += 1;
        let generation = state.1;
        let mut outcome = ReloadOutcome {
            pid: std::process::id(),
            generation,
            at: jiff::Timestamp::now().to_string(),
            ..ReloadOutcome::default()
        };
        match self.try_reload(&state.0).await {
            Ok((config, settings)) => {
                let old = self.live.current();
                diff_flows(&old.flows, &settings.flows, &mut outcome);
                outcome.restart_needed = restart_needed(&state.0, &config);
                // The open-files budget (max calls, TCP connections) was fitted at start to the
                // largest desk group then; a larger one rings more legs per call than planned.
                let (planned, now) = (
                    self.fds_planned,
                    super::settings::fds_per_call(&settings.desk),
                );
                if now > planned {
                    warn!(
                        planned,
                        now,
                        "reload: a desk group grew; the open-files budget (sip.max_calls) was planned for smaller groups until a restart"
                    );
                    outcome.restart_needed.push(OPEN_FILES_BUDGET.into());
                }
                outcome.prompts = settings.prompts.len();
                outcome.ok = true;
                self.live.install(settings);
                state.0 = config;
                for key in &outcome.restart_needed {
                    warn!(event = "reload_restart_needed", key = %key,
                        "reload: {key} changed but only takes effect after a restart; the running line keeps the old value");
                }
                info!(event = "reload", generation, added = ?outcome.flows_added,
                    removed = ?outcome.flows_removed, changed = ?outcome.flows_changed,
                    prompts = outcome.prompts, "reloaded: new calls use the new set; live calls finish on the old");
            }
            Err(e) => {
                outcome.error = Some(e.to_string());
                tracing::error!(event = "reload_failed", generation, error = %e,
                    "reload failed: the running set is kept");
            }
        }
        self.publish(&outcome);
        outcome
    }

    async fn try_reload(&self, old: &Config) -> Result<(Config, Arc<CallSettings>), ReloadError> {
        let source = self.source.clone().ok_or(ReloadError::NoSource)?;
        // Reading a prompt directory and checking flows is file work: off the async threads.
        let (config, parts) = tokio::task::spawn_blocking(move || {
            let config = source.load()?;
            let parts = load_reloadable(&config)?;
            Ok::<_, ReloadError>((config, parts))
        })
        .await
        .map_err(|e| ReloadError::Task(e.to_string()))??;
        let current = self.live.current();
        let memory = super::memory_from(
            &config,
            parts.clients.clone(),
            current.memory.store.clone(),
            current.memory.notifier.clone(),
            current.memory.health.clone(),
            current.memory.clock,
        );
        // Trusted proxies belong to the SIP core's admission too: keep them whole until a restart.
        // So does the node name: the calls it marks must be found by the same name at restart.
        let memory = Memory {
            trusted_proxies: old.callers.trusted_proxies.clone(),
            node: current.memory.node.clone(),
            ..memory
        };
        let process = super::ProcessWide {
            clock: current.clock,
            metrics: current.metrics.clone(),
            live: current.live.clone(),
        };
        let fresh = super::call_settings(&config, parts, memory, process);
        // What needs a restart keeps the value the process runs with.
        let settings = CallSettings {
            data_dir: current.data_dir.clone(),
            rtp_bind_ip: current.rtp_bind_ip,
            rtp_ports: current.rtp_ports,
            ..fresh
        };
        Ok((config, Arc::new(settings)))
    }

    /// Writes `outcome` to `DATA/reload.json` (a rename, so a reader never sees half a file).
    fn publish(&self, outcome: &ReloadOutcome) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = outcome.clone();
        if let Err(e) = super::control::write_outcome(&self.data_dir, outcome) {
            warn!(dir = %self.data_dir.display(), error = %e, "cannot write the reload outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_str(text, "test").expect("valid config")
    }

    #[test]
    fn restart_only_keys_are_reported_and_reloadable_ones_are_not() {
        let old = config("");
        let new = config(
            "[sip]\nlisten = \"127.0.0.1:5999\"\n[rtp]\nports = \"31000-31999\"\n[sla]\ncallback_minutes = 5\n",
        );
        assert_eq!(restart_needed(&old, &new), ["sip", "rtp.ports", "sla"]);
        let new = config("[call]\nring_ms = 10\n[callers]\nrepeat_times = 9\n");
        assert!(restart_needed(&old, &new).is_empty());
        let new = config("[transcription]\nengine = \"off\"\n");
        assert_eq!(restart_needed(&old, &new), ["transcription"]);
    }

    #[test]
    fn a_staff_password_change_needs_a_restart_though_debug_hides_it() {
        let user = |pw: &str| {
            config(&format!(
                "[[staff.users]]\nname = \"alice\"\npassword = \"{pw}\"\n"
            ))
        };
        assert_eq!(
            restart_needed(&user("one-secret-1"), &user("two-secret-2")),
            ["staff"]
        );
    }

    #[test]
    fn a_trunk_change_needs_a_restart_password_included() {
        let trunk = |pw: &str| {
            config(&format!(
                "[[trunks]]\nname = \"carrier\"\nregistrar = \"sip:192.0.2.1\"\n\
                 username = \"a\"\npassword = \"{pw}\"\n"
            ))
        };
        assert_eq!(restart_needed(&trunk("one"), &trunk("two")), ["trunks"]);
        assert_eq!(restart_needed(&config(""), &trunk("one")), ["trunks"]);
    }
}
