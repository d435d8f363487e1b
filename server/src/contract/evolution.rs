//! Schema evolution: how a re-registered contract relates to the one in force.
//!
//! Compatible changes (a new nullable column at the end, new views, documentation, retention,
//! rejection limits) bump the minor version. Anything that could break a reader or a publisher
//! (dropping, retyping or tightening a column, changing a view's rows or columns, changing the
//! partitioning) needs the author to declare a new major version.

use std::fmt;

use super::Contract;
use crate::error::FerryError;

/// `major.minor`, assigned by the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContractVersion {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What registering a contract does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evolution {
    /// Identical to the version in force: nothing to do.
    Unchanged(ContractVersion),
    /// A new version; `changes` describes each difference in words.
    NewVersion {
        version: ContractVersion,
        changes: Vec<String>,
    },
}

/// Decides the version of `proposed` given the contract in force, or refuses the change.
pub fn plan_evolution(
    current: Option<(&Contract, ContractVersion)>,
    proposed: &Contract,
) -> Result<Evolution, FerryError> {
    let Some((current, version)) = current else {
        return Ok(Evolution::NewVersion {
            version: ContractVersion {
                major: proposed.major_version,
                minor: 0,
            },
            changes: vec!["first registration".into()],
        });
    };
    if current == proposed {
        return Ok(Evolution::Unchanged(version));
    }
    if proposed.major_version < version.major {
        return Err(FerryError::IncompatibleContract(format!(
            "{} is at version {version}; major_version {} is older than the version in force",
            proposed.name, proposed.major_version
        )));
    }
    let (compatible, breaking) = diff(current, proposed);
    if proposed.major_version > version.major {
        let mut changes = vec![format!("new major version {}", proposed.major_version)];
        changes.extend(breaking.into_iter().chain(compatible));
        return Ok(Evolution::NewVersion {
            version: ContractVersion {
                major: proposed.major_version,
                minor: 0,
            },
            changes,
        });
    }
    if !breaking.is_empty() {
        return Err(FerryError::IncompatibleContract(format!(
            "{} {version}: incompatible change(s): {}. Declare major_version: {} to make them.",
            proposed.name,
            breaking.join("; "),
            version.major + 1
        )));
    }
    Ok(Evolution::NewVersion {
        version: ContractVersion {
            major: version.major,
            minor: version.minor + 1,
        },
        changes: compatible,
    })
}

