//! `dms objects …`: a thin client of the origin's `/v1/objects` API.

use clap::{Args, Subcommand};
use reqwest::Method;

use super::publish::{Client, ServerArgs};

/// Object subcommands.
#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// List objects (JSON).
    List(ListArgs),
    /// Show one object (JSON).
    Show(IdArgs),
    /// The versions of a name, oldest first, and its latest active one.
    History(NameArgs),
    /// Change an object's state, priority or metadata.
    Patch(PatchArgs),
    /// Delete an object.
    Delete(IdArgs),
}

/// Arguments of `dms objects list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this name.
    #[arg(long)]
    name: Option<String>,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only this state (active, deprecated, withdrawn).
    #[arg(long)]
    state: Option<String>,
    /// Skip this many.
    #[arg(long)]
    offset: Option<usize>,
    /// At most this many.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    server: ServerArgs,
}

/// An object id and the server.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Object id.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// A name and the server.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Object name.
    name: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `dms objects patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Object id.
    id: String,
    /// New state: active, deprecated, withdrawn.
    #[arg(long)]
    state: Option<String>,
    /// New priority: critical, high, normal, low.
    #[arg(long)]
    priority: Option<String>,
    /// Replace the metadata with these KEY=VALUE pairs (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs a `dms objects` subcommand; prints the JSON answer.
pub fn run(command: ObjectsCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let value = runtime.block_on(async {
        match command {
            ObjectsCommand::List(a) => {
                let client = Client::new(&a.server)?;
                let mut query: Vec<(&str, String)> = Vec::new();
                for (k, v) in [("name", a.name), ("kind", a.kind), ("state", a.state)] {
                    if let Some(v) = v {
                        query.push((k, v));
                    }
                }
                if let Some(o) = a.offset {
                    query.push(("offset", o.to_string()));
                }
                if let Some(l) = a.limit {
                    query.push(("limit", l.to_string()));
                }
                client
                    .send(client.request(Method::GET, "/v1/objects").query(&query))
                    .await
            }
            ObjectsCommand::Show(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(client.request(Method::GET, &format!("/v1/objects/{}", a.id)))
                    .await
            }
            ObjectsCommand::History(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(client.request(Method::GET, &format!("/v1/names/{}", a.name)))
                    .await
            }
            ObjectsCommand::Patch(a) => {
                let client = Client::new(&a.server)?;
                let mut body = serde_json::Map::new();
                if let Some(s) = a.state {
                    body.insert("state".into(), s.into());
                }
                if let Some(p) = a.priority {
                    body.insert("priority".into(), p.into());
                }
                if !a.metadata.is_empty() {
                    let mut meta = serde_json::Map::new();
                    for pair in &a.metadata {
                        let (k, v) = pair.split_once('=').ok_or_else(|| {
                            anyhow::anyhow!("--meta wants KEY=VALUE, got {pair:?}")
                        })?;
                        meta.insert(k.into(), v.into());
                    }
                    body.insert("metadata".into(), meta.into());
                }
                client
                    .send(
                        client
                            .request(Method::PATCH, &format!("/v1/objects/{}", a.id))
                            .json(&body),
                    )
                    .await
            }
            ObjectsCommand::Delete(a) => {
                let client = Client::new(&a.server)?;
                client
                    .send(client.request(Method::DELETE, &format!("/v1/objects/{}", a.id)))
                    .await
                    .map(|_| serde_json::json!({ "deleted": a.id }))
            }
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
