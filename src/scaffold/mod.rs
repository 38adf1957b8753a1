//! Scaffolding: the files `init` writes and the repository `demo` builds.
//!
//! Groups, identities, the risk model, templates, workflows and schemas are
//! the example access repository at the root of this crate, embedded as they
//! are (one copy, tested by the crate's own checks). Only resources and roles
//! differ: the scaffold's run on the `local` provider, so a fresh repository
//! goes through the whole lifecycle before any cloud is connected.
//!
//! The workflows are the scaffold's own (`files/workflows/`), not this
//! repository's (which build the judge from source): they install the released
//! binary with the gitgrant action, pinned to the commit this binary was built
//! from (a release binary is built from its tag's commit, so the pin names that
//! release). `@@GITGRANT_ACTION@@` and `@@GITGRANT_VERSION@@` are filled in by
//! [`File::contents`].

pub mod draft;
pub mod overlay;

use std::path::{Path, PathBuf};

/// One file of the scaffold: its repository-relative path and text.
#[derive(Debug, Clone, Copy)]
pub struct File {
    pub path: &'static str,
    pub text: &'static str,
}

impl File {
    /// The text `init` writes: the workflows get the action pin and version.
    pub fn contents(&self) -> std::borrow::Cow<'static, str> {
        if self.text.contains("@@GITGRANT_") {
            std::borrow::Cow::Owned(self.text.replace("@@GITGRANT_ACTION@@", &action_ref()).replace("@@GITGRANT_VERSION@@", env!("CARGO_PKG_VERSION")))
        } else {
            std::borrow::Cow::Borrowed(self.text)
        }
    }
}

/// The gitgrant action as the scaffold's workflows use it: the releases'
/// repository (`GITGRANT_RELEASE_REPOSITORY` at build time, else
/// `gitgrant/gitgrant`) at the full commit this binary was built from, the tag in
/// a comment. A build that knows no commit (a source tarball without git or
/// `.cargo_vcs_info.json`) falls back to the tag and says to pin it.
pub fn action_ref() -> String {
    let repo = option_env!("GITGRANT_RELEASE_REPOSITORY").filter(|r| !r.is_empty()).unwrap_or("gitgrant/gitgrant");
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("GITGRANT_COMMIT");
    if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{repo}@{commit} # v{version}")
    } else {
        format!("{repo}@v{version} # pin this to the full commit SHA of release v{version}")
    }
}

/// Every file `gitgrant init` writes, in the order it lists them.
pub const FILES: &[File] = &[
    File { path: "policies/groups.yaml", text: include_str!("../../policies/groups.yaml") },
    File { path: "policies/identities.yaml", text: include_str!("../../policies/identities.yaml") },
    File { path: "policies/resources.yaml", text: include_str!("files/policies/resources.yaml") },
    File { path: "policies/roles.yaml", text: include_str!("files/policies/roles.yaml") },
    File { path: "policies/risk.yaml", text: include_str!("../../policies/risk.yaml") },
    File { path: "requests/.gitkeep", text: "" },
    File { path: "templates/pr-comment.md.j2", text: include_str!("../../templates/pr-comment.md.j2") },
    File { path: "templates/job-summary.md.j2", text: include_str!("../../templates/job-summary.md.j2") },
    File { path: "templates/aws/readonly.json.j2", text: include_str!("../../templates/aws/readonly.json.j2") },
    File { path: ".github/workflows/gitgrant-check.yml", text: include_str!("files/workflows/gitgrant-check.yml") },
    File { path: ".github/workflows/gitgrant-reconcile.yml", text: include_str!("files/workflows/gitgrant-reconcile.yml") },
    File { path: ".github/CODEOWNERS", text: include_str!("files/CODEOWNERS") },
    File { path: "docs/schema/request.json", text: include_str!("../../docs/schema/request.json") },
    File { path: "docs/schema/policy.json", text: include_str!("../../docs/schema/policy.json") },
    File { path: "README.md", text: include_str!("files/README.md") },
    File { path: ".gitignore", text: include_str!("files/gitignore") },
];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exist{} in {}: {}", if .1.len() == 1 { "this file" } else { "these files" }, if .1.len() == 1 { "s" } else { "" }, .0.display(), .1.join(", "))]
    Exists(PathBuf, Vec<String>),
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("cannot create a git repository in {0}: {1}")]
    Git(PathBuf, git2::Error),
}

/// What `init` did.
#[derive(Debug)]
pub struct InitReport {
    pub written: Vec<&'static str>,
    /// Files that existed and were replaced (`--force`).
    pub replaced: Vec<&'static str>,
    /// A git repository was created (the directory was not in one).
    pub git_initialised: bool,
}

/// Files of the scaffold that already exist under `dir` (links count too).
pub fn existing(dir: &Path) -> Vec<&'static str> {
    FILES.iter().filter(|f| std::fs::symlink_metadata(dir.join(f.path)).is_ok()).map(|f| f.path).collect()
}

/// Writes the scaffold into `dir` (created if missing). Without `force`, any
/// existing file stops it before anything is written: never half-applied.
pub fn init(dir: &Path, force: bool) -> Result<InitReport, InitError> {
    let replaced = existing(dir);
    if !replaced.is_empty() && !force {
        return Err(InitError::Exists(dir.to_path_buf(), replaced.iter().map(|s| s.to_string()).collect()));
    }
    for f in FILES {
        let path = dir.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| InitError::Io(parent.to_path_buf(), e))?;
        }
        // A link in place of a scaffold file is replaced, never written through.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&path).map_err(|e| InitError::Io(path.clone(), e))?;
        }
        std::fs::write(&path, f.contents().as_bytes()).map_err(|e| InitError::Io(path.clone(), e))?;
    }
    let git_initialised = match git2::Repository::discover(dir) {
        Ok(_) => false,
        Err(_) => {
            let mut opts = git2::RepositoryInitOptions::new();
            opts.initial_head("main");
            git2::Repository::init_opts(dir, &opts).map_err(|e| InitError::Git(dir.to_path_buf(), e))?;
            true
        }
    };
    Ok(InitReport { written: FILES.iter().map(|f| f.path).collect(), replaced, git_initialised })
}
