//! Builds the BPF programs in `bpf-prog/` for `bpfel-unknown-none` and leaves the object in
//! `OUT_DIR` for `include_bytes!`.
//!
//! rustc's BPF target emits bitcode, not ELF, so the pipeline is: nightly `cargo rustc
//! -Z build-std=core --emit=llvm-bc`, then the nightly toolchain's own `llc` (same LLVM).

use object::{Object, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLCHAIN: &str = "nightly";

fn main() {
    let root = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env("OUT_DIR"));
    let crate_dir = root.join("bpf-prog");
    // A path that does not exist makes cargo rerun this script on every build: name only those that do.
    let inputs = [
        "bpf-prog/src",
        "bpf-prog/abi",
        "bpf-prog/Cargo.toml",
        "bpf-prog/Cargo.lock",
    ];
    for path in inputs
        .map(|p| root.join(p))
        .into_iter()
        .chain(git_inputs(&root))
    {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    require_components();
    let bitcode = out.join("dnsredir-bpf.bc");
    compile_bitcode(&crate_dir, &out.join("bpf-target"), &bitcode);
    let object = out.join("dnsredir-bpf.o");
    run(Command::new(llc_path())
        .args(["-march=bpfel", "-mcpu=v3"])
        .args(["-filetype=obj", "-O2", "-o"])
        .arg(&object)
        .arg(&bitcode));
    check_no_undefined_symbols(&object);
    println!(
        "cargo:rustc-env=DNSREDIR_GIT_REVISION={}",
        git_revision(&root)
    );
}

/// The git files that change with the revision or the dirty state: HEAD, the index and the branch
/// HEAD names. Asked of git, because in a worktree `.git` is a file and they live elsewhere;
/// none outside a git checkout (a tarball).
fn git_inputs(root: &Path) -> Vec<PathBuf> {
    let dir = |args: &[&str]| git(root, args).map(|d| root.join(d));
    let Some(git_dir) = dir(&["rev-parse", "--git-dir"]) else {
        return Vec::new();
    };
    let mut paths = vec![git_dir.join("HEAD"), git_dir.join("index")];
    if let (Some(common), Some(branch)) = (
        dir(&["rev-parse", "--git-common-dir"]),
        git(root, &["symbolic-ref", "-q", "HEAD"]),
    ) {
        paths.push(common.join(branch));
    }
    paths
}

/// The commit this binary was built from, "unknown" outside a git checkout.
fn git_revision(root: &Path) -> String {
    let Some(rev) = git(root, &["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_string();
    };
    match git(root, &["status", "--porcelain", "--untracked-files=no"]) {
        Some(_) => format!("{rev}-dirty"),
        None => rev,
    }
}

/// What `git -C root ARGS` prints, trimmed; None when git fails or prints nothing.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| fail(&format!("{name} is not set: run the build through cargo")))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    // The outer (stable) cargo's settings must not leak into the nested nightly build.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTUP_TOOLCHAIN"
                    | "MAKEFLAGS"
                    | "MFLAGS"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn require_components() {
    let fix = format!("rustup toolchain install {TOOLCHAIN} && rustup component add rust-src llvm-tools --toolchain {TOOLCHAIN}");
    let output = rustup()
        .args(["component", "list", "--installed", "--toolchain", TOOLCHAIN])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run rustup ({e}): the BPF programs need rustup's {TOOLCHAIN} toolchain; install rustup, then run: {fix}")));
    if !output.status.success() {
        fail(&format!("the {TOOLCHAIN} toolchain is missing; run: {fix}"));
    }
    let installed = String::from_utf8_lossy(&output.stdout);
    for component in ["rust-src", "llvm-tools"] {
        if !installed.lines().any(|line| line.starts_with(component)) {
            fail(&format!("the {TOOLCHAIN} component {component} is missing; run: rustup component add rust-src llvm-tools --toolchain {TOOLCHAIN}"));
        }
    }
}

fn compile_bitcode(crate_dir: &Path, target_dir: &Path, bitcode: &Path) {
    let mut emit = std::ffi::OsString::from("--emit=llvm-bc=");
    emit.push(bitcode);
    run(rustup()
        .current_dir(crate_dir)
        .args(["run", TOOLCHAIN, "cargo", "rustc", "-Z", "build-std=core"])
        .args([
            "--target",
            "bpfel-unknown-none",
            "--release",
            "--target-dir",
        ])
        .arg(target_dir)
        .args(["--", "-Z", "function-sections=no"])
        .arg(emit));
}

fn llc_path() -> PathBuf {
    let output = rustup()
        .args(["run", TOOLCHAIN, "rustc", "--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot ask the {TOOLCHAIN} rustc for its sysroot: {e}"
            ))
        });
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let host = env("HOST");
    let llc = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin/llc");
    if !llc.exists() {
        fail(&format!(
            "{} not found; run: rustup component add llvm-tools --toolchain {TOOLCHAIN}",
            llc.display()
        ));
    }
    llc
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {cmd:?}: {e}")));
    if !status.success() {
        fail(&format!("{cmd:?} failed with {status}"));
    }
}

/// A call left to a Rust panic path (bounds check, unwrap) shows up as an undefined symbol,
/// which the kernel cannot resolve: refuse such an object here instead of at load time.
fn check_no_undefined_symbols(object: &Path) {
    let bytes = std::fs::read(object)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", object.display())));
    let file = object::File::parse(&*bytes)
        .unwrap_or_else(|e| fail(&format!("{} is not an ELF object: {e}", object.display())));
    let undefined: Vec<String> = file
        .symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        .map(|s| s.name().unwrap_or("?").to_string())
        .collect();
    if !undefined.is_empty() {
        fail(&format!(
            "the BPF object has undefined symbols {undefined:?}: some code in bpf-prog can panic or calls a function the kernel cannot link; make it panic-free"
        ));
    }
}
