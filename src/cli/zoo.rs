//! `avkd zoo`: the model zoo's entries, as a table, a description or JSON.

use super::output::emit;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ZooWhat {
    /// One line per entry: name, kind, parameters, released?, Hub repo, headline number.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Everything about one entry: architecture, weights, preprocessing, protocol, results.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(what: ZooWhat) -> Result<()> {
    match what {
        ZooWhat::List { json } => {
            let rows: Vec<_> = avkd::models::registry::zoo()?
                .iter()
                .map(avkd::models::zoo_report::ZooRow::new)
                .collect();
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
            } else {
                emit(&avkd::models::zoo_report::list_table(&rows))?;
            }
        }
        ZooWhat::Show { name, json } => {
            let entry = avkd::models::registry::find(&name)?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(entry)?))?;
            } else {
                emit(&avkd::models::zoo_report::show_text(entry)?)?;
            }
        }
    }
    Ok(())
}
