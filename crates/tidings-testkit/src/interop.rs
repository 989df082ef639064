//! The third-party client programs in `tests/interop/` and the runtimes they need.
//!
//! `scripts/install-test-deps.sh` installs the node packages into `tests/interop/node_modules`
//! and the Python packages into the venv `tests/interop/.venv` (or, where venv is missing,
//! `pip install --target tests/interop/.pydeps`). These helpers look exactly there and fail,
//! never skip, when something is missing: a skipped interop test is a test nobody ran.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Finished};

/// What to do when a client's dependencies are missing.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (installs tests/interop/node_modules and tests/interop/.venv)";

/// `tests/interop/` of this workspace.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// A `python` that can `import IMPORTS` (e.g. `"stomp, websockets"`): the venv's, else
/// python3 with `.pydeps` on its path, else python3 as it is. Panics when the import fails.
pub fn python(imports: &str) -> Command {
    let dir = dir();
    let venv = dir.join(".venv/bin/python");
    let make = || {
        if venv.exists() {
            return Command::new(&venv);
        }
        let mut cmd = Command::new("python3");
        let pydeps = dir.join(".pydeps");
        if pydeps.exists() {
            cmd.env("PYTHONPATH", pydeps);
        }
        cmd
    };
    // Probe first, so a missing package is named instead of a program failing oddly.
    match make().args(["-c", &format!("import {imports}")]).output() {
        Ok(out) if out.status.success() => make(),
        Ok(out) => panic!(
            "python cannot `import {imports}`: {INSTALL_HINT}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run python3 ({e}): {INSTALL_HINT}"),
    }
}

/// `node`, with each of `packages` installed in `tests/interop/node_modules`.
pub fn node(packages: &[&str]) -> Command {
    for package in packages {
        let manifest = dir()
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(
            manifest.exists(),
            "node package `{package}` is missing ({} not found): {INSTALL_HINT}",
            manifest.display()
        );
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Command::new("node"),
        Ok(out) => panic!(
            "node --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run node ({e}): install Node.js, then {INSTALL_HINT}"),
    }
}

/// Asserts Debian's chromium is there (the browser scripts drive `/usr/bin/chromium` through
/// `tests/interop/chromium.mjs`).
pub fn chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: {INSTALL_HINT}"
    );
}

/// Runs a client program in `tests/interop/` (its working directory, so relative script
/// names and `node_modules` resolve) to its end within `limit`; see
/// [`Finished::assert_passed`].
pub fn run(mut cmd: Command, what: &str, limit: Duration) -> Finished {
    cmd.current_dir(dir());
    process::run(what, cmd, limit)
}
