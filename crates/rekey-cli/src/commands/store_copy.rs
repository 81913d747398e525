//! `rekey store copy`: from one database into a new, empty one.

use std::process::ExitCode;

use rekey_server::startup::{check_schema, sqlite_file};
use rekey_store::SqlStore;

use crate::cli::{OutputFormat, StoreCopyArgs};

pub(super) async fn run(args: StoreCopyArgs) -> anyhow::Result<ExitCode> {
    if let Some(file) = sqlite_file(&args.from) {
        anyhow::ensure!(
            file.exists(),
            "no database at {} (--from names the database to copy)",
            file.display()
        );
    }
    let source = SqlStore::connect(&args.from, 4).await?;
    // The source must be exactly this release's schema: the copy reads the columns it knows.
    let status = check_schema(&source, false).await?;
    anyhow::ensure!(
        status.newer.is_empty(),
        "the source database has migrations newer than this binary: copy with that release"
    );
    let target = SqlStore::connect(&args.to, 4).await?;
    check_schema(&target, true).await?;
    let counts = source.copy_into(&target).await.map_err(|e| match e {
        rekey_core::error::CoreError::Invalid(why) => anyhow::anyhow!(why),
        e => e.into(),
    })?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "tables": counts }))?
        ),
        OutputFormat::Human => {
            for c in &counts {
                println!("{:<18} {:>10} rows copied", c.table, c.target);
            }
            println!(
                "\nEvery count matches. Point the nodes at the new database with the same \
                 server key (and set public_url)."
            );
        }
    }
    source.close().await;
    target.close().await;
    Ok(ExitCode::SUCCESS)
}
