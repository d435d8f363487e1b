//! `ferry grant`, `revoke`, `approve` and `grants`: who may read or publish what.

use std::io::Write;

use ferry_proto::v1 as pb;

use crate::admin;
use crate::args::GrantArgs;
use crate::commands::Client;
use crate::listing::{self, Listing, ListingArgs};

pub async fn grant(
    client: &mut Client,
    args: GrantArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let request = pb::GrantAccessRequest {
        target: args.name,
        grantee: args.to,
        role: if args.role == "publisher" {
            pb::Role::Publisher
        } else {
            pb::Role::Reader
        }
        .into(),
        purpose: args.purpose,
        legal_basis: args
            .legal_basis
            .as_deref()
            .map(admin::legal_basis)
            .transpose()?
            .unwrap_or(pb::LegalBasis::Unspecified)
            .into(),
        expires_at: args.expires.as_deref().map(admin::day_start).transpose()?,
        clear_personal_data: args.clear_personal_data,
    };
    let grant = client.grant_access(request).await?.into_inner();
    admin::describe_grant(out, "granted", &grant)?;
    Ok(())
}

pub async fn revoke(
    client: &mut Client,
    grant_id: String,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let grant = client
        .revoke_access(pb::RevokeAccessRequest { grant_id })
        .await?
        .into_inner();
    admin::describe_grant(out, "revoked", &grant)?;
    Ok(())
}

pub async fn approve(
    client: &mut Client,
    grant_id: String,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let grant = client
        .approve_grant(pb::ApproveGrantRequest { grant_id })
        .await?
        .into_inner();
    admin::describe_grant(out, "approved", &grant)?;
    Ok(())
}

pub async fn grants(
    client: &mut Client,
    name: Option<String>,
    grantee: String,
    all: bool,
    listing: ListingArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let list = client
        .list_grants(pb::ListGrantsRequest {
            target: name.unwrap_or_default(),
            grantee,
            include_inactive: all,
        })
        .await?
        .into_inner();
    match listing.format {
        Listing::Json => listing::write_json(out, "ListGrantsResponse", &list)?,
        Listing::Table => admin::print_grants(out, &list.grants)?,
    }
    Ok(())
}
