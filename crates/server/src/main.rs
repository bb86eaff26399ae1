//! The broker binary: command line, configuration, logging and signals; wiring only.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("the broker is not implemented yet")
}
