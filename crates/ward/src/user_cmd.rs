//! `ward user`: local users, for DIMSE user identity negotiation (and the web front door).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ward_index::{Index, UserRecord};
use ward_types::{Role, UserName};

use crate::data_dir::DataDir;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user. Without --password-stdin a password is generated and printed once.
    Add {
        name: UserName,
        /// administrator, clinician, modality or auditor.
        #[arg(long)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// List users and their roles.
    List {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// Remove a user.
    Remove {
        name: UserName,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
}

pub async fn run(command: UserCommand) -> Result<ExitCode> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            data,
        } => {
            let index = DataDir::open(&data)?.index().await?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                let password = line.trim_end_matches(['\n', '\r']).to_owned();
                if password.chars().count() < 12 {
                    bail!("the password must have at least 12 characters");
                }
                (password, false)
            } else {
                (ward_auth::identity::generate_password()?, true)
            };
            add_user(&*index, &name, role, &password).await?;
            println!("added {name} ({role})");
            if generated {
                println!("password (shown once, store it now): {password}");
            }
        }
        UserCommand::List { data } => {
            let index = DataDir::open(&data)?.index().await?;
            println!("{:<32}  ROLE", "USER");
            for u in index.user_list().await? {
                println!("{:<32}  {}", u.name.as_str(), u.role);
            }
        }
        UserCommand::Remove { name, data } => {
            let index = DataDir::open(&data)?.index().await?;
            if !index.user_remove(&name).await? {
                bail!("no user {name}");
            }
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stores a user with an Argon2id hash of the password.
pub async fn add_user(
    index: &dyn Index,
    name: &UserName,
    role: Role,
    password: &str,
) -> Result<()> {
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || ward_auth::identity::hash_password(&password))
        .await??;
    let created_at_unix_ms = ward_audit::now_unix_ms();
    index
        .user_add(&UserRecord {
            name: name.clone(),
            role,
            password_hash: hash,
            created_at_unix_ms,
        })
        .await
        .with_context(|| format!("cannot add {name}"))
}
