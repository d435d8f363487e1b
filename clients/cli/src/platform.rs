//! Admin commands: the audit log, tokens, policy reloads and what the server is.

use std::io::Write;

use ferry_proto::v1 as pb;

use crate::admin;
use crate::commands::Client;
use crate::listing::{self, Listing, ListingArgs};

pub async fn audit(
    client: &mut Client,
    principal: String,
    target: String,
    limit: u32,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let list = client
        .list_audit_events(pb::ListAuditEventsRequest {
            principal,
            target,
            limit,
        })
        .await?
        .into_inner();
    match listing.format {
        Listing::Json => listing::write_json(out, "ListAuditEventsResponse", &list)?,
        Listing::Table => admin::print_audit(out, &list.events)?,
    }
    Ok(())
}

pub async fn create_token(
    client: &mut Client,
    principal: String,
    description: String,
    expires: Option<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let created = client
        .create_token(pb::CreateTokenRequest {
            principal,
            description,
            expires_at: expires.as_deref().map(admin::day_start).transpose()?,
        })
        .await?
        .into_inner();
    let info = created.token.unwrap_or_default();
    eprintln!(
        "created {} for {}; store the token now, it cannot be shown again:",
        info.id, info.principal
    );
    writeln!(out, "{}", created.secret)?;
    Ok(())
}

pub async fn list_tokens(
    client: &mut Client,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let list = client
        .list_tokens(pb::ListTokensRequest {})
        .await?
        .into_inner();
    match listing.format {
        Listing::Json => listing::write_json(out, "ListTokensResponse", &list)?,
        Listing::Table => admin::print_tokens(out, &list.tokens)?,
    }
    Ok(())
}

pub async fn revoke_token(
    client: &mut Client,
    id: String,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let token = client
        .revoke_token(pb::RevokeTokenRequest { id })
        .await?
        .into_inner();
    writeln!(out, "revoked {} ({})", token.id, token.principal)?;
    Ok(())
}

pub async fn server_info(
    client: &mut Client,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let info = client
        .get_server_info(pb::GetServerInfoRequest {})
        .await?
        .into_inner();
    if listing.format == Listing::Json {
        listing::write_json(out, "ServerInfo", &info)?;
        return Ok(());
    }
    writeln!(out, "ferry (CLI)   {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "ferry-server  {}", info.version)?;
    writeln!(out, "API versions  {}", info.api_versions.join(", "))?;
    writeln!(out, "registry      {}", info.registry)?;
    writeln!(out, "warehouse     {}", info.warehouse)?;
    writeln!(out, "sources       {}", info.source_schemes.join(", "))?;
    if info.version != env!("CARGO_PKG_VERSION") {
        eprintln!(
            "note: the CLI and the server are different releases; both speak {}",
            info.api_versions.join(", ")
        );
    }
    Ok(())
}

pub async fn reload_policies(client: &mut Client, out: &mut impl Write) -> anyhow::Result<()> {
    let reloaded = client
        .reload_policies(pb::ReloadPoliciesRequest {})
        .await?
        .into_inner();
    writeln!(
        out,
        "policies reloaded with {} grant(s)",
        reloaded.grants_loaded
    )?;
    Ok(())
}
