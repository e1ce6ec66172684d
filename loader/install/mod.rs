//! `--install-cni` / `--uninstall-cni`: dnsredir put into a node's CNI chain and taken out,
//! by dnsredir itself (the DaemonSet's image is FROM scratch: no shell, no `cp`). The binary is
//! copied into the CNI bin directory and dnsredir's entry added to the node's conflist, each
//! file replaced in one rename ([`files`]); the JSON edits are [`conflist`]'s.

pub mod conflist;
pub mod files;

use conflist::{Change, Pick, PLUGIN_TYPE};
use serde_json::{Map, Value};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const BIN_DIR: &str = "/opt/cni/bin";
pub const CONF_DIR: &str = "/etc/cni/net.d";
/// Larger than any real conflist or options file by far; a bound on what is read.
const CONFIG_MAX: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRequest {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    /// A JSON object: the plugin's options in the conflist.
    pub options: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallRequest {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
}

/// What went wrong with the node's CNI files: each names its file.
#[derive(Debug)]
pub enum InstallError {
    /// No configuration list in the conf directory.
    NoConflist { dir: PathBuf },
    /// The runtime loads `first`, a single-plugin file, before any conflist.
    NotAList {
        first: PathBuf,
        conflist: Option<PathBuf>,
    },
    /// The options file is not what the entry can be made of.
    Options { path: PathBuf, why: String },
    /// A conflist dnsredir cannot edit.
    Malformed { path: PathBuf, why: String },
    /// A read, write or rename that failed.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::NoConflist { dir } => write!(
                f,
                "no CNI network configuration list (*.conflist) in {}",
                dir.display()
            ),
            InstallError::NotAList { first, conflist } => write!(
                f,
                "{} is the first CNI configuration in {} and a single plugin's, not a list, so runtimes never load {}",
                first.display(),
                first.parent().unwrap_or(Path::new("")).display(),
                conflist
                    .as_ref()
                    .map_or("a conflist after it".into(), |c| c.display().to_string())
            ),
            InstallError::Options { path, why } => {
                write!(f, "bad --cni-options {}: {why}", path.display())
            }
            InstallError::Malformed { path, why } => {
                write!(f, "{} is not a CNI configuration list dnsredir can edit: {why}", path.display())
            }
            InstallError::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {} failed: {source}", path.display()),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InstallError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl InstallError {
    pub fn advice(&self) -> Option<String> {
        Some(match self {
            InstallError::NoConflist { .. } => "dnsredir chains itself into the node's network plugin's conflist: install the network plugin first (its own DaemonSet writes the file when it starts), or pass --cni-conf-dir".into(),
            InstallError::NotAList { .. } => "dnsredir chains itself into a conflist only: have the network plugin write a .conflist (or convert that file into one)".into(),
            InstallError::Options { .. } => "give a file holding one JSON object of the plugin's options, e.g. {\"upstream\": \"10.0.0.53\"}".into(),
            InstallError::Malformed { .. } => "fix or remove that file; nothing was changed".into(),
            InstallError::Io { .. } => "is the directory there and writable (the DaemonSet mounts the host's), and are we root?".into(),
        })
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        action,
        path,
        source,
    }
}

/// What an install did, for its one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub binary: PathBuf,
    pub conflist: PathBuf,
    pub change: Change,
    /// The plugins' types in chain order, after the change.
    pub chain: String,
}

/// Copies the running binary into the CNI bin directory, then puts dnsredir's entry into the
/// conf directory's first conflist. In that order: a conflist that names dnsredir before the
/// binary is there would fail every pod's network setup. `check_entry` says what is wrong with
/// the entry's options as the plugin will read them: the CNI front end's parser, handed in by
/// the caller because the CNI front end's errors already build on this module's.
pub fn install(
    request: &InstallRequest,
    check_entry: impl Fn(&Map<String, Value>) -> Result<(), String>,
) -> Result<Installed, InstallError> {
    let options = files::read_small(&request.options, CONFIG_MAX)
        .map_err(io_error("reading", &request.options))?;
    let options: Value = serde_json::from_slice(&options).map_err(|e| InstallError::Options {
        path: request.options.clone(),
        why: format!("not JSON ({e})"),
    })?;
    let entry = conflist::entry(options).map_err(|why| InstallError::Options {
        path: request.options.clone(),
        why,
    })?;
    // The options as the plugin reads them at every pod's ADD: a bad one is refused here, not
    // by failing every new pod's network setup.
    check_entry(&entry).map_err(|why| InstallError::Options {
        path: request.options.clone(),
        why,
    })?;
    // The conflist is read and checked before the binary is copied: a refusal changes nothing.
    let path = first_conflist(&request.conf_dir)?;
    let (mut list, mode) = read_conflist(&path)?;
    // Only in memory: the file is written once the binary is in place.
    let change = conflist::insert(&mut list, &entry).map_err(|why| malformed(&path, why))?;

    let binary = request.bin_dir.join(PLUGIN_TYPE);
    let mut exe =
        File::open("/proc/self/exe").map_err(io_error("opening", Path::new("/proc/self/exe")))?;
    files::replace(&binary, 0o755, &mut |out| io::copy(&mut exe, out).map(drop))
        .map_err(io_error("copying dnsredir to", &binary))?;

    if change != Change::Unchanged {
        write_conflist(&path, &list, mode)?;
    }
    Ok(Installed {
        binary,
        chain: conflist::chain(&list),
        conflist: path,
        change,
    })
}

