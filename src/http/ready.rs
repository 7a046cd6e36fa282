//! `/health/live` (the process answers) and `/health/ready` (it can do its job): SIP bound,
//! the data directory takes a real write, the store reads, prompts are loaded, and no check of
//! the [`crate::health::Health`] registry is failing. Unauthenticated, so a load balancer or
//! systemd watchdog can ask. On a loopback listener the body names paths and errors; on any
//! other address it says only which checks pass, since anyone who reaches it may read it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::{App, Shared};

#[derive(Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "live": true }))
}

pub async fn ready(State(app): State<Shared>) -> (StatusCode, Json<Readiness>) {
    let checks = tokio::task::spawn_blocking(move || {
        let mut checks = checks(&app);
        if !app.loopback {
            for c in &mut checks {
                c.detail.clear();
            }
        }
        checks
    })
    .await
    .unwrap_or_else(|e| {
        vec![Check {
            name: "ready".into(),
            ok: false,
            detail: format!("the checks failed to run: {e}"),
        }]
    });
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, checks }))
}

/// Every check, blocking (file and database I/O).
fn checks(app: &App) -> Vec<Check> {
    let ctx = &app.ctx;
    let mut out = vec![Check {
        name: "sip".into(),
        ok: true,
        detail: format!("listening on {} (UDP and TCP)", ctx.sip),
    }];
    let prompts = ctx.line.prompts_loaded();
    out.push(Check {
        name: "prompts".into(),
        ok: prompts > 0,
        detail: format!("{prompts} prompts loaded"),
    });
    out.push(match probe_write(&ctx.data_dir) {
        Ok(()) => Check {
            name: "data_dir".into(),
            ok: true,
            detail: format!("{} takes writes", ctx.data_dir.display()),
        },
        Err(e) => Check {
            name: "data_dir".into(),
            ok: false,
            detail: format!("cannot write in {}: {e}", ctx.data_dir.display()),
        },
    });
    out.push(match &ctx.store {
        None => Check {
            name: "store".into(),
            ok: false,
            detail: "the store could not be opened at start (see the log); restart once the data directory is fixed".into(),
        },
        Some(store) => match crate::store::SlaStore::next_sla_due(store.as_ref()) {
            Ok(_) => Check {
                name: "store".into(),
                ok: true,
                detail: format!("{} reads", crate::store::StoreMetrics::location(store.as_ref())),
            },
            Err(e) => Check {
                name: "store".into(),
                ok: false,
                detail: e.to_string(),
            },
        },
    });
    for p in ctx.health.problems() {
        out.push(Check {
            name: p.check.to_string(),
            ok: false,
            detail: format!(
                "{} (failing since {}, {} failures)",
                p.message, p.since, p.failures
            ),
        });
    }
    out
}

/// A real write where voicemails go: create, write, fsync and remove a small file. Catches a
/// read-only or full file system and a data directory that was moved or replaced.
fn probe_write(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(".ivr-ready-probe");
    let mut f = std::fs::File::create(&path)?;
    let written = f.write_all(b"ready\n").and_then(|()| f.sync_all());
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::{LoginThrottle, Sessions, TokenCheck, TokenVerifier};
    use crate::http::{AdminContext, App};
    use std::sync::Mutex;
    use std::time::Duration;

    /// A line that serves `prompts` prompts and never reloads.
    struct FixedLine {
        prompts: usize,
    }

    impl crate::http::Line for FixedLine {
        fn reload(
            &self,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = crate::services::reload::ReloadOutcome>
                    + Send
                    + '_,
            >,
        > {
            Box::pin(async { self.last_reload() })
        }
        fn last_reload(&self) -> crate::services::reload::ReloadOutcome {
            crate::services::reload::ReloadOutcome::default()
        }
        fn hours(&self) -> crate::hours::BusinessHours {
            crate::hours::BusinessHours::from_config(&crate::config::Config::embedded().hours)
                .expect("hours")
        }
        fn prompts_loaded(&self) -> usize {
            self.prompts
        }
        fn desk_and_flows(&self) -> (crate::bridge::DeskGroups, Vec<crate::http::ServedFlow>) {
            (crate::bridge::DeskGroups::default(), Vec::new())
        }
        fn registrations(&self) -> std::sync::Arc<[crate::sip::Registration]> {
            std::sync::Arc::from(Vec::new())
        }
    }

    fn app(data_dir: std::path::PathBuf, prompts_loaded: usize) -> App {
        let clock = crate::clock::Clock::system();
        App {
            ctx: AdminContext {
                store: None,
                notifier: None,
                health: crate::health::Health::new(clock),
                clock,
                data_dir,
                sip: "127.0.0.1:5070".parse().unwrap(),
                started: clock.now(),
                live: crate::live::LiveCalls::new(),
                metrics: crate::metrics::Metrics::new(),
                line: std::sync::Arc::new(FixedLine {
                    prompts: prompts_loaded,
                }),
                token: TokenCheck::Unconfigured,
                incidents: Default::default(),
                node: "test-node".into(),
            },
            verifier: Mutex::new(TokenVerifier::new(TokenCheck::Unconfigured)),
            sessions: Mutex::new(Sessions::new(Duration::from_secs(60), 10)),
            throttle: Mutex::new(LoginThrottle::new(
                5,
                Duration::from_secs(60),
                Duration::from_secs(60),
            )),
            loopback: true,
            event_streams: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    fn failing(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn every_failing_health_check_and_missing_store_or_prompts_fail_readiness() {
        let dir = std::env::temp_dir().join(format!("ivr-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let a = app(dir.clone(), 0);
        assert_eq!(failing(&checks(&a)), ["prompts", "store"]);
        a.ctx.health.fail("voicemail", "disk full");
        let all = checks(&a);
        assert_eq!(failing(&all), ["prompts", "store", "voicemail"]);
        assert!(all.last().expect("check").detail.contains("disk full"));
        a.ctx.health.ok("voicemail");
        assert_eq!(failing(&checks(&a)), ["prompts", "store"]);
        assert!(
            std::fs::read_dir(&dir).expect("dir").next().is_none(),
            "the probe file is removed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
