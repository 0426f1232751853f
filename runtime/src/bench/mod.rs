//! Placeholder for `ohm bench`; the real module replaces this file.

/// Options of `ohm bench sql`.
#[derive(Debug, Clone)]
pub struct SqlBenchOptions {
    /// Rows loaded before timing starts.
    pub rows: u64,
    /// How long each measured phase runs.
    pub seconds: u64,
}

/// Runs the SQL engine benchmark.
pub fn run_sql(_opts: &SqlBenchOptions) -> anyhow::Result<()> {
    anyhow::bail!("`ohm bench sql` is not built yet")
}
