//! `ward token`: API tokens for machines on the web front door.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ward_index::{ApiTokenRecord, Index};
use ward_types::{Role, UserName};

use crate::data_dir::DataDir;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, alone on standard output, once. Only its hash is kept.
    Create {
        /// A name for the token (who or what uses it), to list and revoke it by.
        name: UserName,
        /// administrator, clinician, modality or auditor.
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 90d, 12h, 30m; without it the token lasts until revoked.
        #[arg(long)]
        expires: Option<String>,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// List tokens: name, role, expiry, revocation.
    List {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// Revoke a token; it stops working at once.
    Revoke {
        name: UserName,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
}

pub async fn run(command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create {
            name,
            role,
            expires,
            data,
        } => {
            let lifetime_ms = expires.as_deref().map(parse_lifetime_ms).transpose()?;
            let index = DataDir::open(&data)?.index().await?;
            let (token, token_hash) = ward_web::new_api_token();
            let now = ward_audit::now_unix_ms();
            index
                .token_add(&ApiTokenRecord {
                    name: name.clone(),
                    role,
                    token_hash,
                    created_at_unix_ms: now,
                    expires_at_unix_ms: lifetime_ms.map(|ms| now.saturating_add(ms)),
                    revoked_at_unix_ms: None,
                })
                .await
                .with_context(|| format!("cannot create token {name}"))?;
            println!("{token}");
        }
        TokenCommand::List { data } => {
            let index = DataDir::open(&data)?.index().await?;
            println!("{:<32}  {:<13}  {:<10}  STATE", "TOKEN", "ROLE", "EXPIRES");
            let now = ward_audit::now_unix_ms();
            for t in index.token_list().await? {
                let state = match (t.revoked_at_unix_ms, t.expires_at_unix_ms) {
                    (Some(_), _) => "revoked",
                    (None, Some(exp)) if exp <= now => "expired",
                    _ => "active",
                };
                let expires = t.expires_at_unix_ms.map_or("never".to_owned(), |exp| {
                    format!("in {}h", (exp - now).max(0) / 3_600_000)
                });
                println!(
                    "{:<32}  {:<13}  {:<10}  {state}",
                    t.name.as_str(),
                    t.role.name(),
                    expires
                );
            }
        }
        TokenCommand::Revoke { name, data } => {
            let index = DataDir::open(&data)?.index().await?;
            if !index.token_revoke(&name, ward_audit::now_unix_ms()).await? {
                bail!("no active token {name}");
            }
            println!("revoked {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `90d`, `12h`, `30m` or `45s`, in milliseconds.
fn parse_lifetime_ms(text: &str) -> Result<i64> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .with_context(|| format!("invalid lifetime {text:?}: use e.g. 90d, 12h, 30m"))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1000,
        _ => bail!("invalid lifetime {text:?}: use e.g. 90d, 12h, 30m"),
    };
    if n <= 0 {
        bail!("the lifetime must be positive");
    }
    Ok(n.saturating_mul(unit_ms))
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime_ms;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime_ms("90d").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_lifetime_ms("30m").unwrap(), 1_800_000);
        assert!(parse_lifetime_ms("0h").is_err());
        assert!(parse_lifetime_ms("12").is_err());
        assert!(parse_lifetime_ms("").is_err());
        assert!(parse_lifetime_ms("h").is_err());
    }
}
