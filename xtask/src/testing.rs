//! What the workspace's test suites share beside the PKI.

/// Whether the outside program `name` is on `PATH`. A test that needs a missing one prints that it
/// is skipped and returns early; under `CI=true`, where `.ci/run` installs every such program, a
/// missing one is a failure instead.
pub fn require_program(name: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required when CI=true (.ci/run installs it)"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}
