//! `cargo xtask`: project automation. Run `cargo xtask help` for the list of tasks.

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        None | Some("help") | Some("--help") => {
            println!("usage: cargo xtask <task>\n\ntasks:\n  help    this text");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`; run `cargo xtask help`"),
    }
}
