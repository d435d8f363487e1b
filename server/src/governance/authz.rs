//! Authorization with casbin: `policies/model.conf` and `policies/policy.csv` hold the roles and
//! base rules; grants made at run time come from the registry and are appended as policy lines.
//! The enforcer is rebuilt whole on every change and swapped in, so a check never sees half a
//! reload.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use casbin::function_map::key_match;
use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, RbacApi, StringAdapter};
use chrono::{DateTime, Utc};

use crate::error::FerryError;

use super::grants::{Grant, GrantRole, GrantStatus};

const MODEL_FILE: &str = "model.conf";
const POLICY_FILE: &str = "policy.csv";
const TESTS_DIR: &str = "tests";
/// The shipped policies, used when no `policy_dir` is configured.
const EMBEDDED_MODEL: &str = include_str!("../../../policies/model.conf");
const EMBEDDED_POLICY: &str = include_str!("../../../policies/policy.csv");

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    Register,
    Describe,
    Publish,
    Read,
    ReadPersonal,
    ReadSensitive,
    Grant,
    Approve,
    Audit,
    Token,
    /// A dataset's owner team reading a source: the object is `source:` and the source's
    /// canonical URI, so a policy line `p, team:x, source:s3://drops/*, read_source, never`
    /// binds the team to that prefix.
    ReadSource,
    /// Seeing a publication's source and quarantine URIs, error text and row errors; others
    /// who may describe the dataset see the outcome and the counts.
    ReadLedger,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One question to the enforcer.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    pub subject: &'a str,
    /// A dataset or view name, or `*` for calls about no single dataset.
    pub object: &'a str,
    /// The owner team of the object's dataset; empty when there is none.
    pub owner: &'a str,
    pub action: Action,
}

/// Which datasets a subject may act on, computed once per list call so a list of 10,000
/// datasets costs one pass over the policies and a hash lookup per dataset.
#[derive(Debug, Clone)]
pub enum Scope {
    All,
    Only {
        names: HashSet<String>,
        patterns: Vec<String>,
        /// The teams the subject acts for when the owner rule applies.
        owners: HashSet<String>,
    },
}

impl Scope {
    pub fn contains(&self, object: &str, owner: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only {
                names,
                patterns,
                owners,
            } => {
                names.contains(object)
                    || (!owner.is_empty() && owners.contains(owner))
                    || patterns.iter().any(|p| key_match(object, p))
            }
        }
    }
}

/// The timestamp format of the model's `now` and `until`: fixed width, so text order is time
/// order.
pub fn policy_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The policy lines a grant contributes. Revoked grants and grants awaiting approval contribute
/// none; expired ones still do and simply stop matching, so nothing has to run when they expire.
pub fn grant_policy_lines(grant: &Grant, now: DateTime<Utc>) -> Vec<String> {
    if matches!(
        grant.status(now),
        GrantStatus::Revoked | GrantStatus::PendingApproval
    ) {
        return Vec::new();
    }
    let until = grant.expires_at.map_or_else(|| "never".into(), policy_time);
    let line = |object: &str, action: Action| {
        format!(
            "p, {}, {object}, {}, {until}",
            grant.grantee,
            action.as_str()
        )
    };
    let mut lines = vec![line(&grant.dataset, Action::Describe)];
    match grant.role {
        GrantRole::Reader => {
            lines.push(line(&grant.target, Action::Read));
            if grant.clear_personal_data {
                lines.push(line(&grant.target, Action::ReadPersonal));
            }
        }
        GrantRole::Publisher => lines.push(line(&grant.dataset, Action::Publish)),
    }
    lines
}

pub struct Authorizer {
    /// None: the policies compiled into the binary.
    policy_dir: Option<PathBuf>,
    enforcer: RwLock<Arc<Enforcer>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("policy_dir", &self.policy_dir)
            .finish()
    }
}

fn read_policy_file(dir: Option<&Path>, name: &str) -> Result<String, FerryError> {
    let Some(dir) = dir else {
        return Ok(if name == MODEL_FILE {
            EMBEDDED_MODEL
        } else {
            EMBEDDED_POLICY
        }
        .to_owned());
    };
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .map_err(|e| FerryError::Config(format!("cannot read policy file {}: {e}", path.display())))
}

