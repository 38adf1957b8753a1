//! scripts/install-gitgrant.sh (what the gitgrant action runs) against a release
//! served from 127.0.0.1: a good archive installs and runs, a tampered one or a
//! wrong pin is refused with nothing installed, a missing release names the
//! version and the URL, and a cached archive is verified again before use.

use std::path::{Path, PathBuf};
use std::process::Command;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Out, root};

const VERSION: &str = "1.2.3";
const TARGET: &str = "x86_64-unknown-linux-musl";

/// A release archive holding a fake `gitgrant` that prints its version.
fn archive(dir: &Path, version: &str, target: &str, says: &str) -> Vec<u8> {
    let name = format!("gitgrant-{version}-{target}");
    let stage = dir.join("stage").join(&name);
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("gitgrant"), format!("#!/bin/sh\necho '{says}'\n")).unwrap();
    let out = dir.join(format!("{name}.tar.gz"));
    let st = Command::new("tar").arg("-C").arg(dir.join("stage")).arg("-czf").arg(&out).arg(&name).status().unwrap();
    assert!(st.success());
    std::fs::read(out).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("blob");
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&f).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// Serves `/v{version}/SHA256SUMS` listing `listed` for the archive, and the archive `bytes`.
async fn serve(server: &MockServer, version: &str, target: &str, listed: &str, bytes: Vec<u8>) {
    let name = format!("gitgrant-{version}-{target}.tar.gz");
    let sums = format!("{listed}  {name}\n{}  gitgrant-{version}-other-target.tar.gz\n", "0".repeat(64));
    Mock::given(method("GET")).and(path(format!("/v{version}/SHA256SUMS"))).respond_with(ResponseTemplate::new(200).set_body_string(sums)).mount(server).await;
    Mock::given(method("GET")).and(path(format!("/v{version}/{name}"))).respond_with(ResponseTemplate::new(200).set_body_bytes(bytes)).mount(server).await;
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("toolcache")
    }
    fn bin(&self, target: &str) -> PathBuf {
        self.cache().join("gitgrant").join(VERSION).join(target).join("bin").join("gitgrant")
    }
    fn github_path(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("github_path")).unwrap_or_default()
    }
    /// Runs the script as the action does, with `extra` environment on top.
    async fn install(&self, server: &MockServer, version: &str, extra: &[(&str, &str)]) -> Out {
        let mut cmd = Command::new("sh");
        cmd.arg(root().join("scripts/install-gitgrant.sh"))
            .env_remove("GITGRANT_SHA256")
            .env_remove("GITGRANT_INSTALL_DIR")
            .env_remove("GITGRANT_TARGET")
            .env("GITGRANT_VERSION", version)
            .env("GITGRANT_RELEASE_URL", format!("{}/v{}", server.uri(), version.trim_start_matches('v')))
            .env("RUNNER_TOOL_CACHE", self.cache())
            .env("GITHUB_PATH", self.dir.path().join("github_path"))
            .env("TMPDIR", self.dir.path())
            .env("HOME", self.dir.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

async fn archive_downloads(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.url.path().ends_with(".tar.gz")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_archive_installs_runs_and_is_cached_then_verified_again() {
    let env = Env::new();
    let bytes = archive(env.dir.path(), VERSION, TARGET, "gitgrant 1.2.3 (fake)");
    let server = MockServer::start().await;
    serve(&server, VERSION, TARGET, &sha256(&bytes), bytes.clone()).await;

    let out = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET)]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let bin = env.bin(TARGET);
    assert_eq!(out.stdout.trim(), bin.display().to_string(), "stdout is the installed path: {}", out.all());
    assert!(out.stderr.contains("installed gitgrant 1.2.3 (x86_64-unknown-linux-musl)"), "{}", out.all());
    let ran = Command::new(&bin).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "gitgrant 1.2.3 (fake)\n");
    assert_eq!(env.github_path(), format!("{}\n", bin.parent().unwrap().display()), "the bin directory goes on PATH");
    assert_eq!(archive_downloads(&server).await, 1);

    // Second run: the cached archive, checked against a fresh SHA256SUMS; no download.
    let again = env.install(&server, &format!("v{VERSION}"), &[("GITGRANT_TARGET", TARGET)]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stderr.contains("using the cached gitgrant-1.2.3-x86_64-unknown-linux-musl.tar.gz (checksum verified)"), "{}", again.all());
    assert_eq!(archive_downloads(&server).await, 1, "the cache was used");

    // A cache that was tampered with is not used: the archive is downloaded again.
    let cached = env.cache().join("gitgrant").join(VERSION).join(TARGET).join(format!("gitgrant-{VERSION}-{TARGET}.tar.gz"));
    let evil = archive(&env.dir.path().join("evil"), VERSION, TARGET, "evil");
    std::fs::write(&cached, evil).unwrap();
    let third = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET)]).await;
    assert_eq!(third.code, 0, "{}", third.all());
    assert!(!third.stderr.contains("using the cached"), "{}", third.all());
    assert_eq!(archive_downloads(&server).await, 2);
    assert_eq!(String::from_utf8_lossy(&Command::new(&bin).output().unwrap().stdout), "gitgrant 1.2.3 (fake)\n");

    // The same sha256 as a pin installs too.
    let pin = sha256(&bytes);
    let pinned = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET), ("GITGRANT_SHA256", &pin.to_uppercase())]).await;
    assert_eq!(pinned.code, 0, "{}", pinned.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_archive_is_refused_and_nothing_is_installed() {
    let env = Env::new();
    let good = archive(env.dir.path(), VERSION, TARGET, "gitgrant 1.2.3 (fake)");
    let evil = archive(&env.dir.path().join("evil"), VERSION, TARGET, "evil");
    let server = MockServer::start().await;
    serve(&server, VERSION, TARGET, &sha256(&good), evil.clone()).await;

    let out = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET)]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let message = format!(
        "install-gitgrant: error: refusing gitgrant 1.2.3: gitgrant-1.2.3-x86_64-unknown-linux-musl.tar.gz has SHA-256 {}, but SHA256SUMS says {} (a tampered or truncated download); nothing was installed\n",
        sha256(&evil),
        sha256(&good)
    );
    assert!(out.stderr.ends_with(&message), "{}", out.all());
    assert_eq!(out.stdout, "");
    assert!(!env.bin(TARGET).exists(), "a refused archive must not be installed");
    assert!(!env.bin(TARGET).parent().unwrap().exists());
    assert_eq!(env.github_path(), "", "nothing goes on PATH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_that_disagrees_with_sha256sums_is_refused() {
    let env = Env::new();
    let bytes = archive(env.dir.path(), VERSION, TARGET, "gitgrant 1.2.3 (fake)");
    let server = MockServer::start().await;
    let listed = sha256(&bytes);
    serve(&server, VERSION, TARGET, &listed, bytes).await;
    let pin = "ab".repeat(32);

    let out = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET), ("GITGRANT_SHA256", &pin)]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "refusing gitgrant 1.2.3: SHA256SUMS says {listed} for gitgrant-1.2.3-x86_64-unknown-linux-musl.tar.gz, but the pinned sha256 is {pin}"
        )),
        "{}",
        out.all()
    );
    assert_eq!(archive_downloads(&server).await, 0, "refused before downloading");
    assert!(!env.bin(TARGET).exists());

    let bad = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET), ("GITGRANT_SHA256", "1234")]).await;
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("GITGRANT_SHA256 is not a SHA-256 in hex (64 digits)"), "{}", bad.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_release_names_the_version_and_the_url() {
    let env = Env::new();
    let server = MockServer::start().await;
    let out = env.install(&server, "9.9.9", &[("GITGRANT_TARGET", TARGET)]).await;
    assert_eq!(out.code, 2, "{}", out.all());
    let url = format!("{}/v9.9.9/SHA256SUMS", server.uri());
    assert_eq!(
        out.stderr,
        format!("install-gitgrant: error: gitgrant 9.9.9 has no SHA256SUMS at {url} (HTTP 404): is there a release v9.9.9 with an archive for {TARGET}?\n"),
        "{}",
        out.all()
    );
    assert!(!env.cache().join("gitgrant").exists(), "nothing installed");

    // A release without an archive for this target says so.
    serve(&server, VERSION, "aarch64-apple-darwin", &"1".repeat(64), Vec::new()).await;
    let other = env.install(&server, VERSION, &[("GITGRANT_TARGET", TARGET)]).await;
    assert_eq!(other.code, 2, "{}", other.all());
    assert!(other.stderr.contains("lists no gitgrant-1.2.3-x86_64-unknown-linux-musl.tar.gz (no release for x86_64-unknown-linux-musl?)"), "{}", other.all());

    let unset = env.install(&server, "", &[]).await;
    assert_eq!(unset.code, 2, "{}", unset.all());
    assert!(unset.stderr.contains("GITGRANT_VERSION is not set"), "{}", unset.all());
}

/// The archive the script picks on this machine (x86_64/aarch64, Linux/macOS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_is_detected_from_the_machine() {
    let target = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", arch @ ("x86_64" | "aarch64")) => format!("{arch}-unknown-linux-musl"),
        ("macos", arch @ ("x86_64" | "aarch64")) => format!("{arch}-apple-darwin"),
        _ => return, // no release for this machine: nothing to detect
    };
    let env = Env::new();
    let bytes = archive(env.dir.path(), VERSION, &target, "gitgrant 1.2.3 (fake)");
    let server = MockServer::start().await;
    serve(&server, VERSION, &target, &sha256(&bytes), bytes).await;
    let out = env.install(&server, VERSION, &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(env.bin(&target).is_file(), "{}", out.all());
}