/// Returns (compatible, breaking) differences.
fn diff(old: &Contract, new: &Contract) -> (Vec<String>, Vec<String>) {
    let mut compatible = Vec::new();
    let mut breaking = Vec::new();

    for (i, old_col) in old.columns.iter().enumerate() {
        match new.column(&old_col.name) {
            None => breaking.push(format!("column {} removed", old_col.name)),
            Some(new_col) => {
                if new.columns.iter().position(|c| c.name == old_col.name) != Some(i) {
                    breaking.push(format!("column {} moved", old_col.name));
                }
                if new_col.column_type != old_col.column_type {
                    breaking.push(format!(
                        "column {} changed type {} -> {}",
                        old_col.name, old_col.column_type, new_col.column_type
                    ));
                }
                if new_col.decimal() != old_col.decimal()
                    && new_col.column_type == old_col.column_type
                {
                    // Stored values have the old scale; BigQuery may even need another type.
                    breaking.push(format!(
                        "column {} changed precision or scale",
                        old_col.name
                    ));
                }
                if new_col.format != old_col.format {
                    breaking.push(format!(
                        "column {} is read with another format (files that loaded before may not)",
                        old_col.name
                    ));
                }
                if new_col.source_key() != old_col.source_key() {
                    // Files that loaded yesterday would be refused today.
                    breaking.push(format!(
                        "column {} is read from another source name",
                        old_col.name
                    ));
                }
                if new_col.required && !old_col.required {
                    breaking.push(format!("column {} became required", old_col.name));
                } else if !new_col.required && old_col.required {
                    compatible.push(format!("column {} became nullable", old_col.name));
                }
                if new_col.pii_handling != old_col.pii_handling {
                    breaking.push(format!("column {} changed PII handling", old_col.name));
                }
                if new_col.classification != old_col.classification {
                    let change = format!(
                        "column {} reclassified {:?} -> {:?}",
                        old_col.name, old_col.classification, new_col.classification
                    );
                    // Loosening a classification exposes data that consumers were masked from.
                    if new_col.classification < old_col.classification {
                        breaking.push(change);
                    } else {
                        compatible.push(change);
                    }
                }
                if new_col.description != old_col.description
                    || new_col.legal_basis != old_col.legal_basis
                    || new_col.purpose != old_col.purpose
                    || new_col.retention_days != old_col.retention_days
                {
                    compatible.push(format!(
                        "column {} documentation or legal terms edited",
                        old_col.name
                    ));
                }
            }
        }
    }
    for new_col in new.columns.iter().skip(old.columns.len()) {
        if old.column(&new_col.name).is_some() {
            continue;
        }
        if new_col.required {
            breaking.push(format!(
                "required column {} added (existing partitions have no value for it)",
                new_col.name
            ));
        } else {
            compatible.push(format!("nullable column {} added", new_col.name));
        }
    }
    // Rules decide which days publish, not what stored rows mean: a change is compatible, and
    // named so reviewers see it.
    for new_col in &new.columns {
        if let Some(old_col) = old.column(&new_col.name)
            && new_col.quality != old_col.quality
        {
            compatible.push(format!("column {} quality rules changed", new_col.name));
        }
    }
    if new.quality != old.quality {
        compatible.push("dataset quality rules changed".into());
    }
    if new.sla != old.sla {
        compatible.push("SLA changed".into());
    }
    if new.feed != old.feed {
        compatible.push("feed changed".into());
    }
    if new.partitioning != old.partitioning {
        breaking.push("partitioning changed".into());
    }
    if new.source.csv != old.source.csv {
        breaking.push("source CSV options changed".into());
    }
    if new.source.format != old.source.format {
        let name = |f: crate::contract::DataFormat| -> &'static str { f.into() };
        breaking.push(format!(
            "source format {} -> {} (producers' files must change)",
            name(old.source.format),
            name(new.source.format)
        ));
    }
    if new.source.unknown_fields != old.source.unknown_fields {
        let name = |u: crate::contract::UnknownFields| -> &'static str { u.into() };
        let change = format!(
            "unknown_fields {} -> {}",
            name(old.source.unknown_fields),
            name(new.source.unknown_fields)
        );
        // Ignoring more accepts every file that loaded before; refusing may not.
        if new.source.unknown_fields == crate::contract::UnknownFields::Refuse {
            breaking.push(change);
        } else {
            compatible.push(change);
        }
    }
    if new.owner != old.owner {
        compatible.push(format!("owner {} -> {}", old.owner, new.owner));
    }
    if new.description != old.description {
        compatible.push("description edited".into());
    }
    if new.retention_days != old.retention_days {
        compatible.push("retention changed".into());
    }
    if new.source.max_rejected_rows != old.source.max_rejected_rows {
        compatible.push("max_rejected_rows changed".into());
    }
    // The rows a file yields do not depend on how it was compressed.
    if new.source.compression != old.source.compression {
        let name = |c: crate::contract::Compression| -> &'static str { c.into() };
        compatible.push(format!(
            "compression {} -> {}",
            name(old.source.compression),
            name(new.source.compression)
        ));
    }
    for old_view in &old.views {
        match new.view(&old_view.name) {
            None => breaking.push(format!("view {} removed", old_view.name)),
            Some(v) if v.filter != old_view.filter || v.columns != old_view.columns => {
                breaking.push(format!(
                    "view {} changed its rows or columns",
                    old_view.name
                ));
            }
            Some(v) if v.materialization != old_view.materialization => {
                breaking.push(format!("view {} changed materialization", old_view.name));
            }
            Some(v) if v.description != old_view.description => {
                compatible.push(format!("view {} description edited", old_view.name));
            }
            Some(_) => {}
        }
    }
    for new_view in &new.views {
        if old.view(&new_view.name).is_none() {
            compatible.push(format!("view {} added", new_view.name));
        }
    }
    (compatible, breaking)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::tests::catalog;
    use crate::contract::{Column, ColumnType};

    const V1_0: ContractVersion = ContractVersion { major: 1, minor: 0 };

    fn nullable(name: &str) -> Column {
        let mut column = catalog().columns[2].clone();
        column.name = name.into();
        column
    }

    #[test]
    fn identical_contract_is_unchanged() {
        let c = catalog();
        assert_eq!(
            plan_evolution(Some((&c, V1_0)), &c).expect("ok"),
            Evolution::Unchanged(V1_0)
        );
    }

    #[test]
    fn adding_a_nullable_column_or_editing_docs_bumps_minor() {
        let old = catalog();
        let mut new = old.clone();
        new.columns.push(nullable("price_note"));
        new.description = "edited".into();
        match plan_evolution(Some((&old, V1_0)), &new).expect("compatible") {
            Evolution::NewVersion { version, changes } => {
                assert_eq!(version.to_string(), "1.1");
                assert!(
                    changes
                        .iter()
                        .any(|c| c.contains("nullable column price_note added"))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn declaring_a_compression_is_a_minor_change() {
        let old = catalog();
        let mut new = old.clone();
        new.source.compression = crate::contract::Compression::Gzip;
        match plan_evolution(Some((&old, V1_0)), &new).expect("compatible") {
            Evolution::NewVersion { version, changes } => {
                assert_eq!(version.to_string(), "1.1");
                assert_eq!(changes, ["compression auto -> gzip"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn breaking_changes_are_refused_without_a_new_major() {
        let old = catalog();
        let mut retyped = old.clone();
        retyped.columns[1].column_type = ColumnType::String;
        let mut dropped = old.clone();
        dropped.columns.remove(2);
        let mut required = old.clone();
        let mut col = nullable("sku");
        col.required = true;
        required.columns.push(col);
        let mut refiltered = old.clone();
        refiltered.views[0].filter = "image IS NULL".into();
        for (new, expected) in [
            (retyped, "changed type"),
            (dropped, "removed"),
            (required, "required column sku added"),
            (refiltered, "changed its rows"),
        ] {
            let err = plan_evolution(Some((&old, V1_0)), &new).unwrap_err();
            assert!(matches!(err, FerryError::IncompatibleContract(_)));
            assert!(err.to_string().contains(expected), "{err}");
            assert!(err.to_string().contains("major_version: 2"), "{err}");
        }
    }

    #[test]
    fn a_declared_new_major_accepts_breaking_changes() {
        let old = catalog();
        let mut new = old.clone();
        new.columns.remove(2);
        new.major_version = 2;
        match plan_evolution(Some((&old, ContractVersion { major: 1, minor: 3 })), &new)
            .expect("ok")
        {
            Evolution::NewVersion { version, .. } => assert_eq!(version.to_string(), "2.0"),
            other => panic!("{other:?}"),
        }
        let mut older = new.clone();
        older.major_version = 1;
        let err = plan_evolution(Some((&new, ContractVersion { major: 2, minor: 0 })), &older)
            .unwrap_err();
        assert!(
            err.to_string().contains("older than the version in force"),
            "{err}"
        );
    }
}
