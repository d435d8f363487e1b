//! Registering, describing and listing dataset contracts.

use tracing::{info, instrument};

use crate::contract::{Contract, Evolution, plan_evolution, validate_qualified_name};
use crate::error::{Denial, FerryError, Missing, Precondition, Reason};
use crate::governance::{Action, AuditOutcome, Scope};
use crate::ingest::Source;
use crate::registry::{PartitionEntry, RegisteredDataset};

use super::{Caller, Ferry};

pub struct RegisterOutcome {
    pub dataset: RegisteredDataset,
    pub unchanged: bool,
    pub changes: Vec<String>,
}

impl Ferry {
    /// A feed reads its files as the owner team: the owner must be bound to the feed's source
    /// (its bucket or host, which the template keeps fixed), and the server must accept it.
    async fn authorize_feed(&self, caller: &Caller, contract: &Contract) -> Result<(), FerryError> {
        let Some(feed) = &contract.feed else {
            return Ok(());
        };
        let today = feed.source_for(chrono::Utc::now().date_naive());
        let source = Source::resolve(&today, &self.sources).map_err(|e| match e.reason() {
            Reason::InvalidField => {
                FerryError::InvalidContract(format!("feed.source_template: {e}"))
            }
            _ => e,
        })?;
        self.authorize_source(caller, &contract.owner, &source)
            .await
    }

    #[instrument(skip_all, fields(dataset = %contract.name))]
    pub async fn register_dataset(
        &self,
        contract: Contract,
        caller: &Caller,
    ) -> Result<RegisterOutcome, FerryError> {
        contract.validate()?;
        crate::governance::validate_principal(&contract.owner)
            .map_err(|e| FerryError::InvalidContract(format!("owner: {e}")))?;
        let current = self.registry.dataset(&contract.name).await?;
        let owner = current
            .as_ref()
            .map_or(contract.owner.as_str(), |d| d.contract.owner.as_str());
        self.authorize(caller, Action::Register, &contract.name, owner)
            .await?;
        if owner != contract.owner {
            // Handing a dataset to another team is a platform decision, not the owner's alone.
            self.authorize(caller, Action::Register, &contract.name, "")
                .await?;
        }
        // A name an admin assigned to its owner stays theirs to evolve.
        let assigned = current
            .as_ref()
            .is_some_and(|d| d.contract.owner == contract.owner);
        let any_namespace = assigned || self.authorize_namespace(caller, &contract).await?;
        self.authorize_feed(caller, &contract).await?;
        // Every name check runs before the warehouse is touched: a refused register never
        // creates, patches or expires a table that another contract owns.
        self.registry.check_names(&contract).await?;
        self.warehouse.check_names(&contract)?;
        if contract.needs_pseudonymization() && self.pseudonymizer.is_none() {
            return Err(FerryError::precondition(
                Precondition::PseudonymizationKeyMissing,
                "the contract pseudonymizes columns but this server has no pseudonymization key \
                 (privacy.pseudonymization_key)",
            ));
        }
        let evolution = plan_evolution(
            current.as_ref().map(|d| (&d.contract, d.version)),
            &contract,
        )?;
        match evolution {
            Evolution::Unchanged(_) => Ok(RegisterOutcome {
                dataset: current.ok_or_else(|| {
                    FerryError::Internal("unchanged without a current version".into())
                })?,
                unchanged: true,
                changes: Vec::new(),
            }),
            Evolution::NewVersion { version, changes } => {
                self.warehouse.prepare_dataset(&contract).await?;
                // Grants are narrowed before the new version takes effect: if the register then
                // fails, they were narrowed for nothing, never widened.
                if let Some(previous) = &current {
                    self.rebind_grants(&previous.contract, &contract, caller)
                        .await?;
                }
                let dataset = self
                    .registry
                    .register(
                        &contract,
                        version,
                        &changes,
                        &caller.principal,
                        any_namespace,
                    )
                    .await?;
                info!(version = %version, "registered contract");
                self.audit(
                    caller,
                    "register",
                    &contract.name,
                    AuditOutcome::Allowed,
                    &format!("version {version}"),
                )
                .await;
                Ok(RegisterOutcome {
                    dataset,
                    unchanged: false,
                    changes,
                })
            }
        }
    }

    /// The first team to register in a namespace owns it: nobody else registers a name there,
    /// except a platform admin assigning a name to another team (the same admin-only rule as
    /// handing a dataset over). Returns whether the caller may register in any namespace; the
    /// registry checks the claim again when it records the contract.
    async fn authorize_namespace(
        &self,
        caller: &Caller,
        contract: &Contract,
    ) -> Result<bool, FerryError> {
        let namespace = contract.namespace();
        let admin = self.allows(caller, Action::Register, "*", "")?;
        let owner = self.registry.namespace_owner(namespace).await?;
        if admin || owner.is_none_or(|owner| owner == contract.owner) {
            return Ok(admin);
        }
        self.record_denial(caller, Action::Register, &contract.name, "namespace")
            .await;
        Err(FerryError::denied(
            Denial::NamespaceOwned,
            format!("namespace {namespace} belongs to another team; an admin assigns namespaces"),
        ))
    }

    pub async fn get_dataset(
        &self,
        name: &str,
        caller: &Caller,
    ) -> Result<(RegisteredDataset, Vec<PartitionEntry>), FerryError> {
        validate_qualified_name(name, "dataset").map_err(|e| e.for_field("name"))?;
        let dataset = self
            .visible_dataset(name, caller, &Missing::Dataset(name.to_owned()))
            .await?;
        let partitions = self.registry.partitions(name, None, None).await?;
        Ok((dataset, partitions))
    }

    /// The datasets the caller may describe, filtered in one pass.
    pub async fn list_datasets(
        &self,
        prefix: &str,
        caller: &Caller,
    ) -> Result<Vec<RegisteredDataset>, FerryError> {
        let scope = self.authorizer.scope(&caller.principal, Action::Describe);
        if matches!(scope, Scope::All) {
            return self.registry.list_datasets(prefix).await;
        }
        // Decide on names and owners alone, then load only the contracts the caller may see.
        let visible: Vec<String> = self
            .registry
            .dataset_owners(prefix)
            .await?
            .into_iter()
            .filter(|(name, owner)| scope.contains(name, owner))
            .map(|(name, _)| name)
            .collect();
        self.registry.datasets_named(&visible).await
    }
}
