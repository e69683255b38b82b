//! Operator commands over the admin API: `tenant`, `key`, `number`.

use super::client::{AdminAuth, Client, Server, segment};
use clap::{Args, Subcommand};
use serde_json::json;

#[derive(Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    command: TenantCommand,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    auth: AdminAuth,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its id and first API key (shown once).
    Create { name: String },
    /// List tenants.
    List,
    /// Disable a tenant: its keys are refused and its plugins stop.
    Disable { id: String },
    /// Enable a disabled tenant.
    Enable { id: String },
}

pub async fn tenant(args: TenantArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server, args.auth.token()?);
    match args.command {
        TenantCommand::Create { name } => {
            let t = client.post("/admin/v1/tenants", json!({ "name": name })).await?;
            println!("tenant {}", t["id"].as_str().unwrap_or(""));
            println!("api key {} ({})", t["api_key"].as_str().unwrap_or(""), t["api_key_id"].as_str().unwrap_or(""));
        }
        TenantCommand::List => {
            let list = client.get("/admin/v1/tenants").await?;
            println!("{:<28} {:<9} {:>7}  {:<24} NUMBERS", "ID", "STATUS", "PLUGINS", "NAME");
            for t in list["data"].as_array().into_iter().flatten() {
                let numbers: Vec<&str> =
                    t["numbers"].as_array().into_iter().flatten().filter_map(|n| n.as_str()).collect();
                println!(
                    "{:<28} {:<9} {:>7}  {:<24} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["status"].as_str().unwrap_or(""),
                    t["plugins"],
                    t["name"].as_str().unwrap_or(""),
                    numbers.join(", ")
                );
            }
        }
        TenantCommand::Disable { id } => {
            client.post(&format!("/admin/v1/tenants/{}/disable", segment(&id)), json!({})).await?;
            println!("tenant {id} disabled");
        }
        TenantCommand::Enable { id } => {
            client.post(&format!("/admin/v1/tenants/{}/enable", segment(&id)), json!({})).await?;
            println!("tenant {id} enabled");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    auth: AdminAuth,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Issue an API key for a tenant; prints it (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        /// A test key (messages go to the sandbox, nothing is charged)
        #[arg(long)]
        test: bool,
        #[arg(long)]
        label: Option<String>,
        /// A Twilio-style credential: an account SID and auth token for the
        /// Twilio-compatible API (`/2010-04-01/...`)
        #[arg(long)]
        twilio: bool,
    },
    /// Revoke a tenant's API key by its id.
    Revoke {
        #[arg(long)]
        tenant: String,
        key_id: String,
    },
}

pub async fn key(args: KeyArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server, args.auth.token()?);
    match args.command {
        KeyCommand::Create { tenant, test, label, twilio } => {
            let body = json!({ "mode": if test { "test" } else { "live" }, "label": label, "twilio": twilio });
            let k = client.post(&format!("/admin/v1/tenants/{}/keys", segment(&tenant)), body).await?;
            let (id, secret) = (k["id"].as_str().unwrap_or(""), k["key"].as_str().unwrap_or(""));
            match k["account_sid"].as_str() {
                Some(sid) => {
                    println!("{id} {secret}");
                    println!("account SID {sid}");
                    println!("auth token  {secret} (shown once)");
                }
                None => println!("{id} {secret}"),
            }
        }
        KeyCommand::Revoke { tenant, key_id } => {
            client.delete(&format!("/admin/v1/tenants/{}/keys/{}", segment(&tenant), segment(&key_id))).await?;
            println!("key {key_id} revoked");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct NumberArgs {
    #[command(subcommand)]
    command: NumberCommand,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    auth: AdminAuth,
}

#[derive(Subcommand)]
enum NumberCommand {
    /// Assign a number to a tenant.
    Add {
        #[arg(long)]
        tenant: String,
        /// E.164
        number: String,
        /// The connector that sends from and receives on it
        #[arg(long, default_value = "simulator")]
        connector: String,
        /// Make it the tenant's default sender
        #[arg(long)]
        default: bool,
    },
}

pub async fn number(args: NumberArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server, args.auth.token()?);
    match args.command {
        NumberCommand::Add { tenant, number, connector, default } => {
            let body = json!({ "number": number, "connector": connector, "default": default });
            let n = client.post(&format!("/admin/v1/tenants/{}/numbers", segment(&tenant)), body).await?;
            println!("number {} added to {tenant} via {}", n["number"].as_str().unwrap_or(""), connector);
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct SenderIdArgs {
    #[command(subcommand)]
    command: SenderIdCommand,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    auth: AdminAuth,
}

#[derive(Subcommand)]
enum SenderIdCommand {
    /// Assign a sender ID to a tenant, approved at once.
    Add {
        #[arg(long)]
        tenant: String,
        sender_id: String,
    },
    /// Approve a sender ID the tenant asked for.
    Approve {
        #[arg(long)]
        tenant: String,
        sender_id: String,
    },
    /// Reject a sender ID the tenant asked for.
    Reject {
        #[arg(long)]
        tenant: String,
        sender_id: String,
    },
}

pub async fn sender_id(args: SenderIdArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server, args.auth.token()?);
    match args.command {
        SenderIdCommand::Add { tenant, sender_id } => {
            let path = format!("/admin/v1/tenants/{}/sender-ids", segment(&tenant));
            client.post(&path, json!({ "sender_id": sender_id })).await?;
            println!("sender ID {sender_id:?} assigned to {tenant}");
        }
        SenderIdCommand::Approve { tenant, sender_id } => decide(&client, &tenant, &sender_id, "approve").await?,
        SenderIdCommand::Reject { tenant, sender_id } => decide(&client, &tenant, &sender_id, "reject").await?,
    }
    Ok(())
}

async fn decide(client: &Client, tenant: &str, sender_id: &str, verb: &str) -> anyhow::Result<()> {
    let path = format!("/admin/v1/tenants/{}/sender-ids/{}/{verb}", segment(tenant), segment(sender_id));
    client.post(&path, json!({})).await?;
    println!("sender ID {sender_id:?} of {tenant}: {verb}d");
    Ok(())
}
