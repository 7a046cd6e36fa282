//! Where the path-valued keys point. A relative path resolves against the directory of the file
//! it was written in, as nginx, kamailio and systemd read theirs, so `ivr` runs the same from any
//! working directory; the built-in defaults' paths resolve against the install they ship with
//! ([`Install`]); a command-line flag's against the working directory, as a shell user expects.
//! Every resolved path remembers where it was written, so an error can name the key and file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Keys holding one path each, as `(table, key)`.
const PATH_KEYS: [(&str, &str); 9] = [
    ("prompts", "dir"),
    ("flows", "default"),
    ("data", "dir"),
    ("billing", "clients_csv"),
    ("webhooks", "ca_file"),
    ("email", "ca_file"),
    ("transcription", "hmm"),
    ("transcription", "lm"),
    ("transcription", "dict"),
];
/// Tables whose every value is a path: `[flows.numbers]` maps dialled numbers to flow files.
const PATH_TABLES: [(&str, &str); 1] = [("flows", "numbers")];

/// Where the built-in defaults' relative paths (`prompts`, `callflows/after_hours.toml`, `var`)
/// resolve: the first of the working directory, the executable's directory, its
/// `../share/ivr`, and the checkout it was built from that holds the shipped prompts and flow.
/// So `cargo run` in the checkout behaves as it always did, a copied or packaged install finds
/// its files next to the binary, and a `cargo install`ed binary finds them in the checkout it
/// was built from, from any working directory. The data directory (`var`) goes along, so
/// `ivr serve` and `ivr voicemail list` agree on it wherever each is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// The directory the built-in defaults resolve against.
    pub dir: PathBuf,
    /// Every directory looked at, in order; when none holds the files, `dir` is the first (the
    /// working directory) and errors list these.
    pub searched: Vec<PathBuf>,
    /// Whether `dir` holds the shipped files.
    pub found: bool,
}

impl Install {
    /// Looks in the working directory, next to the executable, in its `../share/ivr` and in the
    /// checkout it was built from, for the built-in `prompts.dir` and `flows.default`.
    pub fn discover() -> Install {
        let mut candidates = Vec::new();
        candidates.extend(std::env::current_dir().ok());
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            let share = exe_dir.parent().map(|prefix| prefix.join("share/ivr"));
            candidates.push(exe_dir);
            candidates.extend(share);
        }
        candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let defaults = super::Config::embedded();
        Install::find(candidates, &defaults.prompts.dir, &defaults.flows.default)
    }

    /// The first of `candidates` holding the directory `prompts` and the file `flow`; else the
    /// first candidate.
    pub fn find(candidates: Vec<PathBuf>, prompts: &Path, flow: &Path) -> Install {
        let found = candidates
            .iter()
            .find(|dir| dir.join(prompts).is_dir() && dir.join(flow).is_file());
        let (dir, found) = match found {
            Some(dir) => (dir.clone(), true),
            None => (candidates.first().cloned().unwrap_or_default(), false),
        };
        Install {
            dir: absolute(&dir),
            searched: candidates,
            found,
        }
    }
}

/// Who wrote a path, which decides what a relative path is relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSource {
    /// A config file (absolute path): relative to its directory.
    File(PathBuf),
    /// The built-in defaults: relative to the install.
    BuiltIn(Install),
    /// A command-line flag (`--prompts`): relative to the working directory.
    Flag(&'static str),
    /// An environment variable (`IVR_STORE_URL`); a relative path against the working directory.
    Env(&'static str),
}

/// One path-valued setting: its key, the text as written, and who wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathOrigin {
    /// Dotted key, e.g. `prompts.dir` or `flows.numbers."+15550100"`.
    pub key: String,
    /// The value as written, before resolving.
    pub written: String,
    pub source: PathSource,
}

impl fmt::Display for PathOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PathOrigin {
            key,
            written,
            source,
        } = self;
        match source {
            PathSource::File(file) => write!(f, "{key} = {written:?} in {}", file.display()),
            PathSource::Flag(flag) => write!(f, "{flag} {written}"),
            PathSource::Env(var) => write!(f, "{var}={written:?} in the environment"),
            PathSource::BuiltIn(install) if install.found => write!(
                f,
                "{key} = {written:?} of the built-in defaults, relative to the install {}",
                install.dir.display()
            ),
            PathSource::BuiltIn(install) => {
                let searched: Vec<String> = install
                    .searched
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                write!(
                    f,
                    "{key} = {written:?} of the built-in defaults, relative to the working \
                     directory: no install found (looked for prompts/ and callflows/ in {}); \
                     give --config FILE",
                    searched.join(", ")
                )
            }
        }
    }
}

/// The origins of a config's path-valued settings, by dotted key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathOrigins(BTreeMap<String, PathOrigin>);

impl PathOrigins {
    pub fn get(&self, key: &str) -> Option<&PathOrigin> {
        self.0.get(key)
    }

    pub(super) fn insert(&mut self, origin: PathOrigin) {
        self.0.insert(origin.key.clone(), origin);
    }
}

/// The dotted key of `flows.numbers` entry `number`.
pub fn flow_number_key(number: &str) -> String {
    format!("flows.numbers.{number:?}")
}

/// Rewrites every relative path among the path-valued keys of `table` (one layer of config, as
/// parsed) to `base.join(path)`, and records each key's origin. Values of the wrong type are left
/// for deserializing to report; an empty string stays empty (it means "none").
pub(super) fn resolve_layer(
    table: &mut toml::Table,
    base: &Path,
    source: &PathSource,
    origins: &mut PathOrigins,
) {
    // `[store] url = "sqlite://PATH"`: the PATH is a path like the others.
    if let Some(toml::Value::String(url)) = sub_table(table, "store").and_then(|t| t.get_mut("url"))
        && let Some(path) = url.strip_prefix(super::store::SQLITE_SCHEME)
        && !path.is_empty()
        && Path::new(path).is_relative()
    {
        origins.insert(PathOrigin {
            key: "store.url".into(),
            written: url.clone(),
            source: source.clone(),
        });
        *url = format!(
            "{}{}",
            super::store::SQLITE_SCHEME,
            base.join(path).to_string_lossy()
        );
    }
    let mut resolve = |key: String, value: &mut toml::Value| {
        let toml::Value::String(written) = value else {
            return;
        };
        if written.is_empty() {
            return;
        }
        let resolved = base.join(&*written);
        origins.insert(PathOrigin {
            key,
            written: written.clone(),
            source: source.clone(),
        });
        *value = toml::Value::String(resolved.to_string_lossy().into_owned());
    };
    for (section, key) in PATH_KEYS {
        if let Some(value) = sub_table(table, section).and_then(|t| t.get_mut(key)) {
            resolve(format!("{section}.{key}"), value);
        }
    }
    for (section, key) in PATH_TABLES {
        if let Some(toml::Value::Table(entries)) =
            sub_table(table, section).and_then(|t| t.get_mut(key))
        {
            for (name, value) in entries.iter_mut() {
                resolve(flow_number_key(name), value);
            }
        }
    }
}

fn sub_table<'a>(table: &'a mut toml::Table, name: &str) -> Option<&'a mut toml::Table> {
    match table.get_mut(name) {
        Some(toml::Value::Table(t)) => Some(t),
        _ => None,
    }
}

/// `path` made absolute against the working directory (without touching the file system, so a
/// path that does not exist yet keeps its name for the error).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
