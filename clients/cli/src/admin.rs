//! The governance commands: grants, approvals, tokens and the audit log.

use std::io::Write;

use anyhow::bail;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ferry_proto::v1 as pb;

pub fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Midnight UTC of a YYYY-MM-DD day.
pub fn day_start(text: &str) -> anyhow::Result<prost_types::Timestamp> {
    let Ok(day) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") else {
        bail!("{text:?} is not a date (YYYY-MM-DD)");
    };
    let t = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

pub fn legal_basis(text: &str) -> anyhow::Result<pb::LegalBasis> {
    match pb::LegalBasis::from_str_name(&format!(
        "LEGAL_BASIS_{}",
        text.trim().to_ascii_uppercase().replace('-', "_")
    )) {
        Some(basis) if basis != pb::LegalBasis::Unspecified => Ok(basis),
        _ => bail!(
            "{text:?} is not a legal basis: consent, contract, legal_obligation, vital_interests, \
             public_task or legitimate_interests"
        ),
    }
}

fn status_name(status: i32) -> &'static str {
    match pb::GrantStatus::try_from(status) {
        Ok(pb::GrantStatus::Active) => "active",
        Ok(pb::GrantStatus::PendingApproval) => "pending approval",
        Ok(pb::GrantStatus::Revoked) => "revoked",
        Ok(pb::GrantStatus::Expired) => "expired",
        _ => "unknown",
    }
}

fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Publisher) => "publisher",
        _ => "reader",
    }
}

pub fn describe_grant(out: &mut impl Write, verb: &str, grant: &pb::Grant) -> anyhow::Result<()> {
    writeln!(
        out,
        "{verb} {}: {} {} on {} ({}{})",
        grant.id,
        grant.grantee,
        role_name(grant.role),
        grant.target,
        status_name(grant.status),
        if grant.clear_personal_data {
            ", personal data in clear"
        } else {
            ""
        }
    )?;
    if grant.status == pb::GrantStatus::PendingApproval as i32 {
        writeln!(
            out,
            "a privacy officer must approve it: ferry approve {}",
            grant.id
        )?;
    }
    Ok(())
}

pub fn print_grants(out: &mut impl Write, grants: &[pb::Grant]) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id",
        "target",
        "grantee",
        "role",
        "status",
        "clear",
        "purpose",
        "expires",
        "granted by",
        "approved by",
    ]);
    for g in grants {
        table.add_row([
            g.id.clone(),
            g.target.clone(),
            g.grantee.clone(),
            role_name(g.role).into(),
            status_name(g.status).into(),
            if g.clear_personal_data { "yes" } else { "no" }.into(),
            g.purpose.clone(),
            time(&g.expires_at),
            g.granted_by.clone(),
            g.approved_by.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}

pub fn print_tokens(out: &mut impl Write, tokens: &[pb::TokenInfo]) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id",
        "principal",
        "description",
        "created",
        "created by",
        "expires",
        "revoked",
    ]);
    for t in tokens {
        table.add_row([
            t.id.clone(),
            t.principal.clone(),
            t.description.clone(),
            time(&t.created_at),
            t.created_by.clone(),
            time(&t.expires_at),
            time(&t.revoked_at),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}

pub fn print_audit(out: &mut impl Write, events: &[pb::AuditEvent]) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "at",
        "principal",
        "action",
        "target",
        "outcome",
        "detail",
        "request",
    ]);
    for e in events {
        table.add_row([
            time(&e.at),
            e.principal.clone(),
            e.action.clone(),
            e.target.clone(),
            e.outcome.clone(),
            e.detail.clone(),
            e.request_id.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
