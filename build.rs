//! Embeds the git commit the binary is built from (`engine version`, `engine info`) as
//! ENGINE_GIT_COMMIT: from the environment when set (a build from a tarball or a package), else
//! from `git`, else "unknown".
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ENGINE_GIT_COMMIT");
    let commit = std::env::var("ENGINE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself (branch switches) and the branch it points to. Only
    // files that exist: cargo counts a missing one as changed and would rerun this script (and
    // recompile the whole crate) on every build; a worktree or a repository whose refs were never
    // packed has no packed-refs.
    let rerun_if_changed = |path: String| {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    };
    for file in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            rerun_if_changed(path);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            rerun_if_changed(path);
        }
    }
    println!("cargo:rustc-env=ENGINE_GIT_COMMIT={commit}");
}