/// Writes the shipped model and policy into `dir` with `extra_lines` appended (source bindings,
/// roles): a policy directory to start from, for `ferry quickstart`, tests and new deployments.
pub fn write_policy_dir(dir: &Path, extra_lines: &[String]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(MODEL_FILE), EMBEDDED_MODEL)?;
    let mut policy = EMBEDDED_POLICY.to_owned();
    for line in extra_lines {
        policy.push('\n');
        policy.push_str(line);
    }
    policy.push('\n');
    std::fs::write(dir.join(POLICY_FILE), policy)
}

fn casbin_error(e: casbin::Error) -> FerryError {
    FerryError::Config(format!("casbin policy: {e}"))
}

async fn build_enforcer(model: &str, policy: String) -> Result<Enforcer, FerryError> {
    let model = DefaultModel::from_str(model).await.map_err(casbin_error)?;
    Enforcer::new(model, StringAdapter::new(policy))
        .await
        .map_err(casbin_error)
}

/// A source binding is a prefix that ends at a boundary: `source:s3://drops/*` or
/// `source:http://mirror:*`, never `source:s3://team-a*`, which would also bind `team-ab`.
fn check_source_bindings(enforcer: &Enforcer) -> Result<(), FerryError> {
    for rule in enforcer.get_policy() {
        let [_, object, action, _] = rule.as_slice() else {
            continue;
        };
        if action != Action::ReadSource.as_str() {
            continue;
        }
        let Some(prefix) = object.strip_prefix("source:") else {
            return Err(FerryError::Config(format!(
                "policy line for {object}: a read_source object starts with source:"
            )));
        };
        let star = prefix.find('*');
        let bounded = match star {
            None => true,
            Some(at) => {
                at + 1 == prefix.len()
                    && (prefix[..at].ends_with('/') || prefix[..at].ends_with(':'))
            }
        };
        if !bounded || prefix.is_empty() {
            return Err(FerryError::Config(format!(
                "policy line for {object}: a source binding is a whole URI or a prefix ending \
                 in /* (or :* for any port)"
            )));
        }
    }
    Ok(())
}

fn enforce(
    enforcer: &Enforcer,
    request: &AccessRequest<'_>,
    now: &str,
) -> Result<bool, FerryError> {
    enforcer
        .enforce((
            request.subject,
            request.object,
            request.owner,
            request.action.as_str(),
            now,
        ))
        .map_err(|e| FerryError::Internal(format!("policy evaluation: {e}")))
}

impl Authorizer {
    /// Loads the model and base policy from `policy_dir` and the grants from the registry.
    pub async fn load(policy_dir: Option<&Path>, grants: &[Grant]) -> Result<Self, FerryError> {
        let enforcer = Self::build(policy_dir, grants).await?;
        Ok(Self {
            policy_dir: policy_dir.map(Path::to_owned),
            enforcer: RwLock::new(Arc::new(enforcer)),
        })
    }

    async fn build(policy_dir: Option<&Path>, grants: &[Grant]) -> Result<Enforcer, FerryError> {
        let model = read_policy_file(policy_dir, MODEL_FILE)?;
        let mut policy = read_policy_file(policy_dir, POLICY_FILE)?;
        let now = Utc::now();
        for grant in grants {
            for line in grant_policy_lines(grant, now) {
                policy.push('\n');
                policy.push_str(&line);
            }
        }
        let enforcer = build_enforcer(&model, policy).await?;
        check_source_bindings(&enforcer)?;
        Ok(enforcer)
    }

    /// Rebuilds from the files and `grants`, then swaps. On error the previous enforcer stays.
    pub async fn reload(&self, grants: &[Grant]) -> Result<(), FerryError> {
        let enforcer = Self::build(self.policy_dir.as_deref(), grants).await?;
        *self.enforcer.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(enforcer);
        Ok(())
    }

