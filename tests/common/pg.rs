//! A throw-away PostgreSQL cluster for tests: `initdb` in a temp directory, `pg_ctl start` on a
//! free loopback port with its socket in that directory, stopped and deleted on drop. One copy
//! serves the lib's unit tests (src/store/postgres includes it) and the integration tests. One
//! cluster serves a whole test binary (starting one takes seconds); each test gets its own
//! database from [`database`]. A watcher process stops it too if the test binary dies without
//! running its exit handlers (an abort, a kill).
//!
//! Needs Debian's `postgresql` package (binaries in /usr/lib/postgresql/N/bin; found on PATH
//! otherwise). Without it a test prints a SKIP line and passes, unless IVR_REQUIRE_INTEROP=1
//! (CI), where it fails. PostgreSQL refuses to run as root: as root the cluster runs as the
//! `postgres` user the package creates.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A running cluster; stopped and its directory removed on drop.
pub(crate) struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// Run the server's programs as this user (`Some("postgres")` when we are root).
    user: Option<&'static str>,
    port: u16,
}

/// The binary's shared cluster (`None` inside: PostgreSQL is not installed). Dropped by the
/// exit handler, since statics are never dropped.
static SHARED: Mutex<Option<Option<Arc<Cluster>>>> = Mutex::new(None);

/// A fresh, empty database on the shared cluster: its connection URL. `None` (after a SKIP
/// line) when PostgreSQL is not installed and IVR_REQUIRE_INTEROP is not 1.
pub(crate) fn database() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = shared()?;
    let name = format!("t_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls)
        .expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    Some(cluster.url(&name))
}

fn shared() -> Option<Arc<Cluster>> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if shared.is_none() {
        let cluster = Cluster::start().map(Arc::new);
        if cluster.is_some() {
            extern "C" fn stop_shared() {
                // Dropping the last Arc stops the cluster; a test still holding one (none do at
                // exit) would keep it until the process is gone.
                if let Ok(mut s) = SHARED.lock() {
                    s.take();
                }
            }
            // SAFETY: registers a plain function with no captured state; it runs once at exit.
            unsafe { libc::atexit(stop_shared) };
        }
        *shared = Some(cluster);
    }
    let cluster = shared.as_ref().and_then(Clone::clone);
    if cluster.is_none() {
        skip_or_fail();
    }
    cluster
}

fn skip_or_fail() {
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_string();
    if std::env::var("IVR_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "{test}: PostgreSQL not installed and IVR_REQUIRE_INTEROP=1 (apt-get install postgresql)"
        );
    }
    // The real stderr: libtest captures `eprintln!` of passing tests, and a skip must show.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {test}: PostgreSQL not installed (apt-get install postgresql)"
    );
}

impl Cluster {
    /// Start a cluster; `None` when PostgreSQL is not installed. Panics when it is installed
    /// but will not start (that is a failure to look at, not a skip).
    pub(crate) fn start() -> Option<Cluster> {
        let bin = find_bin()?;
        let root = unsafe { libc::geteuid() } == 0;
        let user = if root {
            // The server refuses root; Debian's package makes this user. No such user: treat
            // as not installed (only the binaries are there).
            if !run_ok(Command::new("id").args(["-u", "postgres"])) {
                return None;
            }
            Some("postgres")
        } else {
            None
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ivr-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        if let Some(user) = user {
            let ok = run_ok(Command::new("chown").arg(user).arg(&dir));
            assert!(ok, "chown {} to {user}", dir.display());
        }
        let mut cluster = Cluster {
            dir,
            bin,
            user,
            port: 0,
        };
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        // A port taken between choosing it and the server binding it fails the start; try
        // another a few times.
        for attempt in 0..5 {
            cluster.port = free_port();
            // Durability off: the cluster lives for one test run.
            let opts = format!(
                "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off",
                cluster.dir.display(),
                cluster.port
            );
            let log = cluster.dir.join("log");
            let started = cluster.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &opts,
                    "start",
                ],
            );
            if started {
                cluster.watch();
                return Some(cluster);
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempt < 4 && log.contains("could not bind"),
                "pg_ctl start failed; server log:\n{log}"
            );
        }
        unreachable!("the loop returns or panics")
    }

    /// A process that stops the cluster once this test process is gone: exit handlers (and
    /// so `Drop`) do not run when a test binary aborts or is killed, and the server would
    /// outlive it.
    fn watch(&self) {
        let data = self.dir.join("data");
        let pg_ctl = self.bin.join("pg_ctl");
        let as_user = self
            .user
            .map(|u| format!("runuser -u {u} -- "))
            .unwrap_or_default();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{pg_ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = data.display(),
            dir = self.dir.display(),
        );
        // Not waited for: it outlives this process by design.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    /// The URL of database `db` on this cluster.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn try_run(&self, program: &str, args: &[&str]) -> bool {
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !out.status.success() {
            let _ = writeln!(
                std::io::stderr(),
                "{program} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    fn run(&self, program: &str, args: &[&str]) {
        assert!(self.try_run(program, args), "{program} failed (see above)");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway.
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest /usr/lib/postgresql/N/bin (Debian), else the directory of `initdb` on PATH.
fn find_bin() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).find(|d| has_tools(d))
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