/// What an uninstall did, for its one line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Uninstalled {
    /// The conflists dnsredir's entry was taken out of, with their chains after.
    pub conflists: Vec<(PathBuf, String)>,
    /// The binary, if it was there.
    pub binary: Option<PathBuf>,
}

/// Takes dnsredir's entry out of every conflist of the conf directory (the first one may not
/// be the one it was put into by now), then removes the binary — in that order, for the same
/// reason as [`install`]'s. Nothing to remove is no error: it runs on nodes in any state.
pub fn uninstall(request: &UninstallRequest) -> Result<Uninstalled, InstallError> {
    // Every conflist is read and edited before any is written: a refusal changes nothing.
    let mut edited = Vec::new();
    for path in conflists(&request.conf_dir)? {
        let (mut list, mode) = read_conflist(&path)?;
        if conflist::remove(&mut list).map_err(|why| malformed(&path, why))? > 0 {
            edited.push((path, list, mode));
        }
    }
    let mut done = Uninstalled::default();
    for (path, list, mode) in edited {
        write_conflist(&path, &list, mode)?;
        done.conflists.push((path, conflist::chain(&list)));
    }
    let binary = request.bin_dir.join(PLUGIN_TYPE);
    match fs::remove_file(&binary) {
        Ok(()) => done.binary = Some(binary),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("removing", &binary)(e)),
    }
    Ok(done)
}

fn malformed(path: &Path, why: String) -> InstallError {
    InstallError::Malformed {
        path: path.to_path_buf(),
        why,
    }
}

/// The regular files' names in `dir` (symlinks followed: ConfigMap-style links count).
fn file_names(dir: &Path) -> Result<Vec<String>, InstallError> {
    let entries = fs::read_dir(dir).map_err(io_error("listing", dir))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("listing", dir))?;
        let is_file = fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
        if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// The conflist runtimes load from `dir`: its first configuration file in lexical order.
fn first_conflist(dir: &Path) -> Result<PathBuf, InstallError> {
    match conflist::pick(&file_names(dir)?) {
        Pick::Conflist(name) => Ok(dir.join(name)),
        Pick::NotAList { first, conflist } => Err(InstallError::NotAList {
            first: dir.join(first),
            conflist: conflist.map(|c| dir.join(c)),
        }),
        Pick::None => Err(InstallError::NoConflist {
            dir: dir.to_path_buf(),
        }),
    }
}

/// Every `*.conflist` of `dir`, in lexical order (none if the directory is gone).
fn conflists(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = file_names(dir)?
        .into_iter()
        .filter(|n| n.len() > ".conflist".len() && n.ends_with(".conflist"))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// A conflist's JSON and its file mode (kept when it is written back).
fn read_conflist(path: &Path) -> Result<(Value, u32), InstallError> {
    let bytes = files::read_small(path, CONFIG_MAX).map_err(io_error("reading", path))?;
    let mode = fs::metadata(path)
        .map_err(io_error("reading", path))?
        .permissions()
        .mode()
        & 0o7777;
    let list =
        serde_json::from_slice(&bytes).map_err(|e| malformed(path, format!("not JSON ({e})")))?;
    Ok((list, mode))
}

fn write_conflist(path: &Path, list: &Value, mode: u32) -> Result<(), InstallError> {
    let text = conflist::to_text(list);
    files::replace(path, mode, &mut |f| {
        io::Write::write_all(f, text.as_bytes())
    })
    .map_err(io_error("writing", path))
}