    /// Modification times of the policy files, to notice edits without a restart.
    pub fn files_fingerprint(&self) -> String {
        let Some(dir) = &self.policy_dir else {
            return String::new();
        };
        [MODEL_FILE, POLICY_FILE]
            .iter()
            .map(|name| {
                std::fs::metadata(dir.join(name))
                    .and_then(|m| m.modified())
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("|")
    }

    fn current(&self) -> Arc<Enforcer> {
        self.enforcer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn allows(&self, request: &AccessRequest<'_>) -> Result<bool, FerryError> {
        enforce(&self.current(), request, &policy_time(Utc::now()))
    }

    /// Everything `subject` may do `action` on, from one pass over the policy lines. Mirrors the
    /// model's matcher; `scope_agrees_with_enforce` keeps the two honest.
    pub fn scope(&self, subject: &str, action: Action) -> Scope {
        let enforcer = self.current();
        let now = policy_time(Utc::now());
        let mut subjects: HashSet<String> = enforcer
            .get_implicit_roles_for_user(subject, None)
            .into_iter()
            .collect();
        subjects.insert(subject.to_owned());
        let mut names = HashSet::new();
        let mut patterns = Vec::new();
        let mut owner_rule = false;
        for rule in enforcer.get_policy() {
            let [sub, obj, act, until] = rule.as_slice() else {
                continue;
            };
            if (act != action.as_str() && act != "*") || (until != "never" && now >= *until) {
                continue;
            }
            if sub == "owner" {
                owner_rule |= obj == "*";
            } else if subjects.contains(sub) {
                if obj == "*" {
                    return Scope::All;
                } else if obj.contains('*') {
                    patterns.push(obj.clone());
                } else {
                    names.insert(obj.clone());
                }
            }
        }
        Scope::Only {
            names,
            patterns,
            owners: if owner_rule { subjects } else { HashSet::new() },
        }
    }
}

/// The outcome of `ferry-server check-policies`.
#[derive(Debug, Default)]
pub struct PolicyCheckReport {
    pub cases: usize,
    pub failures: Vec<String>,
}

/// Runs every case file in `policy_dir/tests/`. A case file holds extra policy lines (`p, ...`
/// or `g, ...`, as grants would add) and expectations:
/// `allow|deny, subject, object, owner, action[, now]`.
pub async fn check_policies(policy_dir: &Path) -> Result<PolicyCheckReport, FerryError> {
    let model = read_policy_file(Some(policy_dir), MODEL_FILE)?;
    let base = read_policy_file(Some(policy_dir), POLICY_FILE)?;
    let tests_dir = policy_dir.join(TESTS_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .map_err(|e| FerryError::Config(format!("cannot read {}: {e}", tests_dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(FerryError::Config(format!(
            "no policy test cases (*.csv) in {}",
            tests_dir.display()
        )));
    }
    let mut report = PolicyCheckReport::default();
    let default_now = policy_time(Utc::now());
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let mut policy = base.clone();
        let mut cases = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("p,") || line.starts_with("g,") {
                policy.push('\n');
                policy.push_str(line);
            } else {
                cases.push((number + 1, line.to_owned()));
            }
        }
        let enforcer = build_enforcer(&model, policy).await?;
        // The server refuses to load badly shaped source bindings; so does the check.
        check_source_bindings(&enforcer)
            .map_err(|e| FerryError::Config(format!("{}: {e}", file.display())))?;
        for (number, case) in cases {
            let fields: Vec<&str> = case.split(',').map(str::trim).collect();
            let place = format!("{}:{number}", file.display());
            let (expected, sub, obj, owner, act, now) = match fields.as_slice() {
                [e, s, o, w, a] => (*e, *s, *o, *w, *a, default_now.as_str()),
                [e, s, o, w, a, n] => (*e, *s, *o, *w, *a, *n),
                _ => {
                    report.failures.push(format!(
                        "{place}: expected `allow|deny, subject, object, owner, action[, now]`"
                    ));
                    continue;
                }
            };
            let expected = match expected {
                "allow" => true,
                "deny" => false,
                other => {
                    report
                        .failures
                        .push(format!("{place}: {other:?} is neither allow nor deny"));
                    continue;
                }
            };
            report.cases += 1;
            let allowed = enforcer
                .enforce((sub, obj, owner, act, now))
                .map_err(|e| FerryError::Internal(format!("{place}: {e}")))?;
            if allowed != expected {
                report.failures.push(format!(
                    "{place}: expected {} but the policy says {}: {case}",
                    if expected { "allow" } else { "deny" },
                    if allowed { "allow" } else { "deny" },
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    #[tokio::test]
    async fn check_policies_refuses_a_case_file_with_an_unbounded_binding() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_policy_dir(dir.path(), &[]).expect("written");
        std::fs::create_dir(dir.path().join(TESTS_DIR)).expect("tests dir");
        std::fs::write(
            dir.path().join(TESTS_DIR).join("sources.csv"),
            "p, team:a, source:s3://team-a*, read_source, never\n\
             allow, team:a, source:s3://team-a/x.csv, team:a, read_source\n",
        )
        .expect("case file");
        let err = check_policies(dir.path()).await.expect_err("refused");
        assert!(err.to_string().contains("ending in /*"), "{err}");
    }

    #[tokio::test]
    async fn source_bindings_must_end_at_a_boundary() {
        for (line, ok) in [
            ("p, team:a, source:s3://team-a/*, read_source, never", true),
            (
                "p, team:a, source:http://mirror.internal:*, read_source, never",
                true,
            ),
            (
                "p, team:a, source:file:///srv/a/day.csv, read_source, never",
                true,
            ),
            ("p, team:a, source:s3://team-a*, read_source, never", false),
            ("p, team:a, source:s3://*/x.csv, read_source, never", false),
            ("p, team:a, s3://team-a/*, read_source, never", false),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            write_policy_dir(dir.path(), &[line.to_owned()]).expect("written");
            let loaded = Authorizer::load(Some(dir.path()), &[]).await;
            assert_eq!(loaded.is_ok(), ok, "{line}");
        }
    }

    fn grant(grantee: &str, target: &str, expires_at: Option<DateTime<Utc>>) -> Grant {
        Grant {
            id: "g1".into(),
            dataset: "catalog.product_catalog".into(),
            target: target.into(),
            grantee: grantee.into(),
            role: GrantRole::Reader,
            purpose: String::new(),
            legal_basis: None,
            clear_personal_data: false,
            expires_at,
            granted_by: "team:catalog".into(),
            created_at: Utc::now(),
            approved_by: None,
            approved_at: None,
            revoked_by: None,
            revoked_at: None,
            review_reason: String::new(),
        }
    }

    fn read(subject: &str, object: &str) -> AccessRequest<'static> {
        AccessRequest {
            subject: Box::leak(subject.to_owned().into_boxed_str()),
            object: Box::leak(object.to_owned().into_boxed_str()),
            owner: "team:catalog",
            action: Action::Read,
        }
    }

    #[tokio::test]
    async fn the_shipped_policy_tests_pass() {
        let report = check_policies(&policy_dir()).await.unwrap();
        assert!(report.cases >= 20, "{report:?}");
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
    }

    #[tokio::test]
    async fn expired_grants_stop_matching_without_a_reload() {
        let soon = Utc::now() + chrono::Duration::seconds(2);
        let authz = Authorizer::load(
            Some(&policy_dir()),
            &[grant("team:a", "catalog.with_image", Some(soon))],
        )
        .await
        .unwrap();
        assert!(authz.allows(&read("team:a", "catalog.with_image")).unwrap());
        assert!(!authz.allows(&read("team:b", "catalog.with_image")).unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        assert!(!authz.allows(&read("team:a", "catalog.with_image")).unwrap());
    }

    #[tokio::test]
    async fn scope_agrees_with_enforce() {
        let grants: Vec<Grant> = (0..50)
            .map(|i| grant(&format!("team:t{}", i % 7), &format!("ns.d{i}"), None))
            .chain([grant(
                "team:t1",
                "ns.old",
                Some(Utc::now() - chrono::Duration::days(1)),
            )])
            .collect();
        let authz = Authorizer::load(None, &grants).await.unwrap();
        let objects: Vec<(String, String)> = (0..60)
            .map(|i| (format!("ns.d{i}"), format!("team:t{}", i % 5)))
            .chain([("ns.old".into(), "team:x".into())])
            .collect();
        for subject in [
            "team:t1",
            "team:t3",
            "admin:platform",
            "privacy:dpo",
            "team:none",
        ] {
            for action in [Action::Read, Action::Describe, Action::Publish] {
                let scope = authz.scope(subject, action);
                for (object, owner) in &objects {
                    let request = AccessRequest {
                        subject,
                        object,
                        owner,
                        action,
                    };
                    assert_eq!(
                        scope.contains(object, owner),
                        authz.allows(&request).unwrap(),
                        "{subject} {action:?} {object} owned by {owner}"
                    );
                }
            }
        }
    }
}
